package redis

import (
	"net/netip"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
)

var (
	cli = netip.MustParseAddrPort("10.0.0.1:40000")
	srv = netip.MustParseAddrPort("10.0.0.2:6379")
)

// seg makes a capture record: payload b with sequence number seq, sent or
// received, between src and dst, on socket sk (owner pid).
func seg(ts uint64, rx bool, src, dst netip.AddrPort, sk uint64, pid uint32, seq uint32, b []byte) *event.Event {
	ev := &event.Event{Type: event.Redis, TS: ts, Conn: event.Conn{Sock: sk, Netns: 7, Pid: pid}, Ext: &event.Ext{}}
	copy(ev.Conn.Comm[:], "proc")
	d := &ev.Ext.App
	d.Rx, d.TCP, d.Src, d.Dst, d.Seq, d.PayLen = rx, true, src, dst, seq, uint16(len(b))
	d.Len = uint16(copy(d.Data[:], b))
	return ev
}

type results []event.RedisResult

func (r *results) emit(x *event.RedisResult) {
	c := *x
	c.Cmd, c.Key, c.Err = clone(x.Cmd), clone(x.Key), clone(x.Err)
	*r = append(*r, c)
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// conv is one connection seen at the client's socket (client=true) or
// the server's, with its own sequence numbers per direction.
type conv struct {
	t          *Tracker
	got        *results
	client     bool
	sk         uint64
	reqSeq     uint32
	repSeq     uint32
	ts         uint64
	cliA, srvA netip.AddrPort
}

func (c *conv) req(b []byte) {
	c.ts += 10
	// requests: sent by the client's socket, received by the server's
	c.t.Packet(seg(c.ts, !c.client, c.cliA, c.srvA, c.sk, 5, c.reqSeq, b), c.got.emit)
	c.reqSeq += uint32(len(b))
}

func (c *conv) rep(b []byte) {
	c.ts += 10
	c.t.Packet(seg(c.ts, c.client, c.srvA, c.cliA, c.sk, 5, c.repSeq, b), c.got.emit)
	c.repSeq += uint32(len(b))
}

func join(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// TestPipeline: a pipeline of 4 requests in one segment, replies split
// over segments (one cut inside a bulk), paired in order at both ends;
// then a request split over segments; summaries count calls, errors.
func TestPipeline(t *testing.T) {
	for _, client := range []bool{true, false} {
		tr := NewTracker(Port)
		var got results
		c := &conv{t: tr, got: &got, client: client, sk: 0x51, reqSeq: 100, repSeq: 0xfffffff0, cliA: cli, srvA: srv}
		c.req(join(cmd("SET", "a", "1"), cmd("GET", "a"), cmd("LPUSH", "a", "x"), cmd("INCR", "n")))
		replies := join([]byte("+OK\r\n$1\r\n1\r\n-WRONGTYPE Operation against a key\r\n:7\r\n"))
		c.rep(replies[:7])
		c.rep(replies[7:30])
		c.rep(replies[30:])
		split := cmd("HSET", "h", "f", "v")
		c.req(split[:6])
		c.req(split[6:])
		c.rep([]byte(":1\r\n"))
		want := []struct {
			cmd, key, reply, err string
		}{{"SET", "a", "+", ""}, {"GET", "a", "$", ""}, {"LPUSH", "a", "-", "WRONGTYPE"}, {"INCR", "n", ":", ""}, {"HSET", "h", ":", ""}}
		if len(got) != len(want) {
			t.Fatalf("client %v: %d results %+v", client, len(got), got)
		}
		side := event.AppServer
		if client {
			side = event.AppClient
		}
		for i, w := range want {
			r := got[i]
			if r.Kind != event.RedisAnswer || string(r.Cmd) != w.cmd || string(r.Key) != w.key || string(r.Reply) != w.reply ||
				string(r.Err) != w.err || r.Side != side || r.LatencyNs == 0 || r.Conn.Src.Port() != map[bool]uint16{true: 40000, false: 6379}[client] {
				t.Errorf("client %v pair %d: %+v", client, i, r)
			}
		}
		if got[4].LatencyNs != 20 { // from the request's first segment
			t.Errorf("split request latency %d", got[4].LatencyNs)
		}
		var sums []event.RedisSummary
		tr.Summaries(false, func(s *event.RedisSummary) { c := *s; c.Cmd = clone(s.Cmd); sums = append(sums, c) })
		if len(sums) != 5 || string(sums[2].Cmd) != "INCR" || string(sums[3].Cmd) != "LPUSH" || sums[3].Errors != 1 || sums[3].Calls != 1 || sums[3].P50Ns == 0 {
			t.Errorf("summaries %+v", sums)
		}
		n := 0
		tr.Summaries(false, func(*event.RedisSummary) { n++ })
		tr.Summaries(true, func(s *event.RedisSummary) { n += 10 * int(s.Calls) })
		if n != 50 || tr.Pending() != 0 || tr.Unmatched != 0 {
			t.Errorf("after the interval: %d, pending %d", n, tr.Pending())
		}
	}
}

// TestUnmatchedUnansweredDesync: a reply to no request; a request left
// unanswered (expired, then at exit); bytes missed on the reply side give
// up the requests waiting (they would pair with the wrong replies).
func TestUnmatchedUnansweredDesync(t *testing.T) {
	tr := NewTracker(Port)
	tr.TimeoutNs = 1000
	var got results
	c := &conv{t: tr, got: &got, client: true, sk: 1, cliA: cli, srvA: srv}
	c.rep([]byte("+OK\r\n"))
	if len(got) != 1 || got[0].Kind != event.RedisUnmatched || tr.Unmatched != 1 {
		t.Fatalf("unmatched %+v", got)
	}
	c.req(cmd("BLPOP", "q", "0"))
	tr.Expire(c.ts+999, got.emit)
	if len(got) != 1 {
		t.Fatal("expired early")
	}
	tr.Expire(c.ts+1000, got.emit)
	if len(got) != 2 || got[1].Kind != event.RedisUnanswered || string(got[1].Cmd) != "BLPOP" {
		t.Fatalf("unanswered %+v", got)
	}
	c.req(join(cmd("GET", "a"), cmd("GET", "b")))
	c.repSeq += 100 // a reply segment lost
	c.rep([]byte("$1\r\nb\r\n"))
	// the reply after the gap pairs with nothing (it may be GET a's or GET b's)
	if tr.DesyncDropped != 2 || tr.Pending() != 0 || len(got) != 3 || got[2].Kind != event.RedisUnmatched {
		t.Fatalf("desync dropped %d pending %d results %+v", tr.DesyncDropped, tr.Pending(), got)
	}
	c.req(cmd("GET", "c"))
	tr.Flush(got.emit)
	if len(got) != 4 || got[3].Kind != event.RedisUnanswered || string(got[3].Key) != "c" {
		t.Fatalf("flush %+v", got)
	}
}

// TestSubscribe: after SUBSCRIBE the messages are pushes, not replies.
func TestSubscribe(t *testing.T) {
	tr := NewTracker(Port)
	var got results
	c := &conv{t: tr, got: &got, client: true, sk: 1, cliA: cli, srvA: srv}
	c.req(cmd("SUBSCRIBE", "ch"))
	c.rep([]byte("*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"))
	c.rep([]byte("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"))
	c.rep([]byte(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"))
	if len(got) != 1 || string(got[0].Cmd) != "SUBSCRIBE" || got[0].Reply != '*' || tr.Push != 2 {
		t.Fatalf("push %d %+v", tr.Push, got)
	}
}

func TestPacketNoAlloc(t *testing.T) {
	tr := NewTracker(Port)
	n := 0
	emit := func(*event.RedisResult) { n++ }
	reqs := join(cmd("SET", "k", "v"), cmd("GET", "k"))
	reps := []byte("+OK\r\n$1\r\nv\r\n")
	var seq [2]uint32
	run := func() {
		tr.Packet(seg(1, false, cli, srv, 1, 5, seq[0], reqs), emit)
		tr.Packet(seg(2, true, srv, cli, 1, 5, seq[1], reps), emit)
		seq[0] += uint32(len(reqs))
		seq[1] += uint32(len(reps))
	}
	a, b := seg(1, false, cli, srv, 1, 5, 0, reqs), seg(2, true, srv, cli, 1, 5, 0, reps)
	run()
	if a := testing.AllocsPerRun(100, func() {
		a.Ext.App.Seq, b.Ext.App.Seq = seq[0], seq[1]
		tr.Packet(a, emit)
		tr.Packet(b, emit)
		seq[0] += uint32(len(reqs))
		seq[1] += uint32(len(reps))
	}); a != 0 {
		t.Errorf("%v allocations per request/reply", a)
	}
	if n != 2*102 || tr.Unmatched != 0 {
		t.Errorf("%d pairs, %d unmatched", n, tr.Unmatched)
	}
}

// TestReplyPastCapture: a long array reply in large segments whose
// elements run past the bytes captured: its request is paired (the reply
// typed by its first line), the rest of the reply is skipped, and the next
// request's reply pairs with it (not with a piece of the long reply).
func TestReplyPastCapture(t *testing.T) {
	tr := NewTracker(Port)
	var got results
	c := &conv{t: tr, got: &got, client: true, sk: 1, cliA: cli, srvA: srv}
	c.req(cmd("COMMAND", "DOCS"))
	var long []byte
	long = append(long, "*300\r\n"...)
	for i := 0; i < 300; i++ {
		long = append(long, "*2\r\n$60\r\n"...)
		long = append(long, make([]byte, 60)...)
		long = append(long, "\r\n*1\r\n:1\r\n"...)
	}
	for off := 0; off < len(long); off += 7000 {
		c.rep(long[off:min(off+7000, len(long))])
	}
	c.req(cmd("GET", "k"))
	c.rep([]byte("$1\r\nv\r\n"))
	if len(got) != 2 || string(got[0].Cmd) != "COMMAND" || got[0].Reply != '*' || string(got[1].Cmd) != "GET" || got[1].Reply != '$' ||
		tr.Unmatched != 0 || tr.SkippedSegments == 0 || tr.Streams().Uncaptured != 1 {
		t.Fatalf("skipped %d uncaptured %d: %+v", tr.SkippedSegments, tr.Streams().Uncaptured, got)
	}
}

// TestRedisPort: --redis-port is the capture's port and names the sides
// (the socket whose local port it is is the server's).
func TestRedisPort(t *testing.T) {
	p := New(&config.Config{RedisPort: 7000})
	if ps := p.Ports(); len(ps) != 1 || ps[0] != 7000 {
		t.Fatalf("ports %v", ps)
	}
	if ps := New(&config.Config{}).Ports(); len(ps) != 1 || ps[0] != Port {
		t.Fatalf("default ports %v", ps)
	}
	var got results
	s := netip.MustParseAddrPort("10.0.0.2:7000")
	c := &conv{t: p.Tracker(), got: &got, client: false, sk: 1, cliA: cli, srvA: s}
	c.req(cmd("GET", "k"))
	c.rep([]byte("$-1\r\n"))
	if len(got) != 1 || got[0].Side != event.AppServer || got[0].Conn.Src != s {
		t.Fatalf("%+v", got)
	}
}

// TestOverflow: more requests in flight on a connection than MaxPending:
// the ones past it are counted but not paired, their replies skipped in
// order, and pairing goes on exactly after them (nothing crosses).
func TestOverflow(t *testing.T) {
	tr := NewTracker(Port)
	var got results
	c := &conv{t: tr, got: &got, client: true, sk: 1, cliA: cli, srvA: srv}
	var reqs, reps []byte
	for i := 0; i < MaxPending+6; i++ {
		reqs = append(reqs, cmd("INCR", "n")...)
		reps = append(reps, ":1\r\n"...)
	}
	for off := 0; off < len(reqs); off += 1400 {
		c.req(reqs[off:min(off+1400, len(reqs))])
	}
	c.req(cmd("GET", "k")) // still owed: after the overflowed ones
	for off := 0; off < len(reps); off += 1400 {
		c.rep(reps[off:min(off+1400, len(reps))])
	}
	c.rep([]byte("$1\r\nv\r\n"))
	c.req(cmd("SET", "k", "v"))
	c.rep([]byte("+OK\r\n"))
	if tr.Overflow != 7 || tr.Unmatched != 0 || len(got) != MaxPending+1 || tr.Pending() != 0 {
		t.Fatalf("overflow %d unmatched %d pairs %d pending %d", tr.Overflow, tr.Unmatched, len(got), tr.Pending())
	}
	for i, r := range got[:MaxPending] {
		if string(r.Cmd) != "INCR" || r.Reply != ':' {
			t.Fatalf("pair %d: %s %c", i, r.Cmd, r.Reply)
		}
	}
	if r := got[MaxPending]; string(r.Cmd) != "SET" || r.Reply != '+' {
		t.Errorf("after the overflow: %s %c", r.Cmd, r.Reply)
	}
	var calls uint64
	tr.Summaries(true, func(s *event.RedisSummary) { calls += s.Calls })
	if calls != MaxPending+8 {
		t.Errorf("calls %d, want %d", calls, MaxPending+8)
	}
}
