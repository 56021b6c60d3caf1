package engine

import (
	"time"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/track"
)

// ---- concerns' periodic records (Ticker) and exit records (Finisher) ----

// tickers starts one clock for the concerns that are Tickers, at the
// shortest of their intervals (nil channel when there are none).
func (p *pipeline) tickers() (<-chan time.Time, func()) {
	var every time.Duration
	for _, c := range p.concerns {
		if t, ok := c.(Ticker); ok && t.Interval() > 0 && (every == 0 || t.Interval() < every) {
			every = t.Interval()
		}
	}
	if every == 0 {
		return nil, func() {}
	}
	t := time.NewTicker(every)
	return t.C, t.Stop
}

// tick lets every Ticker make its records; they are handled at once (a
// ring record older than them may still wait in the merge, up to ~20 ms).
func (p *pipeline) tick() {
	now := output.MonoNow()
	for _, c := range p.concerns {
		if t, ok := c.(Ticker); ok {
			t.Tick(now, p.handle)
		}
	}
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

// ---- RTT histograms (--rtt) ----

// rttEvent: a connection's RTT histogram, of one interval (made by the
// concern's Tick) or of its whole life (the ring record at close, which
// the kernel makes before the connection's close record). The record
// carries the socket's tuple and the low bits of the connection's
// establishment time once the tracker had it.
func (p *pipeline) rttEvent(ev *event.Event) {
	r := &ev.Ext.Rtt
	p.met.Rtt(ev.Conn.Sock, r)
	var e *track.Entry
	if r.EstLo != 0 {
		e = p.connOf(ev.Conn.Sock, r.EstLo)
	} else if e = p.table.Current(ev.Conn.Sock); e != nil && (e.Conn.Src != r.Src || e.Conn.Dst != r.Dst) {
		e = nil
	}
	if e != nil {
		ev.Conn = e.Conn
	} else {
		ev.Conn.Src, ev.Conn.Dst = r.Src, r.Dst
	}
	if l := p.files.Log(output.RttLogName); l != nil {
		p.lbuf = output.AppendRttLog(p.lbuf[:0], ev)
		l.Write(p.lbuf)
	}
	if !p.cfg.Quiet {
		p.buf = p.pr.Rtt(p.buf[:0], ev)
		p.out.Write(p.buf)
	}
}
