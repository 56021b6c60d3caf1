package engine

import (
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/track"
)

// ---- TCP resets (--rst) ----

// rstClosedLen bounds the memory of sockets whose connection closed (for
// the active reset the kernel sends right after the close) and of the
// per-connection counts of closed connections.
const rstClosedLen = 4096

// rstMaxCounted bounds the connections with per-connection counts (open
// ones are freed at their close; this only matters when close records are
// lost): past it, new connections get no counts (fields absent).
const rstMaxCounted = 1 << 20

// rstCloseWindow: an active reset follows its close within this long (ns).
const rstCloseWindow = 1e9

// rstTrack is the pipeline's state for --rst.
type rstTrack struct {
	log     *output.Log
	logDone bool
	// counts: resets sent [0] and received [1] per connection (ID).
	counts map[uint64]*[2]uint32
	// closed: socket -> its connection that closed last; ring keeps them
	// in close order and bounds both maps.
	closed map[uint64]*track.Entry
	ring   [rstClosedLen]*track.Entry
	n      int
}

// rstClosed notes a connection's close (its socket may send the reset
// of an abort next) and lets the counts of an old close go.
func (p *pipeline) rstClosed(e *track.Entry) {
	if !p.cfg.Rst || e == nil {
		return
	}
	t := &p.rst
	if t.closed == nil {
		t.closed = make(map[uint64]*track.Entry)
	}
	i := t.n % rstClosedLen
	if old := t.ring[i]; old != nil {
		if t.closed[old.Conn.Sock] == old {
			delete(t.closed, old.Conn.Sock)
		}
		delete(t.counts, old.Conn.ID)
	}
	t.ring[i] = e
	t.n++
	t.closed[e.Conn.Sock] = e
}

// rstEvent: one reset. The connection is named by the tracker's entry when
// the kernel still had it (EstLo); an active reset sent right after the
// close (state CLOSE, or the state it aborted) is the socket's connection
// that just closed. The record keeps its own tuple.
func (p *pipeline) rstEvent(ev *event.Event) {
	r := &ev.Ext.Rst
	p.met.Rst(r)
	var e *track.Entry
	switch {
	case ev.Conn.Sock == 0:
	case r.EstLo != 0:
		e = p.connOf(ev.Conn.Sock, r.EstLo)
	case r.Aborted || r.State == event.TCPClose:
		if c := p.rst.closed[ev.Conn.Sock]; c != nil && c.CloseNs <= ev.TS && ev.TS-c.CloseNs < rstCloseWindow {
			e = c
		}
	}
	if e != nil {
		pid, comm, src := ev.Conn.Pid, ev.Conn.Comm, ev.Conn.OwnerSrc
		ev.Conn = e.Conn
		if ev.Conn.Pid == 0 && pid != 0 {
			ev.Conn.Pid, ev.Conn.Comm, ev.Conn.OwnerSrc = pid, comm, src
		}
		p.rstCount(ev)
	}
	t := &p.rst
	if !t.logDone {
		t.log, t.logDone = p.files.Log(output.RstLogName), true
	}
	if t.log != nil {
		p.lbuf = output.AppendRstLog(p.lbuf[:0], ev)
		t.log.Write(p.lbuf)
	}
	if !p.cfg.Quiet {
		p.buf = p.pr.Rst(p.buf[:0], ev)
		p.out.Write(p.buf)
	}
}

// rstCount adds the reset to its connection's counts and copies them into
// the record (the console is off with -q: nothing shows them then).
func (p *pipeline) rstCount(ev *event.Event) {
	t := &p.rst
	if p.cfg.Quiet || ev.Conn.ID == 0 {
		return
	}
	if t.counts == nil {
		t.counts = make(map[uint64]*[2]uint32)
	}
	c := t.counts[ev.Conn.ID]
	if c == nil {
		if len(t.counts) >= rstMaxCounted {
			return // counts absent: see rstMaxCounted
		}
		c = new([2]uint32)
		t.counts[ev.Conn.ID] = c
	}
	if ev.Ext.Rst.Rx {
		c[1]++
	} else {
		c[0]++
	}
	ev.Ext.Rst.ConnSent, ev.Ext.Rst.ConnReceived = c[0], c[1]
}
