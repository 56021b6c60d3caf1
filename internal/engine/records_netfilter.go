package engine

import (
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

// ---- netfilter hook times (-n) ----

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
