package engine

import (
	"github.com/netwatcher/netwatcher/internal/dns"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

// ---- DNS (-N) ----

// dnsState is the pipeline's state for -N: the concern's Tracker (pairs,
// TCP streams, per-process counters) and dns.log.
type dnsState struct {
	t       *dns.Tracker
	log     *output.Log
	started bool
	emit    func(*event.DNSResult)
}

// dnsTracker is what the -N protocol (l7cap) offers the pipeline.
type dnsTracker interface{ Tracker() *dns.Tracker }

func (p *pipeline) dnsInit() bool {
	d := &p.dns
	if !d.started {
		d.started = true
		if dt, ok := p.l7proto(event.DNS).(dnsTracker); ok {
			d.t = dt.Tracker()
		}
		d.log = p.files.Log(output.DNSLogName)
		d.emit = p.dnsResult
	}
	return d.t != nil
}

// dnsEvent: a DNS packet record (its messages are paired or kept), or the
// concern's tick (every --interval: queries unanswered for the tracker's
// timeout are reported, and the counters that changed).
func (p *pipeline) dnsEvent(ev *event.Event) {
	if !p.dnsInit() {
		return
	}
	d := &p.dns
	if ev.Ext.App.Tick {
		d.t.Expire(ev.TS, d.emit)
		p.dnsCounters(ev.TS, false)
		return
	}
	d.t.Packet(ev, d.emit)
}

func (p *pipeline) dnsResult(r *event.DNSResult) {
	if r.Kind != event.DNSUnmatched {
		p.countRequest(event.CountDNS)
	}
	if r.TCP {
		// the connection's number, when the tracker has its socket
		if e := p.table.Current(r.Conn.Sock); e != nil {
			r.Conn.ID = e.Conn.ID
		}
	}
	if l := p.dns.log; l != nil {
		p.lbuf = output.AppendDNSLog(p.lbuf[:0], r)
		l.Write(p.lbuf)
	}
	if !p.cfg.Quiet {
		p.buf = p.pr.DNS(p.buf[:0], r)
		p.out.Write(p.buf)
	}
}

// dnsCounters prints the per-process counters: those that changed (every
// --interval), or all of them (at exit). Printed with -q too: they are
// summaries.
func (p *pipeline) dnsCounters(ts uint64, final bool) {
	p.dns.t.Procs(!final, func(c *event.DNSProcCounters) {
		if l := p.dns.log; l != nil {
			p.lbuf = output.AppendDNSCountersLog(p.lbuf[:0], c, final)
			l.Write(p.lbuf)
		}
		p.buf = p.pr.DNSCounters(p.buf[:0], ts, c, final)
		p.out.Write(p.buf)
	})
}

// dnsFinish: at exit, the queries still waiting are unanswered, then
// every process's counters.
func (p *pipeline) dnsFinish() {
	if !p.cfg.DNS || !p.dnsInit() {
		return
	}
	now := output.MonoNow()
	p.dns.t.Flush(p.dns.emit)
	p.dnsCounters(now, true)
	p.flushOut()
}
