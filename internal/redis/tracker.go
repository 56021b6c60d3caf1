package redis

import (
	"net/netip"
	"slices"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/l7cap/stream"
)

// Defaults and bounds of a Tracker.
const (
	DefaultTimeoutNs = 10e9  // a request unanswered this long is reported unanswered
	idleNs           = 120e9 // a connection without traffic this long (and nothing pending) is forgotten
	MaxPending       = 1024  // requests waiting per connection (with their command and key)
	MaxQueued        = 65536 // requests waiting on all connections
	MaxConns         = 16384 // connections followed; all are forgotten past it (counted)
	MaxCommands      = 512   // command names summarised; the others as "OTHER"
)

// connKey: one connection at one end (the socket, whose memory the next
// connection reuses at once: the addresses tell them apart).
type connKey struct {
	netns         uint32
	sock          uint64
	local, remote netip.AddrPort
}

type pendReq struct {
	ts  uint64
	cmd uint16
	req Request
}

type rconn struct {
	side event.AppSide
	conn event.Conn // Src local, Dst remote; the owner last seen
	q    []pendReq
	head int
	push bool // SUBSCRIBE/MONITOR seen: replies are pushes, not paired
	// replyLost: the reply direction lost its place; its segments are
	// skipped until the next request
	replyLost bool
	// owed: requests counted but not queued (the queue was full, see
	// request); the replies after the queued ones' are theirs
	owed   uint64
	last   uint64
	keys   [2]stream.Key // the stream directions (requests, replies)
	hasKey [2]bool
}

type cmdStats struct {
	name                []byte
	calls, errors       uint64 // since the last interval line
	totCalls, totErrors uint64
	lat, totLat         hist
	changed             bool
}

// Tracker follows Redis connections (both directions, at both ends),
// pairs each reply with the oldest request waiting on its connection
// (RESP replies come in request order: pipelines pair in order), and
// keeps per-command summaries per side. One goroutine (the pipeline's).
type Tracker struct {
	TimeoutNs uint64
	ports     []uint16

	conns   map[connKey]*rconn
	queued  int // requests waiting on all connections
	streams *stream.Follower
	cmds    map[string]uint16
	stats   [2][]*cmdStats // by side, then command index
	names   [][]byte

	// the record being handled (messages come through onMsg)
	cur    *rconn
	curReq bool
	emit   func(*event.RedisResult)
	onMsg  func([]byte, bool, uint64)
	res    event.RedisResult
	keyBuf [4 * KeyMax]byte // the key escaped for the sinks
	rep    Reply
	req    Request
	order  []*cmdStats

	// Totals (exit stats).
	Requests, Replies     uint64
	Unmatched, Unanswered uint64
	Overflow              uint64 // requests not paired: more than MaxPending waiting on their connection (or MaxQueued on all)
	Push                  uint64 // replies not paired: RESP3 pushes, a subscribed or monitoring connection
	BadRequest, BadReply  uint64 // messages framed but not understood
	DesyncDropped         uint64 // requests given up when a direction of their connection lost bytes
	SkippedSegments       uint64 // reply segments skipped after their direction lost its place (until the next request)
	ConnsReset            uint64
}

// NewTracker returns a Tracker for the service ports given.
func NewTracker(ports ...uint16) *Tracker {
	t := &Tracker{TimeoutNs: DefaultTimeoutNs, ports: ports, conns: map[connKey]*rconn{},
		streams: stream.New(), cmds: map[string]uint16{}}
	t.onMsg = t.message
	t.streams.OnLoss = t.loss
	return t
}

// Streams is the stream follower (its counters).
func (t *Tracker) Streams() *stream.Follower { return t.streams }

func (t *Tracker) service(port uint16) bool { return slices.Contains(t.ports, port) }

// Packet handles one capture record of the Redis port (ev.Ext.App, the
// socket and owner in ev.Conn); emit gets each pair, lone request or lone
// reply.
func (t *Tracker) Packet(ev *event.Event, emit func(*event.RedisResult)) {
	d := &ev.Ext.App
	if !d.TCP || d.Tick {
		return
	}
	local, remote := d.Src, d.Dst
	if d.Rx {
		local, remote = d.Dst, d.Src
	}
	side := event.AppClient
	if t.service(local.Port()) {
		side = event.AppServer
	}
	isReq := (side == event.AppServer) == d.Rx
	k := connKey{ev.Conn.Netns, ev.Conn.Sock, local, remote}
	c := t.conns[k]
	if c == nil {
		if len(t.conns) >= MaxConns {
			t.resetConns()
		}
		c = &rconn{side: side}
		t.conns[k] = c
	}
	if ev.Conn.Pid != 0 || c.conn.Sock == 0 {
		c.conn = ev.Conn
	}
	c.conn.Src, c.conn.Dst = local, remote
	c.last = ev.TS
	sk := stream.Key{Sock: ev.Conn.Sock, Rx: d.Rx, Src: d.Src, Dst: d.Dst}
	dir := 1
	fr := FrameReply
	if isReq {
		dir, fr = 0, FrameRequest
	}
	c.keys[dir], c.hasKey[dir] = sk, true
	if !isReq && c.replyLost {
		t.SkippedSegments++ // the rest of a reply not followed: skipped until the next request
		return
	}
	t.cur, t.curReq, t.emit = c, isReq, emit
	t.streams.Segment(sk, d.Seq, int(d.PayLen), d.Payload(), ev.TS, fr, t.onMsg)
	t.cur, t.emit = nil, nil
}

// loss: a direction of the current connection lost its place (bytes
// missed, not followed): replies could now pair with the wrong requests,
// so what waits is given up (counted), before any later message.
//
// A reply direction that lost its place (a long aggregate reply whose
// elements run past the bytes captured of a large segment) is not followed
// again until the client's next request: a client that waits for each
// reply sends it once the last reply is whole, so the next reply segment
// starts a reply (the segments in between are skipped and counted).
func (t *Tracker) loss(k stream.Key) {
	c := t.cur
	if c == nil {
		return
	}
	if c.head < len(c.q) {
		t.DesyncDropped += uint64(len(c.q) - c.head)
		t.clearQ(c)
	}
	c.owed = 0
	if !t.curReq {
		c.replyLost = true
	}
}

func (t *Tracker) clearQ(c *rconn) {
	t.queued -= len(c.q) - c.head
	clear(c.q)
	c.q, c.head = c.q[:0], 0
}

func (t *Tracker) resetConns() {
	for k, c := range t.conns {
		t.forget(k, c)
	}
	t.ConnsReset++
}

func (t *Tracker) forget(k connKey, c *rconn) {
	t.DesyncDropped += uint64(len(c.q) - c.head)
	t.clearQ(c)
	for i := range c.keys {
		if c.hasKey[i] {
			t.streams.Forget(c.keys[i])
		}
	}
	delete(t.conns, k)
}

func (t *Tracker) message(b []byte, cut bool, ts uint64) {
	c := t.cur
	if t.curReq {
		t.request(c, b, ts)
	} else {
		t.reply(c, b, ts)
	}
}

// command interns a command name (the summary's index).
func (t *Tracker) command(name []byte) uint16 {
	if i, ok := t.cmds[string(name)]; ok {
		return i
	}
	if len(t.names) >= MaxCommands {
		name = []byte("OTHER")
		if i, ok := t.cmds["OTHER"]; ok {
			return i
		}
	}
	i := uint16(len(t.names))
	n := append([]byte(nil), name...)
	t.cmds[string(n)] = i
	t.names = append(t.names, n)
	return i
}

func (t *Tracker) stat(side event.AppSide, cmd uint16) *cmdStats {
	s := &t.stats[side]
	for len(*s) <= int(cmd) {
		*s = append(*s, nil)
	}
	st := (*s)[cmd]
	if st == nil {
		st = &cmdStats{name: t.names[cmd]}
		(*s)[cmd] = st
	}
	return st
}

func (t *Tracker) request(c *rconn, b []byte, ts uint64) {
	r := &t.req
	if ParseRequest(b, r) != nil {
		t.BadRequest++
		return
	}
	t.Requests++
	if c.replyLost && c.hasKey[1] {
		c.replyLost = false
		t.streams.Forget(c.keys[1]) // its next segment starts a reply
	}
	cmd := t.command(r.Command())
	if c.push || c.owed > 0 || len(c.q)-c.head >= MaxPending || t.queued >= MaxQueued {
		// counted, not paired: a subscribed connection (replies are
		// messages), or too many waiting. Replies come in order: the
		// queued requests' first, then these (owed), so nothing is
		// evicted from the queue (its reply would pair with the next)
		st := t.stat(c.side, cmd)
		st.calls++
		st.totCalls++
		st.changed = true
		if !c.push {
			c.owed++
			t.Overflow++
		}
		return
	}
	if c.head > 0 && c.head == len(c.q) {
		c.q, c.head = c.q[:0], 0
	}
	c.q = append(c.q, pendReq{ts: ts, cmd: cmd})
	c.q[len(c.q)-1].req = *r
	t.queued++
	switch string(r.Command()) {
	case "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR":
		c.push = true // its own reply still pairs; what follows are messages
	}
}

func (t *Tracker) pop(c *rconn) *pendReq {
	p := &c.q[c.head]
	c.head++
	t.queued--
	return p
}

func (t *Tracker) reply(c *rconn, b []byte, ts uint64) {
	r := &t.rep
	if !ParseReply(b, r) {
		t.BadReply++
		return
	}
	t.Replies++
	if r.Push() || (c.push && c.head == len(c.q)) {
		t.Push++
		return
	}
	res := &t.res
	*res = event.RedisResult{Kind: event.RedisUnmatched, Side: c.side, TS: ts, Conn: c.conn,
		Reply: r.Type, ReplyNull: r.Null}
	if r.IsError() {
		res.Err = r.ErrCode()
	}
	if c.head == len(c.q) {
		if c.owed > 0 { // a request counted but not queued
			c.owed--
			return
		}
		t.Unmatched++
		t.emit(res)
		return
	}
	p := t.pop(c)
	res.Kind = event.RedisAnswer
	res.Cmd, res.Args = p.req.Command(), p.req.Args
	if p.req.HasKey {
		res.Key, res.KeyCut = p.req.AppendKey(t.keyBuf[:0]), p.req.KeyCut
	}
	if ts > p.ts {
		res.LatencyNs = ts - p.ts
	}
	st := t.stat(c.side, p.cmd)
	st.calls++
	st.totCalls++
	if r.IsError() {
		st.errors++
		st.totErrors++
	}
	st.lat.add(res.LatencyNs)
	st.totLat.add(res.LatencyNs)
	st.changed = true
	t.emit(res)
}

func (t *Tracker) unanswered(c *rconn, p *pendReq) {
	t.Unanswered++
	res := &t.res
	*res = event.RedisResult{Kind: event.RedisUnanswered, Side: c.side, TS: p.ts, Conn: c.conn,
		Cmd: p.req.Command(), Args: p.req.Args}
	if p.req.HasKey {
		res.Key, res.KeyCut = p.req.AppendKey(t.keyBuf[:0]), p.req.KeyCut
	}
	st := t.stat(c.side, p.cmd)
	st.calls++
	st.totCalls++
	st.changed = true
	t.emit(res)
}

// Expire reports the requests waiting longer than TimeoutNs at nowNs
// as unanswered and forgets idle connections.
func (t *Tracker) Expire(nowNs uint64, emit func(*event.RedisResult)) {
	t.emit = emit
	for k, c := range t.conns {
		for c.head < len(c.q) && c.q[c.head].ts+t.TimeoutNs <= nowNs {
			t.unanswered(c, t.pop(c))
		}
		if c.head == len(c.q) {
			t.clearQ(c)
			if c.last+idleNs <= nowNs {
				t.forget(k, c)
			}
		}
	}
	t.emit = nil
}

// Flush reports every request still waiting (at exit) as unanswered.
func (t *Tracker) Flush(emit func(*event.RedisResult)) {
	t.emit = emit
	for _, c := range t.conns {
		for c.head < len(c.q) {
			t.unanswered(c, t.pop(c))
		}
		t.clearQ(c)
	}
	t.emit = nil
}

// Pending is the number of requests waiting for their reply.
func (t *Tracker) Pending() int {
	n := 0
	for _, c := range t.conns {
		n += len(c.q) - c.head
	}
	return n
}

// Summaries calls fn for each command's numbers at each side (client
// first, then by name): every command with calls since the last interval
// line (final false: interval numbers, then reset), or every command
// ever seen (final true: totals since start).
func (t *Tracker) Summaries(final bool, fn func(*event.RedisSummary)) {
	var s event.RedisSummary
	for side := range t.stats {
		t.order = t.order[:0]
		for _, st := range t.stats[side] {
			if st != nil && (final && st.totCalls > 0 || !final && st.changed) {
				t.order = append(t.order, st)
			}
		}
		slices.SortFunc(t.order, func(a, b *cmdStats) int { return slices.Compare(a.name, b.name) })
		for _, st := range t.order {
			h, calls, errs := &st.lat, st.calls, st.errors
			if final {
				h, calls, errs = &st.totLat, st.totCalls, st.totErrors
			}
			s = event.RedisSummary{Side: event.AppSide(side), Cmd: st.name, Calls: calls, Errors: errs,
				Paired: h.n, P50Ns: h.quantile(0.5), P99Ns: h.quantile(0.99), MaxNs: h.max, Final: final}
			fn(&s)
			if !final {
				st.calls, st.errors, st.changed = 0, 0, false
				st.lat.reset()
			}
		}
	}
}

// Counters are the totals for the exit stats.
func (t *Tracker) Counters() map[string]uint64 {
	s := t.streams
	return map[string]uint64{
		"redis_requests": t.Requests, "redis_replies": t.Replies, "redis_unmatched": t.Unmatched,
		"redis_unanswered": t.Unanswered, "redis_pending_overflow": t.Overflow, "redis_push": t.Push,
		"redis_bad_request": t.BadRequest, "redis_bad_reply": t.BadReply, "redis_desync_dropped": t.DesyncDropped,
		"redis_reply_segments_skipped": t.SkippedSegments,
		"redis_stream_resync":          s.Resync, "redis_stream_uncaptured": s.Uncaptured, "redis_stream_bad_start": s.BadStart,
		"redis_stream_carry_full": s.CarryFull,
		"redis_flows_reset":       s.FlowsReset, "redis_conns_reset": t.ConnsReset,
	}
}
