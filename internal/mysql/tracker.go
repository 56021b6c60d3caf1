package mysql

import (
	"math"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/netwatcher/netwatcher/internal/event"
)

// Defaults of a Tracker.
const (
	DefaultPort     = 3306
	DefaultMaxConns = 16384
	DefaultIdleNs   = 300e9 // a connection silent this long is forgotten (its requests unanswered)
)

// connKey names a connection at one socket (the socket's memory is reused
// by the next connection at once: the addresses tell them apart).
type connKey struct {
	netns         uint32
	sock          uint64
	local, remote netip.AddrPort
}

// hist is a log-linear latency histogram: 8 buckets per power of two.
type hist [65 * 8]uint32

func histIdx(ns uint64) int {
	e := bits.Len64(ns)
	if e <= 3 {
		return int(ns)
	}
	return e*8 + int(ns>>(e-4))&7
}

// histVal is a bucket's middle.
func histVal(i int) uint64 {
	e, m := i/8, uint64(i%8)
	if e <= 3 {
		return uint64(i)
	}
	lo := (8 | m) << (e - 4)
	return lo + (uint64(1)<<(e-4))/2
}

func (h *hist) quantile(n uint64, q float64) uint64 {
	if n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(n)))
	want = max(want, 1)
	var acc uint64
	for i, c := range h {
		acc += uint64(c)
		if acc >= want {
			return histVal(i)
		}
	}
	return 0
}

type stat struct {
	event.MySQLStats
	h hist
}

// Tracker follows MySQL connections at both ends (each socket: its own
// state), pairs requests with responses and counts per command. One
// goroutine (the pipeline's).
type Tracker struct {
	Port     uint16 // the service port: its socket is the server side
	MaxConns int
	IdleNs   uint64

	conns map[connKey]*conn
	free  []*conn
	stats map[event.MySQLStatKey]*stat
	order []*event.MySQLStats
	res   event.MySQLResult

	// Totals (exit stats).
	Segments    uint64 // TCP segments read
	Packets     uint64 // MySQL packets read
	Commands    uint64 // requests (command packets)
	Unmatched   uint64 // responses to no request seen (sent before the start, or lost)
	Lost        uint64 // a direction's framing lost (bytes missed): resynchronised at the next request
	Gaps        uint64 // segments after bytes never seen (ring loss)
	Uncaptured  uint64 // packet headers beyond the captured bytes of a segment
	Retransmits uint64 // segments seen already
	BadPackets  uint64 // responses that made no sense: skipped to the next request
	Evicted     uint64 // requests pushed out by more than maxPend in flight
	TLS         uint64 // connections that switched to TLS (unreadable)
	Compressed  uint64 // connections with the compressed protocol (unreadable)
	ConnsFull   uint64 // segments of connections not followed: MaxConns reached
	Expired     uint64 // connections forgotten after IdleNs of silence
}

// NewTracker returns a Tracker for the service port.
func NewTracker(port uint16) *Tracker {
	return &Tracker{Port: port, MaxConns: DefaultMaxConns, IdleNs: DefaultIdleNs,
		conns: map[connKey]*conn{}, stats: map[event.MySQLStatKey]*stat{}}
}

// Packet handles one captured TCP segment to or from the service port
// (ev.Ext.App, the socket and owner in ev.Conn); emit gets each result,
// valid until it returns.
func (t *Tracker) Packet(ev *event.Event, emit func(*event.MySQLResult)) {
	a := &ev.Ext.App
	if !a.TCP {
		return
	}
	t.Segments++
	local, remote := a.Src, a.Dst
	if a.Rx {
		local, remote = remote, local
	}
	side := event.MySQLClient
	if local.Port() == t.Port && remote.Port() != t.Port {
		side = event.MySQLServer
	}
	k := connKey{ev.Conn.Netns, ev.Conn.Sock, local, remote}
	c := t.conns[k]
	if c == nil {
		if a.PayLen == 0 {
			return
		}
		if len(t.conns) >= t.MaxConns {
			t.ConnsFull++
			return
		}
		if n := len(t.free); n > 0 {
			c, t.free = t.free[n-1], t.free[:n-1]
		} else {
			c = new(conn)
		}
		c.reset(k, side)
		t.conns[k] = c
	}
	if ev.Conn.Pid != 0 {
		c.owner.Pid, c.owner.Comm, c.owner.OwnerSrc = ev.Conn.Pid, ev.Conn.Comm, ev.Conn.OwnerSrc
	}
	fromClient := (side == event.MySQLClient) != a.Rx
	c.segment(t, fromClient, ev.TS, a.Seq, a.Payload(), int(a.PayLen), emit)
}

func (t *Tracker) drop(c *conn) {
	delete(t.conns, c.key)
	t.free = append(t.free, c)
}

// result is the Tracker's result, made for c at ts.
func (t *Tracker) result(c *conn, ts uint64) *event.MySQLResult {
	r := &t.res
	*r = event.MySQLResult{Side: c.side, TS: ts, ThreadID: c.thread}
	r.Conn = c.owner
	r.Conn.Netns, r.Conn.Sock, r.Conn.Src, r.Conn.Dst = c.key.netns, c.key.sock, c.key.local, c.key.remote
	r.Conn.IsServer = c.side == event.MySQLServer
	r.Conn.ID = 0
	return r
}

// count adds a result to its command's counters.
func (t *Tracker) count(r *event.MySQLResult) {
	k := event.MySQLStatKey{Side: r.Side, Command: r.Command}
	s := t.stats[k]
	if s == nil {
		s = &stat{MySQLStats: event.MySQLStats{MySQLStatKey: k}}
		t.stats[k] = s
	}
	s.Changed = true
	s.Calls++
	s.Rows += r.Rows
	switch r.Resp {
	case event.MySQLErr:
		s.Errors++
	case event.MySQLUnanswered:
		s.Unanswered++
		return
	case event.MySQLNoResp:
		return
	}
	s.Answered++
	s.h[histIdx(r.LatencyNs)]++
	s.MaxNs = max(s.MaxNs, r.LatencyNs)
}

// Expire, at nowNs: forgets the connections silent for IdleNs (their
// requests reported unanswered), and completes the responses that were
// only waiting to see whether an EOF follows.
func (t *Tracker) Expire(nowNs uint64, emit func(*event.MySQLResult)) {
	for _, c := range t.conns {
		if c.quit && c.lastSeen+1e9 <= nowNs { // COM_QUIT a second ago
			c.flush(t, emit)
			t.drop(c)
			continue
		}
		if c.lastSeen+t.IdleNs <= nowNs {
			c.flush(t, emit)
			t.Expired++
			t.drop(c)
			continue
		}
		if c.pn > 0 && c.maybeDone && c.lastSrv+1e9 <= nowNs {
			c.complete(t, c.lastSrv, emit)
		}
	}
}

// Flush reports every request still waiting (at exit).
func (t *Tracker) Flush(emit func(*event.MySQLResult)) {
	for _, c := range t.conns {
		c.flush(t, emit)
	}
}

// Stats calls fn for each command's counters (by side, command), all of
// them or only those changed since the last call that asked so.
func (t *Tracker) Stats(changedOnly bool, fn func(*event.MySQLStats)) {
	t.order = t.order[:0]
	for _, s := range t.stats {
		if s.Changed || !changedOnly {
			s.P50Ns = min(s.h.quantile(s.Answered, 0.50), s.MaxNs)
			s.P99Ns = min(s.h.quantile(s.Answered, 0.99), s.MaxNs)
			t.order = append(t.order, &s.MySQLStats)
		}
	}
	slices.SortFunc(t.order, func(a, b *event.MySQLStats) int {
		if a.Side != b.Side {
			return int(a.Side) - int(b.Side)
		}
		return int(a.Command) - int(b.Command)
	})
	for _, s := range t.order {
		if changedOnly {
			s.Changed = false
		}
		fn(s)
	}
}

// Pending is the number of requests waiting for a response.
func (t *Tracker) Pending() int {
	n := 0
	for _, c := range t.conns {
		n += int(c.pn)
	}
	return n
}

// Counters are the totals for the exit stats.
func (t *Tracker) Counters() map[string]uint64 {
	return map[string]uint64{
		"mysql_segments": t.Segments, "mysql_packets": t.Packets, "mysql_commands": t.Commands,
		"mysql_unmatched": t.Unmatched, "mysql_stream_lost": t.Lost, "mysql_gaps": t.Gaps,
		"mysql_uncaptured": t.Uncaptured, "mysql_retransmits": t.Retransmits, "mysql_bad_packets": t.BadPackets,
		"mysql_evicted": t.Evicted, "mysql_tls_conns": t.TLS, "mysql_compressed_conns": t.Compressed,
		"mysql_conns_full": t.ConnsFull, "mysql_conns_expired": t.Expired,
	}
}
