package event

// DNSMax is how many bytes of a DNS packet's payload the application
// capture copies (internal/l7cap; DNS packets arrive as AppInfo).
const DNSMax = 512

// DNSSide says which end of a DNS exchange a pair was seen at. A host that
// runs both ends (loopback, namespaces of one host) sees each exchange
// twice: the client's socket sends the query and receives the response,
// the server's socket receives the query and sends the response.
type DNSSide uint8

const (
	DNSClient DNSSide = iota // query sent, response received: the latency the client waits
	DNSServer                // query received, response sent: the time the server takes
)

func (s DNSSide) String() string {
	if s == DNSServer {
		return "server"
	}
	return "client"
}

// DNSKind says what a DNSResult is.
type DNSKind uint8

const (
	DNSAnswer     DNSKind = iota // a response paired with its query
	DNSUnanswered                // a query without a response within the timeout, left at exit, or evicted
	DNSUnmatched                 // a response to no query seen (sent before netwatcher started, or lost)
)

func (k DNSKind) String() string {
	switch k {
	case DNSUnanswered:
		return "unanswered"
	case DNSUnmatched:
		return "unmatched"
	}
	return "answer"
}

// DNSResult is one pair (or lone query or response) for the sinks. Conn names
// the local socket and its owner: Src is the local end (the client at the
// client side, the server at the server side), Dst the other end. Name is
// valid until the Tracker's (internal/dns) next call.
type DNSResult struct {
	Kind        DNSKind
	Side        DNSSide
	TCP         bool
	TS          uint64 // the response's time; an unanswered query's own
	Conn        Conn
	ID          uint16
	Name        []byte
	HasQuestion bool
	QType       uint16
	// Response fields (not for Unanswered).
	Rcode   uint8
	Answers uint16
	TC      bool
	// LatencyNs: response time - query time (Answer only).
	LatencyNs uint64
	Evicted   bool // Unanswered: pushed out of a full pending table
}

// DNSProcKey names a process at one side.
type DNSProcKey struct {
	Pid  uint32 // 0: owner unknown
	Comm Comm   // the name of the process's thread that sent last
	Side DNSSide
}

// DNSProcCounters are one process's DNS counts at one side, since start.
// Queries = Answered + Unanswered (a query is counted once resolved);
// Rcodes counts every response (answered and unmatched) by rcode.
type DNSProcCounters struct {
	DNSProcKey
	Queries, Answered, Unanswered, Unmatched uint64
	Rcodes                                   [16]uint64
	Changed                                  bool // since the last interval line (the Tracker keeps it)
}
