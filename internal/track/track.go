// Package track keeps the user-space connection table: what connects.log
// shows and what packet/error records are attributed to.
package track

import (
	"net/netip"
	"slices"

	"github.com/netwatcher/netwatcher/internal/event"
)

// Entry is one connection as currently known.
type Entry struct {
	Conn     event.Conn
	Stats    event.Stats
	HasStats bool
	Closed   bool
	CloseNs  uint64
	walk     uint64 // the last kernel-table walk that found it
}

// MaxClosed bounds how many closed connections -a keeps; the oldest closed
// ones are evicted first and counted.
const MaxClosed = 100000

// Table is the connection table. Not safe for concurrent use: one goroutine
// (the pipeline) owns it.
type Table struct {
	keepClosed bool
	m          map[uint64]*Entry
	byTuple    map[TupleKey]uint64 // open connections by (netns, local, remote)
	closed     []uint64            // close order, for eviction
	Evicted    uint64              // closed entries dropped because of MaxClosed
	// AdoptSampled: Sample adds established connections it does not know.
	AdoptSampled bool
	// SweepUnsampled: EndWalk removes open connections the walk did not
	// find (no close records come, see conn.Options.NoClose).
	SweepUnsampled bool
	walk           uint64

	// The last removed connections' addresses: packet records carry only
	// their socket, and the last ones of a connection may be read after its
	// close (two rings, see engine).
	gone    [goneLen]goneConn
	goneIdx map[uint64]int
	goneN   int
}

const goneLen = 4096

type goneConn struct {
	sk       uint64
	est      uint64
	src, dst netip.AddrPort
	prev     int // slot of the previous removal of the same socket, -1: none
}

// New returns an empty table; keepClosed is -a.
func New(keepClosed bool) *Table {
	return &Table{keepClosed: keepClosed, m: make(map[uint64]*Entry), byTuple: make(map[TupleKey]uint64),
		goneIdx: make(map[uint64]int, goneLen)}
}

// AddrsOf returns the local and remote address of the connection that had
// socket sk and was established at a time whose low 32 bits are estLo (what
// a packet record carries): the table's entry, or one of the last goneLen
// removed ones. Socket memory is reused at once, so the socket alone does
// not say which connection a late record belongs to.
func (t *Table) AddrsOf(sk uint64, estLo uint32) (src, dst netip.AddrPort, ok bool) {
	if e := t.m[sk]; e != nil && uint32(e.Conn.EstNs) == estLo {
		return e.Conn.Src, e.Conn.Dst, true
	}
	// The same socket may have been removed several times in a row: follow
	// its earlier removals, newest first.
	i, ok := t.goneIdx[sk]
	for n := 0; ok && n < goneLen; n++ {
		g := &t.gone[i]
		if g.sk != sk {
			break // that slot was reused since
		}
		if uint32(g.est) == estLo {
			return g.src, g.dst, true
		}
		if g.prev < 0 {
			break
		}
		i = g.prev
	}
	return src, dst, false
}

// closedAlready: c (by socket and establishment time) was removed at its close.
func (t *Table) closedAlready(c *event.Conn) bool {
	i, ok := t.goneIdx[c.Sock]
	return ok && t.gone[i].est == c.EstNs
}

// remember keeps the addresses of a removed connection (see gone).
func (t *Table) remember(c *event.Conn) {
	i := t.goneN % goneLen
	if old := t.gone[i].sk; old != 0 && t.goneIdx[old] == i {
		delete(t.goneIdx, old)
	}
	prev, ok := t.goneIdx[c.Sock]
	if !ok {
		prev = -1
	}
	t.gone[i] = goneConn{c.Sock, c.EstNs, c.Src, c.Dst, prev}
	t.goneIdx[c.Sock] = i
	t.goneN++
}

// Len is the number of entries (open and retained closed).
func (t *Table) Len() int { return len(t.m) }

// Get returns the entry of a socket, or nil.
func (t *Table) Get(sk uint64) *Entry { return t.m[sk] }

// Open records a connection (new or pre-existing). A socket address reused
// by a new connection replaces the old (closed) entry.
func (t *Table) Open(c *event.Conn) *Entry {
	e := t.m[c.Sock]
	if e == nil {
		e = &Entry{}
		t.m[c.Sock] = e
	}
	*e = Entry{Conn: *c, walk: t.walk}
	t.byTuple[Key(c.Netns, c.Src, c.Dst)] = c.Sock
	return e
}

// BeginWalk starts a walk of the kernel's connection table (Sample calls).
func (t *Table) BeginWalk() { t.walk++ }

// EndWalk ends a complete walk: with SweepUnsampled, open connections it
// did not find are gone (closed in the kernel) and removed. It returns how
// many.
func (t *Table) EndWalk() int {
	if !t.SweepUnsampled {
		return 0
	}
	n := 0
	for sk, e := range t.m {
		if e.Closed || e.walk >= t.walk {
			continue
		}
		if k := Key(e.Conn.Netns, e.Conn.Src, e.Conn.Dst); t.byTuple[k] == sk {
			delete(t.byTuple, k)
		}
		delete(t.m, sk)
		t.remember(&e.Conn)
		n++
	}
	return n
}

// TupleKey finds a connection by its addresses, for records that carry no
// socket (e.g. a segment dropped before the socket lookup).
type TupleKey struct {
	Netns         uint32
	Local, Remote netip.AddrPort
}

// Key builds a TupleKey; IPv4-mapped IPv6 addresses (a v6 socket carrying
// v4 traffic) are unmapped so both forms find the same connection.
func Key(netns uint32, local, remote netip.AddrPort) TupleKey {
	return TupleKey{netns,
		netip.AddrPortFrom(local.Addr().Unmap(), local.Port()),
		netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())}
}

// Lookup returns the open connection with these addresses (use Key), or nil.
func (t *Table) Lookup(k TupleKey) *Entry {
	sk, ok := t.byTuple[k]
	if !ok {
		return nil
	}
	if e := t.m[sk]; e != nil && !e.Closed {
		return e
	}
	return nil
}

// Owner updates the owner of a known connection.
func (t *Table) Owner(c *event.Conn) *Entry {
	e := t.m[c.Sock]
	if e == nil || e.Closed {
		return nil
	}
	e.Conn.Pid, e.Conn.Comm, e.Conn.OwnerSrc = c.Pid, c.Comm, c.OwnerSrc
	return e
}

// Close marks a connection closed with its final values, and removes it
// unless closed connections are kept.
func (t *Table) Close(c *event.Conn, st *event.Stats, ts uint64) *Entry {
	e := t.m[c.Sock]
	if e == nil {
		e = &Entry{Conn: *c}
	}
	e.Conn.FastRetrans, e.Conn.TimeoutRetrans, e.Conn.RetransSegs = c.FastRetrans, c.TimeoutRetrans, c.RetransSegs
	e.Stats, e.HasStats = *st, true
	e.Closed, e.CloseNs = true, ts
	if k := Key(e.Conn.Netns, e.Conn.Src, e.Conn.Dst); t.byTuple[k] == e.Conn.Sock {
		delete(t.byTuple, k)
	}
	if !t.keepClosed {
		delete(t.m, c.Sock)
		t.remember(&e.Conn)
		return e
	}
	t.m[c.Sock] = e
	t.closed = append(t.closed, c.Sock)
	for len(t.closed) > MaxClosed {
		old := t.closed[0]
		t.closed = t.closed[1:]
		if x := t.m[old]; x != nil && x.Closed {
			delete(t.m, old)
			t.remember(&x.Conn)
			t.Evicted++
		}
	}
	return e
}

// Sample updates live values of an open connection. It reports whether
// the owner changed (the only sampled value connects.log shows without
// -x/-r).
//
// With AdoptSampled (the kernel sends no open records, see conn.Options.Quiet)
// an established connection the table does not know yet is added, and
// reported as a change; one whose close was already handled (the walk can
// race with the close) is not.
func (t *Table) Sample(c *event.Conn, st *event.Stats) (ownerChanged bool) {
	e := t.m[c.Sock]
	if e == nil && t.AdoptSampled && c.EstNs != 0 && !t.closedAlready(c) {
		e = t.Open(c)
		e.Stats, e.HasStats = *st, true
		return true
	}
	if e == nil || e.Closed {
		return false
	}
	if e.Conn.EstNs != 0 && c.EstNs != 0 && e.Conn.EstNs != c.EstNs {
		// A successor on the socket of a connection whose close is not
		// handled yet: not this entry's values.
		return false
	}
	e.walk = t.walk
	e.Stats, e.HasStats = *st, true
	e.Conn.FastRetrans, e.Conn.TimeoutRetrans, e.Conn.RetransSegs = c.FastRetrans, c.TimeoutRetrans, c.RetransSegs
	if e.Conn.OwnerSrc < c.OwnerSrc {
		ownerChanged = e.Conn.Pid != c.Pid || e.Conn.Comm != c.Comm
		e.Conn.Pid, e.Conn.Comm, e.Conn.OwnerSrc = c.Pid, c.Comm, c.OwnerSrc
	}
	return ownerChanged
}

// Each visits entries in a stable order (established time, then socket).
func (t *Table) Each(buf []*Entry, fn func(*Entry)) []*Entry {
	buf = buf[:0]
	for _, e := range t.m {
		buf = append(buf, e)
	}
	slices.SortFunc(buf, func(a, b *Entry) int {
		if a.Conn.EstNs != b.Conn.EstNs {
			if a.Conn.EstNs < b.Conn.EstNs {
				return -1
			}
			return 1
		}
		if a.Conn.Sock < b.Conn.Sock {
			return -1
		}
		if a.Conn.Sock > b.Conn.Sock {
			return 1
		}
		return 0
	})
	for _, e := range buf {
		fn(e)
	}
	return buf
}
