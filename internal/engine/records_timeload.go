package engine

import (
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/timeload"
)

// timeloadState is the pipeline's state for -L (internal/timeload): nil
// detector when -L is off, so the packet path pays one nil check.
type timeloadState struct {
	det    *timeload.Detector
	log    *output.Log // anomaly.log
	alerts [event.TimeLayers]event.Anomaly
	// onAnomaly, when set, is told every anomaly (reported or not): the
	// counter metric.
	onAnomaly func(l event.TimeLayer, rx bool)
}

func (p *pipeline) timeloadInit() {
	if !p.cfg.TimeLoad {
		return
	}
	p.tl.det = timeload.New(p.cfg.TimeLoadFactor)
	p.tl.log = p.files.Log(output.AnomalyLogName)
}

// timeloadPacket judges a packet record whose connection is named (after
// connOf). Alerts are printed even with -q: they are the point of -L.
func (p *pipeline) timeloadPacket(ev *event.Event) {
	pk := &ev.Packet
	t := &p.tl
	before := t.det.Counts
	n := t.det.Observe(timeload.Key{Sock: ev.Conn.Sock, EstLo: pk.EstLo}, ev.TS, pk.Rx,
		[event.TimeLayers]uint64{pk.MacNs, pk.IPNs, pk.TCPNs}, pk.Missing, &t.alerts)
	if t.onAnomaly != nil && before != t.det.Counts {
		for l := range event.TimeLayers {
			for dir := range 2 {
				for range t.det.Counts[l][dir] - before[l][dir] {
					t.onAnomaly(l, dir == 1)
				}
			}
		}
	}
	for i := range n {
		a := &t.alerts[i]
		if t.log != nil {
			p.lbuf = output.AppendAnomalyLog(p.lbuf[:0], ev, a)
			t.log.Write(p.lbuf)
		}
		p.buf = p.pr.Anomaly(p.buf[:0], ev, a)
		p.out.Write(p.buf)
	}
}

// timeloadClosed forgets a closed connection's averages.
func (p *pipeline) timeloadClosed(c *event.Conn) {
	p.tl.det.Forget(timeload.Key{Sock: c.Sock, EstLo: uint32(c.EstNs)})
}
