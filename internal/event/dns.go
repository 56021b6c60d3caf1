package event

import "net/netip"

// DNSMax is how many bytes of a DNS packet's payload the kernel copies
// (NW_DNS_MAX in internal/dns/dns.bpf.c).
const DNSMax = 512

// DNSInfo is one UDP datagram or TCP segment to or from the DNS port
// (internal/dns, -N), as the kernel saw it: the packet's addresses, and
// the first bytes of its payload (TCP: with the 2-byte length prefixes).
// The pipeline takes the messages out of it (internal/dns.Parse) and pairs
// queries with responses.
type DNSInfo struct {
	Rx       bool           // received (ingress), else sent
	TCP      bool           // TCP segment, else UDP datagram
	Src, Dst netip.AddrPort // the packet's source and destination
	Seq      uint32         // TCP: sequence number of the payload's first byte
	PayLen   uint16         // payload bytes in the packet
	Len      uint16         // of them copied into Data (at most DNSMax)
	// Tick: no packet; made every --interval by the concern (engine.Ticker):
	// the pipeline expires unanswered queries and prints counters.
	Tick bool
	Data [DNSMax]byte
}

// Payload is the copied part of the payload.
func (d *DNSInfo) Payload() []byte { return d.Data[:d.Len] }

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
