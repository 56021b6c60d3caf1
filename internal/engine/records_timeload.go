package engine

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/timeload"
	"github.com/netwatcher/netwatcher/internal/track"
)

// timeloadState is the pipeline's state for -L (internal/timeload): nil
// detector when -L is off, so the packet path pays one nil check.
type timeloadState struct {
	det    *timeload.Detector
	log    *output.Log // anomaly.log
	alerts [event.TimeLayers]event.Anomaly
}

func (p *pipeline) timeloadInit() {
	if !p.cfg.TimeLoad {
		return
	}
	p.tl.det = timeload.New(p.cfg.TimeLoadFactor)
	p.tl.log = p.files.Log(output.AnomalyLogName)
}

// timeloadPacket judges a packet record whose connection is named (after
// connOf; e is its entry, nil if unnamed). Alerts are printed even with
// -q: they are the point of -L. It returns the entry, e or the one it
// named the connection by.
func (p *pipeline) timeloadPacket(ev *event.Event, e *track.Entry) *track.Entry {
	pk := &ev.Packet
	t := &p.tl
	n := t.det.Observe(timeload.Key{Sock: ev.Conn.Sock, EstLo: pk.EstLo}, ev.TS, pk.Rx,
		[event.TimeLayers]uint64{pk.MacNs, pk.IPNs, pk.TCPNs}, pk.Missing, &t.alerts)
	if n == 0 {
		return e
	}
	if e == nil {
		// -q: the table has not walked this connection yet (connOf makes
		// no syscall per packet there); an alert is rare enough for one
		if e = p.fromKernel(ev.Conn.Sock, func(c *event.Conn) bool { return uint32(c.EstNs) == pk.EstLo }); e != nil {
			ev.Conn = e.Conn
			if !p.cfg.Wanted(e.Conn.Src, e.Conn.Dst) {
				return e
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
	return e
}

// timeloadCollectors: netwatcher_anomalies_total when -L is on
// (startMetrics registers them).
func (p *pipeline) timeloadCollectors() []prometheus.Collector {
	if p.tl.det == nil {
		return nil
	}
	return []prometheus.Collector{p.tl.det.Collector()}
}

// timeloadClosed forgets a closed connection's averages.
func (p *pipeline) timeloadClosed(c *event.Conn) {
	p.tl.det.Forget(timeload.Key{Sock: c.Sock, EstLo: uint32(c.EstNs)})
}
