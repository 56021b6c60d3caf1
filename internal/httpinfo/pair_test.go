package httpinfo

import (
	"math/rand/v2"
	"testing"
)

func req(m Method) Line       { return Line{Kind: Request, Method: m, Proto: HTTP11} }
func resp(status uint16) Line { return Line{Kind: Response, Status: status, Proto: HTTP11} }
func parsed(s string) Line    { return Parse([]byte(s), false) }
func ms(n uint64) uint64      { return n * 1_000_000 }
func mustMatch(t *testing.T, m Match, ok bool, method Method, status uint16, latency uint64) {
	t.Helper()
	if !ok || m.Method != method || m.Status != status || m.Latency != latency || m.RespTS-m.ReqTS != latency {
		t.Fatalf("got %+v ok=%v, want %v -> %d in %d ns", m, ok, method, status, latency)
	}
}

func TestPairerSimple(t *testing.T) {
	p := NewPairer(0, 0)
	const c = 0xffff971842193f00
	if _, ok := p.Observe(c, 1000, ms(10), parsed("GET /a HTTP/1.1\r\n\r\n")); ok {
		t.Fatal("a request matched something")
	}
	m, ok := p.Observe(c, 5000, ms(13), parsed("HTTP/1.1 200 OK\r\n\r\n"))
	mustMatch(t, m, ok, MethodGet, 200, ms(3))
	if m.Conn != c || m.ReqTS != ms(10) || m.RespTS != ms(13) || m.Interim {
		t.Fatalf("match %+v", m)
	}
	// Keep-alive: a second exchange on the same connection.
	p.Observe(c, 1100, ms(20), parsed("POST /b HTTP/1.1\r\n"))
	m, ok = p.Observe(c, 5200, ms(21), parsed("HTTP/1.1 404 Not Found\r\n"))
	mustMatch(t, m, ok, MethodPost, 404, ms(1))

	s, ok := p.Summary(c)
	want := Summary{Requests: 2, Responses: 2, Matched: 2, MinLatency: ms(1), MaxLatency: ms(3), SumLatency: ms(4)}
	want.Class[2], want.Class[4] = 1, 1
	if !ok || s != want {
		t.Fatalf("Summary = %+v, %v\nwant %+v", s, ok, want)
	}
	if s.AvgLatency() != ms(2) {
		t.Fatalf("AvgLatency = %d", s.AvgLatency())
	}
	if st := p.Stats(); st != (Stats{Conns: 1, Requests: 2, Responses: 2, Matched: 2}) {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestPairerPipelined(t *testing.T) {
	p := NewPairer(0, 0)
	methods := []Method{MethodGet, MethodHead, MethodPost, MethodDelete}
	for i, m := range methods {
		p.Observe(7, uint32(100*i), ms(uint64(i)), req(m))
	}
	if s, _ := p.Summary(7); s.Pending != 4 {
		t.Fatalf("Pending = %d", s.Pending)
	}
	for i, m := range methods {
		got, ok := p.Observe(7, uint32(1000*i), ms(10+uint64(i)), resp(uint16(200+i)))
		mustMatch(t, got, ok, m, uint16(200+i), ms(10))
	}
	if _, ok := p.Observe(7, 9000, ms(30), resp(200)); ok {
		t.Fatal("a fifth response matched")
	}
	s, _ := p.Summary(7)
	if s.Matched != 4 || s.Unmatched != 1 || s.Pending != 0 || s.Class[2] != 5 {
		t.Fatalf("Summary = %+v", s)
	}
}

func TestPairerConnectionsAreSeparate(t *testing.T) {
	p := NewPairer(0, 0)
	p.Observe(1, 0, ms(1), req(MethodGet))
	p.Observe(2, 0, ms(2), req(MethodPost))
	m, ok := p.Observe(2, 0, ms(5), resp(201))
	mustMatch(t, m, ok, MethodPost, 201, ms(3))
	m, ok = p.Observe(1, 0, ms(9), resp(500))
	mustMatch(t, m, ok, MethodGet, 500, ms(8))
}

func TestPairerUnmatched(t *testing.T) {
	p := NewPairer(0, 0)
	if _, ok := p.Observe(3, 10, ms(1), resp(200)); ok {
		t.Fatal("response without request matched")
	}
	s, ok := p.Summary(3)
	if !ok || s.Unmatched != 1 || s.Responses != 1 || s.Matched != 0 || s.Class[2] != 1 || s.MinLatency != 0 {
		t.Fatalf("Summary = %+v, %v", s, ok)
	}
	if st := p.Stats(); st.Unmatched != 1 || st.Matched != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestPairerNoneIgnored(t *testing.T) {
	p := NewPairer(0, 0)
	if _, ok := p.Observe(3, 10, ms(1), parsed("Host: x\r\n")); ok {
		t.Fatal("None matched")
	}
	if _, ok := p.Summary(3); ok {
		t.Fatal("None line created connection state")
	}
	if st := p.Stats(); st != (Stats{}) {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestPairerInterim(t *testing.T) {
	p := NewPairer(0, 0)
	p.Observe(1, 0, ms(0), req(MethodPost))
	m, ok := p.Observe(1, 0, ms(1), parsed("HTTP/1.1 100 Continue\r\n\r\n"))
	if !ok || !m.Interim || m.Status != 100 || m.Latency != ms(1) {
		t.Fatalf("100 Continue: %+v %v", m, ok)
	}
	m, ok = p.Observe(1, 100, ms(5), resp(200))
	mustMatch(t, m, ok, MethodPost, 200, ms(5))
	if m.Interim {
		t.Fatal("final response marked interim")
	}
	// 101 Switching Protocols is final.
	p.Observe(1, 100, ms(6), req(MethodGet))
	m, ok = p.Observe(1, 200, ms(7), resp(101))
	mustMatch(t, m, ok, MethodGet, 101, ms(1))
	s, _ := p.Summary(1)
	if s.Matched != 2 || s.Interim != 1 || s.Class[1] != 2 || s.Class[2] != 1 || s.Pending != 0 || s.MaxLatency != ms(5) {
		t.Fatalf("Summary = %+v", s)
	}
}

func TestPairerRetransmissions(t *testing.T) {
	p := NewPairer(0, 0)
	const c = 9
	p.Observe(c, 1000, ms(0), req(MethodGet))
	p.Observe(c, 1000, ms(200), req(MethodGet)) // RTO retransmission of the request
	p.Observe(c, 1500, ms(201), req(MethodHead))
	p.Observe(c, 1000, ms(202), req(MethodGet)) // go-back: older than the last request
	m, ok := p.Observe(c, 7000, ms(250), resp(200))
	mustMatch(t, m, ok, MethodGet, 200, ms(250))
	if _, ok := p.Observe(c, 7000, ms(260), resp(200)); ok { // retransmitted response
		t.Fatal("retransmitted response matched")
	}
	m, ok = p.Observe(c, 7400, ms(261), resp(204))
	mustMatch(t, m, ok, MethodHead, 204, ms(60))
	st := p.Stats()
	if st.Duplicates != 3 || st.Requests != 2 || st.Responses != 2 || st.Matched != 2 || st.Unmatched != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestPairerSequenceWrap(t *testing.T) {
	p := NewPairer(0, 0)
	p.Observe(1, 0xffffff00, ms(1), req(MethodGet))
	p.Observe(1, 0x00000010, ms(2), req(MethodPut)) // after the wrap: new data
	p.Observe(1, 0xffffff00, ms(3), req(MethodGet)) // before it: retransmission
	if s, _ := p.Summary(1); s.Requests != 2 || s.Pending != 2 {
		t.Fatalf("Summary = %+v", s)
	}
	// Far behind (more than the window): a new stream position, not a retransmission.
	far := uint32(0x10)
	far -= dupWindow
	p.Observe(1, far, ms(4), req(MethodGet))
	if s, _ := p.Summary(1); s.Requests != 3 {
		t.Fatalf("Summary = %+v", s)
	}
}

func TestPairerMaxPending(t *testing.T) {
	p := NewPairer(0, 3)
	for i := range 5 {
		p.Observe(1, uint32(i*10), ms(uint64(i)), req(MethodGet))
	}
	s, _ := p.Summary(1)
	if s.Requests != 5 || s.Dropped != 2 || s.Pending != 3 {
		t.Fatalf("Summary = %+v", s)
	}
	for i := range 5 {
		_, ok := p.Observe(1, uint32(i*10), ms(100), resp(200))
		if ok != (i < 3) {
			t.Fatalf("response %d: ok=%v", i, ok)
		}
	}
	if st := p.Stats(); st.Dropped != 2 || st.Matched != 3 || st.Unmatched != 2 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestPairerQueueGrowsAndWraps(t *testing.T) {
	p := NewPairer(0, 64)
	seq, rseq := uint32(0), uint32(0)
	next := 0   // method index of the next expected response
	queued := 0 // method index of the next request
	for round := range 50 {
		for range round%7 + 1 {
			seq += 10
			p.Observe(1, seq, ms(uint64(round)), req(Method(queued%9+1)))
			queued++
		}
		for range round%5 + 1 {
			if next == queued {
				break
			}
			rseq += 10
			m, ok := p.Observe(1, rseq, ms(uint64(round)+1), resp(200))
			if !ok || m.Method != Method(next%9+1) {
				t.Fatalf("round %d: %+v %v, want %v", round, m, ok, Method(next%9+1))
			}
			next++
		}
	}
	if s, _ := p.Summary(1); s.Pending != queued-next || s.Dropped != 0 {
		t.Fatalf("Summary = %+v, want %d pending", s, queued-next)
	}
}

func TestPairerEviction(t *testing.T) {
	p := NewPairer(2, 0)
	p.Observe(1, 0, ms(1), req(MethodGet))
	p.Observe(2, 0, ms(2), req(MethodGet))
	p.Observe(2, 0, ms(2), req(MethodGet)) // duplicate, but touches 2
	p.Observe(1, 10, ms(3), req(MethodPost))
	// 2 is now least recently used.
	p.Observe(3, 0, ms(4), req(MethodGet))
	if _, ok := p.Summary(2); ok {
		t.Fatal("connection 2 not evicted")
	}
	if s, ok := p.Summary(1); !ok || s.Pending != 2 {
		t.Fatalf("connection 1: %+v %v", s, ok)
	}
	st := p.Stats()
	if st.Conns != 2 || st.Evicted != 1 || st.Lost != 1 {
		t.Fatalf("Stats = %+v", st)
	}
	// An evicted connection starts over.
	if _, ok := p.Observe(2, 0, ms(5), resp(200)); ok {
		t.Fatal("response on an evicted connection matched")
	}
	if st := p.Stats(); st.Evicted != 2 || st.Unmatched != 1 { // evicted 1 (LRU) this time
		t.Fatalf("Stats = %+v", st)
	}
}

func TestPairerForget(t *testing.T) {
	p := NewPairer(0, 0)
	p.Observe(5, 100, ms(1), req(MethodGet))
	p.Observe(5, 200, ms(2), req(MethodGet))
	p.Observe(5, 900, ms(4), resp(503))
	s, ok := p.Forget(5)
	want := Summary{Requests: 2, Responses: 1, Matched: 1, Pending: 1, MinLatency: ms(3), MaxLatency: ms(3), SumLatency: ms(3)}
	want.Class[5] = 1
	if !ok || s != want {
		t.Fatalf("Forget = %+v %v\nwant %+v", s, ok, want)
	}
	if _, ok := p.Summary(5); ok {
		t.Fatal("Summary after Forget")
	}
	if _, ok := p.Forget(5); ok {
		t.Fatal("second Forget succeeded")
	}
	if st := p.Stats(); st.Conns != 0 || st.Unanswered != 1 {
		t.Fatalf("Stats = %+v", st)
	}
	// The id is reused by a new connection (new ISN, lower): nothing carries over.
	p.Observe(5, 50, ms(10), req(MethodPut))
	m, ok := p.Observe(5, 10, ms(11), resp(201))
	mustMatch(t, m, ok, MethodPut, 201, ms(1))
	if s, _ := p.Summary(5); s.Requests != 1 || s.Matched != 1 {
		t.Fatalf("Summary after reuse = %+v", s)
	}
}

func TestPairerClockSkew(t *testing.T) {
	p := NewPairer(0, 0)
	p.Observe(1, 0, ms(10), req(MethodGet))
	m, ok := p.Observe(1, 0, ms(9), resp(200))
	if !ok || m.Latency != 0 {
		t.Fatalf("%+v %v", m, ok)
	}
	if st := p.Stats(); st.ClockSkew != 1 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestPairerNoAlloc(t *testing.T) {
	p := NewPairer(1024, 0)
	getL, okL := parsed("GET / HTTP/1.1\r\n"), parsed("HTTP/1.1 200 OK\r\n")
	var seq uint32
	step := func() {
		for c := uint64(0); c < 64; c++ {
			seq += 1000
			p.Observe(c, seq, uint64(seq), getL)
			p.Observe(c, seq+1, uint64(seq)+5, getL)
			p.Observe(c, seq, uint64(seq)+10, okL)
			p.Observe(c, seq+1, uint64(seq)+15, okL)
			if c%8 == 0 {
				p.Forget(c)
			}
		}
	}
	step() // warm up: states, queues, map
	if allocs := testing.AllocsPerRun(100, step); allocs != 0 {
		t.Errorf("steady state allocates %v times per 256 events", allocs)
	}
}

// TestObserveAtAgreesWithObserve: with hints (ObserveAt, the caller keeping
// each connection's place) the Pairer answers exactly as without, through
// evictions (few places), Forget and connection numbers reused by no one
// but seen again late (stale hints).
func TestObserveAtAgreesWithObserve(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	plain, hinted := NewPairer(8, 4), NewPairer(8, 4)
	slots := map[uint64]*int32{}
	next := uint64(1)
	live := []uint64{}
	stale := 0
	for step := 0; step < 200000; step++ {
		var conn uint64
		switch op := r.IntN(20); {
		case op == 0 || len(live) == 0: // a new connection
			conn = next
			next++
			live = append(live, conn)
			slots[conn] = new(int32)
		case op == 1: // it closes
			k := r.IntN(len(live))
			conn = live[k]
			live = append(live[:k], live[k+1:]...)
			s1, ok1 := plain.Forget(conn)
			s2, ok2 := hinted.Forget(conn)
			if s1 != s2 || ok1 != ok2 {
				t.Fatalf("step %d: Forget(%d) = %+v %v, with hints %+v %v", step, conn, s1, ok1, s2, ok2)
			}
			continue
		case op == 2 && next > 1: // a late segment of any connection, closed ones too
			conn = 1 + uint64(r.IntN(int(next-1)))
		default:
			conn = live[r.IntN(len(live))]
		}
		l := req(MethodGet)
		if r.IntN(2) == 0 {
			l = resp(200)
		}
		seq, ts := uint32(step*100), uint64(step)*1000
		if s := slots[conn]; *s != 0 && (int(*s) > len(hinted.states) || hinted.states[*s-1].conn != conn) {
			stale++
		}
		m1, ok1 := plain.Observe(conn, seq, ts, l)
		m2, ok2 := hinted.ObserveAt(slots[conn], conn, seq, ts, l)
		if m1 != m2 || ok1 != ok2 {
			t.Fatalf("step %d: conn %d: Observe = %+v %v, ObserveAt = %+v %v", step, conn, m1, ok1, m2, ok2)
		}
	}
	if a, b := plain.Stats(), hinted.Stats(); a != b {
		t.Errorf("stats differ: %+v, with hints %+v", a, b)
	}
	if stale == 0 || plain.Stats().Evicted == 0 {
		t.Errorf("%d stale hints, %d evictions: the test misses those paths", stale, plain.Stats().Evicted)
	}
}
