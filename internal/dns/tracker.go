package dns

import (
	"net/netip"
	"slices"

	"github.com/netwatcher/netwatcher/internal/event"
)

// The Tracker's results are event types (the sinks format them).
type (
	Side         = event.DNSSide
	Kind         = event.DNSKind
	Result       = event.DNSResult
	ProcKey      = event.DNSProcKey
	ProcCounters = event.DNSProcCounters
)

const (
	Client     = event.DNSClient
	Server     = event.DNSServer
	Answer     = event.DNSAnswer
	Unanswered = event.DNSUnanswered
	Unmatched  = event.DNSUnmatched
)

// Defaults of a Tracker.
const (
	DefaultTimeoutNs  = 10e9
	DefaultMaxPending = 65536
	maxFlows          = 4096
)

type procKey struct {
	pid  uint32
	side Side
}

type pairKey struct {
	netns          uint32
	side           Side
	tcp            bool
	client, server netip.AddrPort
	id             uint16
}

type pend struct {
	ts    uint64
	sock  uint64
	pid   uint32
	comm  event.Comm
	osrc  event.OwnerSrc
	qtype uint16
	hasQ  bool
	name  string
}

type fifoEnt struct {
	key pairKey
	ts  uint64
}

// flowKey: one direction of a TCP connection (the socket's memory is
// reused by the next connection at once: the addresses tell them apart).
type flowKey struct {
	sk       uint64
	rx       bool
	src, dst netip.AddrPort
}

// flowState: where the next message of a TCP direction starts.
type flowState struct {
	next  uint32 // sequence number of the next length prefix (or body)
	body  uint16 // > 0: at next comes a message body of this length (its prefix came alone)
	hi    uint8  // hasHi: the prefix's first byte ended the last segment; at next comes its second
	hasHi bool
}

// Tracker takes DNS messages out of the kernel's records (TCP: out of the
// byte stream, by sequence number), pairs queries with responses by
// (namespace, side, transport, client address:port, server address:port,
// id) and keeps per-process counters. One goroutine (the pipeline's).
type Tracker struct {
	TimeoutNs  uint64 // a query unanswered this long is reported Unanswered
	MaxPending int    // queries waiting at most; the oldest is evicted past it

	pending map[pairKey]pend
	fifo    []fifoEnt
	head    int
	flows   map[flowKey]flowState
	procs   map[procKey]*ProcCounters
	msg     Msg
	res     Result
	order   []*ProcCounters

	// Totals (exit stats).
	Messages    uint64 // messages parsed (a header at least)
	Unparsed    uint64 // payloads shorter than a DNS header
	BadQuestion uint64 // a question that is malformed or cut off (paired by header only)
	Evicted     uint64 // queries pushed out of the full pending table
	Repeats     uint64 // a query repeated (same id and flow) before its response: latency from the last one
	TCPResync   uint64 // a TCP direction whose bytes were missed: reparsed from a segment start
	TCPSkipped  uint64 // TCP messages whose start was beyond the captured bytes
	FlowsReset  uint64 // TCP stream states forgotten (more than maxFlows directions)
}

// NewTracker returns a Tracker with the default timeout and bound.
func NewTracker() *Tracker {
	return &Tracker{TimeoutNs: DefaultTimeoutNs, MaxPending: DefaultMaxPending,
		pending: map[pairKey]pend{}, flows: map[flowKey]flowState{}, procs: map[procKey]*ProcCounters{}}
}

// Packet handles one DNS record (ev.Ext.DNS, owner and socket in ev.Conn):
// each message in it is paired or kept, and emit gets each result.
func (t *Tracker) Packet(ev *event.Event, emit func(*Result)) {
	d := &ev.Ext.DNS
	if !d.TCP {
		t.message(ev, d.Payload(), emit)
		return
	}
	t.tcp(ev, d, emit)
}

func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }

// tcp takes the messages out of a segment: each is a 2-byte length and
// the message. Where the direction's previous segment said the next one
// starts (flows) is trusted; a direction seen for the first time, or whose
// bytes were missed, is assumed to start with a length prefix.
func (t *Tracker) tcp(ev *event.Event, d *event.DNSInfo, emit func(*Result)) {
	k := flowKey{ev.Conn.Sock, d.Rx, d.Src, d.Dst}
	data := d.Payload()
	P, S := uint32(d.PayLen), d.Seq
	o, body, hi := uint32(0), uint32(0), -1
	if st, ok := t.flows[k]; ok {
		switch gap := st.next - S; {
		case gap == 0:
			body = uint32(st.body)
			if st.hasHi {
				hi = int(st.hi)
			}
		case gap < P:
			o, body = gap, uint32(st.body) // the next message starts inside this segment
		case gap < 65538 && gap >= P:
			return // inside a message seen already (or a retransmission)
		default:
			t.TCPResync++ // bytes missed, or a new connection on the socket's memory
		}
	}
	for o < P {
		L := body
		body = 0
		if L == 0 {
			switch {
			case hi >= 0 && o < uint32(len(data)): // the prefix's second byte
				L = uint32(hi)<<8 | uint32(data[o])
				o++
				hi = -1
			case hi < 0 && o+1 == P && o < uint32(len(data)): // its first byte ends the segment
				t.setFlow(k, flowState{next: S + P, hi: data[o], hasHi: true})
				return
			case hi < 0 && o+2 <= uint32(len(data)):
				L = uint32(be16(data[o:]))
				o += 2
			default:
				// the prefix is not in the captured bytes: the stream
				// is lost until a segment starts with one
				t.TCPSkipped++
				delete(t.flows, k)
				return
			}
			if L == 0 {
				continue
			}
			if o == P { // the prefix came alone: the message is the next segment
				t.setFlow(k, flowState{next: S + P, body: uint16(L)})
				return
			}
		}
		if o < uint32(len(data)) {
			t.message(ev, data[o:min(o+L, uint32(len(data)))], emit)
		} else {
			t.TCPSkipped++
		}
		o += L
	}
	t.setFlow(k, flowState{next: S + o})
}

func (t *Tracker) setFlow(k flowKey, st flowState) {
	if _, ok := t.flows[k]; !ok && len(t.flows) >= maxFlows {
		clear(t.flows) // stream states have no end we see: bound them
		t.FlowsReset++
	}
	t.flows[k] = st
}

func (t *Tracker) message(ev *event.Event, b []byte, emit func(*Result)) {
	m := &t.msg
	switch err := Parse(b, m); err {
	case nil:
	case ErrShort:
		t.Unparsed++
		return
	default:
		t.BadQuestion++
	}
	t.Messages++
	d := &ev.Ext.DNS
	if !m.Response() {
		t.query(ev, d, m, emit)
	} else {
		t.response(ev, d, m, emit)
	}
}

func (t *Tracker) query(ev *event.Event, d *event.DNSInfo, m *Msg, emit func(*Result)) {
	side := Client
	if d.Rx {
		side = Server
	}
	k := pairKey{netns: ev.Conn.Netns, side: side, tcp: d.TCP, client: d.Src, server: d.Dst, id: m.ID}
	p, ok := t.pending[k]
	if ok {
		t.Repeats++
	} else {
		if len(t.pending) >= t.MaxPending {
			t.evictOldest(emit)
		}
		p.name = string(m.QName())
	}
	p.ts, p.sock, p.qtype, p.hasQ = ev.TS, ev.Conn.Sock, m.QType, m.HasQuestion
	if ev.Conn.Pid != 0 || !ok {
		p.pid, p.comm, p.osrc = ev.Conn.Pid, ev.Conn.Comm, ev.Conn.OwnerSrc
	}
	t.pending[k] = p
	t.fifo = append(t.fifo, fifoEnt{k, ev.TS})
}

func (t *Tracker) response(ev *event.Event, d *event.DNSInfo, m *Msg, emit func(*Result)) {
	side := Server
	if d.Rx {
		side = Client
	}
	k := pairKey{netns: ev.Conn.Netns, side: side, tcp: d.TCP, client: d.Dst, server: d.Src, id: m.ID}
	r := &t.res
	*r = Result{Kind: Unmatched, Side: side, TCP: d.TCP, TS: ev.TS, Conn: ev.Conn, ID: m.ID,
		Rcode: m.Rcode(), Answers: m.ANCount, TC: m.TC(), Name: m.QName(), HasQuestion: m.HasQuestion, QType: m.QType}
	if side == Client { // local end first
		r.Conn.Src, r.Conn.Dst = d.Dst, d.Src
	} else {
		r.Conn.Src, r.Conn.Dst = d.Src, d.Dst
	}
	p, ok := t.pending[k]
	if ok {
		delete(t.pending, k)
		r.Kind = Answer
		if ev.TS > p.ts {
			r.LatencyNs = ev.TS - p.ts
		}
		// The owner is the egress side's (learned in process context):
		// the client's query, the server's response.
		if side == Client && p.pid != 0 || r.Conn.Pid == 0 {
			r.Conn.Pid, r.Conn.Comm, r.Conn.OwnerSrc = p.pid, p.comm, p.osrc
		}
		if side == Client {
			r.Conn.Sock = p.sock
		}
		if !r.HasQuestion && p.hasQ {
			r.Name, r.HasQuestion, r.QType = []byte(p.name), true, p.qtype
		}
	}
	c := t.proc(&r.Conn, side)
	if ok {
		c.Queries++
		c.Answered++
	} else {
		c.Unmatched++
	}
	c.Rcodes[r.Rcode&0xf]++
	emit(r)
}

// proc is the counters of c's process (its pid: a process's threads
// have names of their own, and the comm shown is the last one seen) at
// side; pid 0, the owner unknown, is one bucket.
func (t *Tracker) proc(c *event.Conn, side Side) *ProcCounters {
	k := procKey{c.Pid, side}
	pc := t.procs[k]
	if pc == nil {
		pc = &ProcCounters{DNSProcKey: ProcKey{Pid: c.Pid, Side: side}}
		t.procs[k] = pc
	}
	if c.Pid != 0 {
		pc.Comm = c.Comm
	}
	pc.Changed = true
	return pc
}

func (t *Tracker) unanswered(k pairKey, p *pend, evicted bool, emit func(*Result)) {
	r := &t.res
	*r = Result{Kind: Unanswered, Side: k.side, TCP: k.tcp, TS: p.ts, ID: k.id, Name: []byte(p.name),
		HasQuestion: p.hasQ, QType: p.qtype, Evicted: evicted,
		Conn: event.Conn{Netns: k.netns, Sock: p.sock, Pid: p.pid, Comm: p.comm, OwnerSrc: p.osrc, Src: k.client, Dst: k.server}}
	if k.side == Server {
		r.Conn.Src, r.Conn.Dst = k.server, k.client
	}
	c := t.proc(&r.Conn, k.side)
	c.Queries++
	c.Unanswered++
	emit(r)
}

// pop returns the oldest live pending query, false when none is left
// (stale entries of repeated queries are skipped).
func (t *Tracker) pop(before uint64, all bool) (pairKey, pend, bool) {
	for t.head < len(t.fifo) {
		e := t.fifo[t.head]
		if !all && e.ts+t.TimeoutNs > before {
			break
		}
		t.fifo[t.head] = fifoEnt{}
		t.head++
		if p, ok := t.pending[e.key]; ok && p.ts == e.ts {
			delete(t.pending, e.key)
			t.compact()
			return e.key, p, true
		}
	}
	t.compact()
	return pairKey{}, pend{}, false
}

func (t *Tracker) compact() {
	if t.head > 1024 && t.head > len(t.fifo)/2 {
		n := copy(t.fifo, t.fifo[t.head:])
		t.fifo = t.fifo[:n]
		t.head = 0
	}
}

func (t *Tracker) evictOldest(emit func(*Result)) {
	if k, p, ok := t.pop(0, true); ok {
		t.Evicted++
		t.unanswered(k, &p, true, emit)
	}
}

// Expire reports the queries unanswered for TimeoutNs at nowNs.
func (t *Tracker) Expire(nowNs uint64, emit func(*Result)) {
	for {
		k, p, ok := t.pop(nowNs, false)
		if !ok {
			return
		}
		t.unanswered(k, &p, false, emit)
	}
}

// Flush reports every query still waiting (at exit) as unanswered.
func (t *Tracker) Flush(emit func(*Result)) {
	for {
		k, p, ok := t.pop(0, true)
		if !ok {
			return
		}
		t.unanswered(k, &p, false, emit)
	}
}

// Pending is the number of queries waiting for a response.
func (t *Tracker) Pending() int { return len(t.pending) }

// Procs calls fn for each process's counters (by pid, side), all of
// them or only those changed since the last call that asked so.
func (t *Tracker) Procs(changedOnly bool, fn func(*ProcCounters)) {
	t.order = t.order[:0]
	for _, c := range t.procs {
		if c.Changed || !changedOnly {
			t.order = append(t.order, c)
		}
	}
	slices.SortFunc(t.order, func(a, b *ProcCounters) int {
		if a.Pid != b.Pid {
			return int(int64(a.Pid) - int64(b.Pid))
		}
		return int(a.Side) - int(b.Side)
	})
	for _, c := range t.order {
		if changedOnly {
			c.Changed = false
		}
		fn(c)
	}
}

// Counters are the totals for the exit stats.
func (t *Tracker) Counters() map[string]uint64 {
	return map[string]uint64{
		"dns_messages": t.Messages, "dns_unparsed": t.Unparsed, "dns_bad_question": t.BadQuestion,
		"dns_pending_evicted": t.Evicted, "dns_query_repeats": t.Repeats, "dns_tcp_resync": t.TCPResync,
		"dns_tcp_skipped": t.TCPSkipped, "dns_tcp_flows_reset": t.FlowsReset,
	}
}
