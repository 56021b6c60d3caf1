package event

// CountProto is a protocol row of -C (protocol counters).
type CountProto uint8

// The rows of -C, in output order.
const (
	CountTCP CountProto = iota
	CountUDP
	CountICMP
	CountHTTP
	CountDNS
	CountMySQL
	CountRedis
	CountProtos // number of rows
)

var countNames = [CountProtos]string{"tcp", "udp", "icmp", "http", "dns", "mysql", "redis"}

// What one count of each row is: TCP data segments of traced connections
// (packet records), UDP datagrams (-u flows), ICMP messages (-I records),
// HTTP messages (request and status lines, -i), and for the application
// captures (-N, -M, -R) the UDP datagrams and TCP segments to or from the
// service port.
var countUnits = [CountProtos]string{"segments", "datagrams", "messages", "messages", "packets", "segments", "segments"}

func (p CountProto) String() string {
	if p < CountProtos {
		return countNames[p]
	}
	return "?"
}

// Unit names what the row counts.
func (p CountProto) Unit() string {
	if p < CountProtos {
		return countUnits[p]
	}
	return "?"
}

// HasBytes: the row counts payload bytes (HTTP does not: its messages
// span segments netwatcher does not all read).
func (p CountProto) HasBytes() bool { return p != CountHTTP }

// HasRequests: the row also counts requests paired with their responses
// (at every end the host sees: a request between two local processes is
// counted at the client and at the server).
func (p CountProto) HasRequests() bool { return p >= CountHTTP }

// CountDir is what one direction counted.
type CountDir struct {
	N     uint64 // segments, datagrams, messages or packets (Unit)
	Bytes uint64 // payload bytes
}

// ProtoCount is one row of -C: what one protocol counted in one interval
// (or in the whole run). Rx: received by a local socket (or, ICMP, by the
// host's stack); Tx: sent.
type ProtoCount struct {
	Proto    CountProto
	PeriodNs uint64 // the interval's length (the run's, for the total)
	Rx, Tx   CountDir
	Requests uint64
}
