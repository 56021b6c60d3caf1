package engine

import (
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

// ---- netfilter hook times (-n) ----

// Finisher is implemented by a concern that makes records of its own once
// at exit (-n: the per-hook summaries of the whole run). Finish runs on the
// pipeline goroutine after the rings are drained; its records are handled
// like ring records of the concern's type.
type Finisher interface {
	Finish(nowNs uint64, emit func(*event.Event))
}

// finishConcerns lets every Finisher make its exit records.
func (p *pipeline) finishConcerns() {
	now := output.MonoNow()
	for _, c := range p.concerns {
		if f, ok := c.(Finisher); ok {
			f.Finish(now, p.handle)
		}
	}
}

// nfEvent: a packet's netfilter hook times (the ring record), or a hook's
// summary (made by the concern every --interval and at exit). A packet of
// a tracked TCP connection is named by its socket and the low bits of the
// connection's establishment time. The exit summary is printed with -q
// too.
func (p *pipeline) nfEvent(ev *event.Event) {
	n := &ev.Ext.NF
	if !n.Summary && n.EstLo != 0 && ev.Conn.Sock != 0 {
		if e := p.connOf(ev.Conn.Sock, n.EstLo); e != nil {
			ev.Conn.ID = e.Conn.ID
			if ev.Conn.Pid == 0 {
				ev.Conn.Pid, ev.Conn.Comm, ev.Conn.OwnerSrc = e.Conn.Pid, e.Conn.Comm, e.Conn.OwnerSrc
			}
		}
	}
	if l := p.files.Log(output.NFLogName); l != nil {
		p.lbuf = output.AppendNFLog(p.lbuf[:0], ev)
		l.Write(p.lbuf)
	}
	if !p.cfg.Quiet || (n.Summary && n.Sum.Final) {
		p.buf = p.pr.NF(p.buf[:0], ev)
		p.out.Write(p.buf)
	}
}
