package httpinfo

// Default bounds of a Pairer.
const (
	DefaultMaxConns   = 65536 // connections tracked at once
	DefaultMaxPending = 64    // outstanding (pipelined) requests per connection
)

// dupWindow bounds the sequence-number distance within which a segment that
// starts at or before the last one seen in the same direction is taken for a
// retransmission. 64 MiB is far more than the data in flight on all but
// exceptionally tuned paths, and keeps the damage small if a connection id is
// reused without Forget (a fresh ISN falls in the window with p = 1/64).
const dupWindow = 64 << 20

// Match is a response paired with the request it answers.
type Match struct {
	Conn    uint64
	Method  Method // of the request
	Status  uint16 // of the response
	ReqTS   uint64 // ns, as passed to Observe
	RespTS  uint64 // ns
	Latency uint64 // RespTS - ReqTS in ns; 0 if RespTS < ReqTS (counted in Stats.ClockSkew)
	// Interim: a 1xx informational response other than 101. The request stays
	// outstanding, waiting for its final response, and the latency is not part
	// of the summary's latency statistics.
	Interim bool
}

// Summary is what a Pairer knows about one connection.
type Summary struct {
	Requests  uint64 // request lines seen (retransmissions excluded)
	Dropped   uint64 // requests not queued: MaxPending were outstanding (their responses count as Unmatched)
	Responses uint64 // status lines seen, 1xx included (retransmissions excluded)
	Matched   uint64 // final responses paired with a request: the latency samples
	Unmatched uint64 // responses that found no outstanding request
	Interim   uint64 // 1xx responses other than 101 (they do not consume the request)
	Pending   int    // requests outstanding now

	// Latency over the Matched responses, in ns (0 when Matched is 0).
	MinLatency, MaxLatency, SumLatency uint64

	// Class counts responses by status class: Class[2] is the number of 2xx,
	// ..., Class[5] of 5xx; Class[1] counts 1xx. Class[0] is unused.
	Class [6]uint64
}

// AvgLatency returns the mean latency in ns over the matched responses.
func (s Summary) AvgLatency() uint64 {
	if s.Matched == 0 {
		return 0
	}
	return s.SumLatency / s.Matched
}

// Stats are the totals of a Pairer, including what its bounds made it drop.
type Stats struct {
	Conns      int    // connections tracked now
	Requests   uint64 // request lines seen (retransmissions excluded)
	Responses  uint64 // status lines seen (retransmissions excluded)
	Matched    uint64 // final responses paired with a request
	Interim    uint64 // 1xx responses (not 101) paired without consuming the request
	Unmatched  uint64 // responses that found no outstanding request
	Duplicates uint64 // segments ignored as retransmissions of one already seen
	Dropped    uint64 // requests not queued: the connection had MaxPending outstanding
	Evicted    uint64 // connections evicted (least recently used) to stay within MaxConns
	Lost       uint64 // outstanding requests discarded with evicted connections
	Unanswered uint64 // outstanding requests discarded by Forget (connection closed first)
	ClockSkew  uint64 // responses timestamped before their request; latency reported as 0
}

type pending struct {
	ts     uint64
	method Method
}

type seqMark struct {
	seq uint32
	ok  bool
}

// dup reports whether a segment starting at seq repeats one already seen,
// and records seq otherwise.
func (m *seqMark) dup(seq uint32) bool {
	if m.ok && m.seq-seq < dupWindow { // seq == m.seq, or shortly before it (wrap-safe)
		return true
	}
	m.seq, m.ok = seq, true
	return false
}

type connState struct {
	conn       uint64
	prev, next int32 // LRU list (most recent first); next links the free list
	req, resp  seqMark
	q          []pending // ring of outstanding requests; len(q) is its capacity
	head, n    int
	sum        Summary
}

// Pairer pairs the requests and responses of HTTP/1.x connections: per
// connection, responses answer requests in FIFO order (HTTP/1.1 pipelining).
//
// Feed it with Observe in the order the data was sent or delivered on each
// connection (for received data, the in-order delivery point, not the wire,
// where segments may arrive out of order). Memory is bounded by MaxConns
// connections of at most MaxPending outstanding requests each (the queue of a
// connection grows on demand, 16 bytes per request): about 200 bytes per idle
// connection, and at worst MaxConns × (MaxPending × 16 + 250) bytes, 80 MiB with
// the defaults. Everything dropped to stay within the bounds is counted in
// Stats. After warm-up, Observe, Summary and Forget do not allocate: the state
// of a forgotten or evicted connection, queue included, is reused.
//
// A Pairer is not safe for concurrent use.
type Pairer struct {
	maxConns, maxPending int
	index                map[uint64]int32
	states               []connState
	mru, lru             int32 // most / least recently used, -1 if none
	free                 int32 // free list of states, -1 if none
	st                   Stats
}

// NewPairer returns a Pairer tracking at most maxConns connections with at most
// maxPending outstanding requests each; a value <= 0 selects the default.
func NewPairer(maxConns, maxPending int) *Pairer {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	if maxConns > 1<<31-1 {
		maxConns = 1<<31 - 1
	}
	if maxPending <= 0 {
		maxPending = DefaultMaxPending
	}
	return &Pairer{
		maxConns:   maxConns,
		maxPending: maxPending,
		index:      make(map[uint64]int32),
		mru:        -1,
		lru:        -1,
		free:       -1,
	}
}

// Observe takes one segment that starts with l (as returned by Parse) on
// connection conn, at time ts (ns, e.g. bpf_ktime_get_ns). A Request is queued;
// a Response is paired with the oldest outstanding request of conn, which is
// returned with ok set. None lines are ignored.
//
// conn must identify the connection the same way for both directions (the
// caller normalizes it, e.g. the socket pointer): a request seen on conn is
// answered by a response on conn. seq is the TCP sequence number of the
// segment's first byte: a segment that starts at, or shortly before, the last
// one of the same kind seen on conn is a retransmission (or the same segment
// seen twice) and is ignored, counted in Stats.Duplicates, so it cannot shift
// the pairing of later responses.
func (p *Pairer) Observe(conn uint64, seq uint32, ts uint64, l Line) (m Match, ok bool) {
	return p.ObserveAt(nil, conn, seq, ts, l)
}

// ObserveAt is Observe with a hint: *slot is where the caller keeps conn's
// place in the Pairer between calls (0 at first; nil: no hint), so that a
// segment of a known connection is not looked up in a map (under HTTP load
// the lookup was ~4% of the tool's CPU). A stale hint (the place was given
// to another connection since) is found out and corrected.
func (p *Pairer) ObserveAt(slot *int32, conn uint64, seq uint32, ts uint64, l Line) (m Match, ok bool) {
	switch l.Kind {
	case Request:
		s := p.stateAt(slot, conn)
		if s.req.dup(seq) {
			p.st.Duplicates++
			return Match{}, false
		}
		p.st.Requests++
		s.sum.Requests++
		if s.n >= p.maxPending {
			p.st.Dropped++
			s.sum.Dropped++
			return Match{}, false
		}
		if s.n == len(s.q) {
			s.grow(p.maxPending)
		}
		i := s.head + s.n
		if i >= len(s.q) {
			i -= len(s.q)
		}
		s.q[i] = pending{ts: ts, method: l.Method}
		s.n++
		return Match{}, false
	case Response:
		s := p.stateAt(slot, conn)
		if s.resp.dup(seq) {
			p.st.Duplicates++
			return Match{}, false
		}
		p.st.Responses++
		s.sum.Responses++
		class := l.StatusClass()
		if class < len(s.sum.Class) {
			s.sum.Class[class]++
		}
		interim := class == 1 && l.Status != 101
		if interim {
			p.st.Interim++
			s.sum.Interim++
		}
		if s.n == 0 {
			p.st.Unmatched++
			s.sum.Unmatched++
			return Match{}, false
		}
		r := s.q[s.head]
		m = Match{Conn: conn, Method: r.method, Status: l.Status, ReqTS: r.ts, RespTS: ts, Interim: interim}
		if ts >= r.ts {
			m.Latency = ts - r.ts
		} else {
			p.st.ClockSkew++
		}
		if interim {
			return m, true
		}
		s.head++
		if s.head == len(s.q) {
			s.head = 0
		}
		s.n--
		p.st.Matched++
		sum := &s.sum
		if sum.Matched == 0 || m.Latency < sum.MinLatency {
			sum.MinLatency = m.Latency
		}
		if m.Latency > sum.MaxLatency {
			sum.MaxLatency = m.Latency
		}
		sum.SumLatency += m.Latency
		sum.Matched++
		return m, true
	}
	return Match{}, false
}

// Summary returns the statistics of conn, and false if conn is not tracked.
func (p *Pairer) Summary(conn uint64) (Summary, bool) {
	i, ok := p.index[conn]
	if !ok {
		return Summary{}, false
	}
	s := &p.states[i]
	sum := s.sum
	sum.Pending = s.n
	return sum, true
}

// Forget drops conn (call it when the connection closes, and before a
// connection id is reused) and returns its final summary, or false if conn was
// not tracked. Requests still outstanding are counted in Stats.Unanswered.
func (p *Pairer) Forget(conn uint64) (Summary, bool) {
	i, ok := p.index[conn]
	if !ok {
		return Summary{}, false
	}
	s := &p.states[i]
	sum := s.sum
	sum.Pending = s.n
	p.st.Unanswered += uint64(s.n)
	delete(p.index, conn)
	p.unlink(i)
	s.conn = 0 // no hint finds it (ObserveAt)
	s.next = p.free
	p.free = i
	return sum, true
}

// Stats returns the totals.
func (p *Pairer) Stats() Stats {
	st := p.st
	st.Conns = len(p.index)
	return st
}

// stateAt is state with a hint (ObserveAt): slot, if not nil, holds 1 +
// conn's index in states, or 0; it is set to where conn's state is.
func (p *Pairer) stateAt(slot *int32, conn uint64) *connState {
	if slot == nil {
		s, _ := p.state(conn)
		return s
	}
	if i := *slot - 1; conn != 0 && i >= 0 && int(i) < len(p.states) && p.states[i].conn == conn {
		p.used(i)
		return &p.states[i]
	}
	s, i := p.state(conn)
	*slot = i + 1
	return s
}

// used marks state i most recently used.
func (p *Pairer) used(i int32) {
	if i != p.mru {
		p.unlink(i)
		p.pushFront(i)
	}
}

// state returns the state of conn and its index, creating it if needed
// (evicting the least recently used connection when MaxConns are tracked),
// and marks it most recently used.
func (p *Pairer) state(conn uint64) (*connState, int32) {
	if i, ok := p.index[conn]; ok {
		p.used(i)
		return &p.states[i], i
	}
	var i int32
	switch {
	case p.free >= 0:
		i = p.free
		p.free = p.states[i].next
	case len(p.states) < p.maxConns:
		p.states = append(p.states, connState{})
		i = int32(len(p.states) - 1)
	default:
		i = p.lru
		old := &p.states[i]
		p.st.Evicted++
		p.st.Lost += uint64(old.n)
		delete(p.index, old.conn)
		p.unlink(i)
	}
	s := &p.states[i]
	*s = connState{conn: conn, q: s.q} // keep the queue's memory
	p.index[conn] = i
	p.pushFront(i)
	return s, i
}

func (s *connState) grow(max int) {
	n := 2 * len(s.q)
	if n < 4 {
		n = 4
	}
	if n > max {
		n = max
	}
	q := make([]pending, n)
	// Unroll the ring into the new queue.
	k := copy(q, s.q[s.head:])
	copy(q[k:], s.q[:s.head])
	s.q, s.head = q, 0
}

func (p *Pairer) unlink(i int32) {
	s := &p.states[i]
	if s.prev >= 0 {
		p.states[s.prev].next = s.next
	} else {
		p.mru = s.next
	}
	if s.next >= 0 {
		p.states[s.next].prev = s.prev
	} else {
		p.lru = s.prev
	}
	s.prev, s.next = -1, -1
}

func (p *Pairer) pushFront(i int32) {
	s := &p.states[i]
	s.prev, s.next = -1, p.mru
	if p.mru >= 0 {
		p.states[p.mru].prev = i
	} else {
		p.lru = i
	}
	p.mru = i
}
