package dns

import (
	"net/netip"
	"slices"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/l7cap/stream"
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
	streams *stream.Follower
	cur     pkt           // the record whose TCP messages are being handled (a copy: no pointer kept)
	emit    func(*Result) // its emit
	onMsg   func([]byte, bool, uint64)
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
	// TCP streams: Streams' counters (bytes missed, a message start beyond
	// the captured bytes, directions forgotten).
}

// NewTracker returns a Tracker with the default timeout and bound.
func NewTracker() *Tracker {
	t := &Tracker{TimeoutNs: DefaultTimeoutNs, MaxPending: DefaultMaxPending,
		pending: map[pairKey]pend{}, streams: stream.New(), procs: map[procKey]*ProcCounters{}}
	t.onMsg = t.tcpMessage
	return t
}

// Streams is the TCP stream follower (its counters).
func (t *Tracker) Streams() *stream.Follower { return t.streams }

// Packet handles one DNS record (ev.Ext.App, owner and socket in ev.Conn):
// each message in it is paired or kept, and emit gets each result.
func (t *Tracker) Packet(ev *event.Event, emit func(*Result)) {
	d := &ev.Ext.App
	t.cur = pkt{conn: ev.Conn, rx: d.Rx, tcp: d.TCP, src: d.Src, dst: d.Dst}
	if !d.TCP {
		t.message(&t.cur, d.Payload(), ev.TS, emit)
		return
	}
	// over TCP each message is a 2-byte length and the message
	t.emit = emit
	t.streams.Segment(stream.Key{Sock: ev.Conn.Sock, Rx: d.Rx, Src: d.Src, Dst: d.Dst}, d.Seq, int(d.PayLen), d.Payload(), ev.TS, frame, t.onMsg)
	t.emit = nil
}

// pkt is what the pairing needs of a record.
type pkt struct {
	conn     event.Conn
	rx, tcp  bool
	src, dst netip.AddrPort
}

// frame is DNS over TCP's stream.Framer: a 2-byte length, the message.
func frame(b []byte, _ uint32) (int, uint32, stream.Status) {
	if len(b) < 2 {
		return 0, 0, stream.More
	}
	return 2 + int(be16(b)), 0, stream.OK
}

func (t *Tracker) tcpMessage(b []byte, _ bool, ts uint64) {
	if len(b) <= 2 {
		return // an empty message
	}
	t.message(&t.cur, b[2:], ts, t.emit)
}

func (t *Tracker) message(ev *pkt, b []byte, ts uint64, emit func(*Result)) {
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
	if !m.Response() {
		t.query(ev, m, ts, emit)
	} else {
		t.response(ev, m, ts, emit)
	}
}

func (t *Tracker) query(d *pkt, m *Msg, ts uint64, emit func(*Result)) {
	side := Client
	if d.rx {
		side = Server
	}
	k := pairKey{netns: d.conn.Netns, side: side, tcp: d.tcp, client: d.src, server: d.dst, id: m.ID}
	p, ok := t.pending[k]
	if ok {
		t.Repeats++
	} else {
		if len(t.pending) >= t.MaxPending {
			t.evictOldest(emit)
		}
		p.name = string(m.QName())
	}
	p.ts, p.sock, p.qtype, p.hasQ = ts, d.conn.Sock, m.QType, m.HasQuestion
	if d.conn.Pid != 0 || !ok {
		p.pid, p.comm, p.osrc = d.conn.Pid, d.conn.Comm, d.conn.OwnerSrc
	}
	t.pending[k] = p
	t.fifo = append(t.fifo, fifoEnt{k, ts})
}

func (t *Tracker) response(d *pkt, m *Msg, ts uint64, emit func(*Result)) {
	side := Server
	if d.rx {
		side = Client
	}
	k := pairKey{netns: d.conn.Netns, side: side, tcp: d.tcp, client: d.dst, server: d.src, id: m.ID}
	r := &t.res
	*r = Result{Kind: Unmatched, Side: side, TCP: d.tcp, TS: ts, Conn: d.conn, ID: m.ID,
		Rcode: m.Rcode(), Answers: m.ANCount, TC: m.TC(), Name: m.QName(), HasQuestion: m.HasQuestion, QType: m.QType}
	if side == Client { // local end first
		r.Conn.Src, r.Conn.Dst = d.dst, d.src
	} else {
		r.Conn.Src, r.Conn.Dst = d.src, d.dst
	}
	p, ok := t.pending[k]
	if ok {
		delete(t.pending, k)
		r.Kind = Answer
		if ts > p.ts {
			r.LatencyNs = ts - p.ts
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
		"dns_pending_evicted": t.Evicted, "dns_query_repeats": t.Repeats, "dns_tcp_resync": t.streams.Resync,
		"dns_tcp_skipped": t.streams.Uncaptured + t.streams.BadStart + t.streams.CarryFull, "dns_tcp_flows_reset": t.streams.FlowsReset,
	}
}
