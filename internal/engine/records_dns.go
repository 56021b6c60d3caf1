package engine

import (
	"github.com/netwatcher/netwatcher/internal/dns"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/metrics"
	"github.com/netwatcher/netwatcher/internal/output"
)

// ---- DNS (-N) ----

// dnsState is the pipeline's state for -N: the concern's Tracker (pairs,
// TCP streams, per-process counters) and dns.log.
type dnsState struct {
	l7State[dns.Tracker]
	emit func(*event.DNSResult)
}

func (p *pipeline) dnsInit() bool {
	if p.dns.emit == nil {
		p.dns.emit = p.dnsResult
	}
	return p.dns.init(p, event.DNS, output.DNSLogName)
}

// dnsEvent: a DNS packet record (its messages are paired or kept), or the
// concern's tick (every --interval: queries unanswered for the tracker's
// timeout are reported, and the counters that changed).
func (p *pipeline) dnsEvent(ev *event.Event) {
	if !p.dnsInit() {
		return
	}
	if a := &ev.Ext.App; a.Tick {
		l7Tick(p, ev.TS, a.Final, p.dns.t, p.dns.emit, p.dnsCounters)
		return
	}
	p.dns.t.Packet(ev, p.dns.emit)
}

func (p *pipeline) dnsResult(r *event.DNSResult) {
	if r.Kind == event.DNSAnswer {
		p.met.Request(metrics.DNS, r.Side == event.DNSServer, r.LatencyNs)
	}
	if r.Kind != event.DNSUnmatched {
		p.countRequest(event.CountDNS)
	}
	if r.TCP {
		// the connection's number, when the tracker has its socket
		if e := p.table.Current(r.Conn.Sock); e != nil {
			r.Conn.ID = e.Conn.ID
		}
	}
	p.l7Line(p.dns.log,
		func(b []byte) []byte { return output.AppendDNSLog(b, r) },
		func(b []byte) []byte { return p.pr.DNS(b, r) }, false)
}

// dnsCounters prints the per-process counters: those that changed (every
// --interval), or all of them (at exit). Printed with -q too: they are
// summaries.
func (p *pipeline) dnsCounters(ts uint64, final bool) {
	p.dns.t.Procs(!final, func(c *event.DNSProcCounters) {
		p.l7Line(p.dns.log,
			func(b []byte) []byte { return output.AppendDNSCountersLog(b, c, final) },
			func(b []byte) []byte { return p.pr.DNSCounters(b, ts, c, final) }, true)
	})
}

// dnsFinish: at exit, the queries still waiting are unanswered, then
// every process's counters.
func (p *pipeline) dnsFinish() {
	if p.cfg.DNS && p.dnsInit() {
		l7Finish(p, output.MonoNow(), p.dns.t, p.dns.emit, p.dnsCounters)
	}
}
