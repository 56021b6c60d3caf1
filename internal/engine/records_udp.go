package engine

import (
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

// ---- UDP (-u) ----

// udpEvent: a flow's counters (made by the concern's Tick/Finish) or one
// datagram with its layer times (-t, packet ring). UDP records carry their
// own tuple and owner; they name no TCP connection.
func (p *pipeline) udpEvent(ev *event.Event) {
	if l := p.files.Log(output.UDPLogName); l != nil {
		p.lbuf = output.AppendUDPLog(p.lbuf[:0], ev)
		l.Write(p.lbuf)
	}
	if p.cfg.Quiet {
		return
	}
	if ev.Type == event.UDPFlow {
		p.buf = p.pr.UDPFlow(p.buf[:0], ev)
	} else {
		p.buf = p.pr.UDPDatagram(p.buf[:0], ev)
	}
	p.out.Write(p.buf)
}
