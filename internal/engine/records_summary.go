package engine

import (
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

// ---- --summary: per-direction data segments and layer-time histograms ----

// layerSumEvent: a direction's summary (made by the packet concern every
// --interval and at exit, from its kernel histograms). --summary implies
// -q: these lines are its console output.
func (p *pipeline) layerSumEvent(ev *event.Event) {
	if l := p.files.Log(output.SummaryLogName); l != nil {
		p.lbuf = output.AppendLayerSumLog(p.lbuf[:0], ev)
		l.Write(p.lbuf)
	}
	p.buf = p.pr.LayerSum(p.buf[:0], ev)
	p.out.Write(p.buf)
}
