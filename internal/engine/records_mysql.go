package engine

import (
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/metrics"
	"github.com/netwatcher/netwatcher/internal/mysql"
	"github.com/netwatcher/netwatcher/internal/output"
)

// ---- MySQL (-M) ----

// mysqlState is the pipeline's state for -M: the protocol's Tracker
// (connections, pairing, per-command counters) and mysql.log.
type mysqlState struct {
	l7State[mysql.Tracker]
	emit func(*event.MySQLResult)
}

func (p *pipeline) mysqlInit() bool {
	if p.mysql.emit == nil {
		p.mysql.emit = p.mysqlResult
	}
	return p.mysql.init(p, event.MySQL, mysql.LogName)
}

// mysqlEvent: a captured segment (its packets read, requests paired), or
// the protocol's tick (every --interval: idle connections forgotten, the
// per-command counters that changed printed).
func (p *pipeline) mysqlEvent(ev *event.Event) {
	if !p.mysqlInit() {
		return
	}
	if a := &ev.Ext.App; a.Tick {
		l7Tick(p, ev.TS, a.Final, p.mysql.t, p.mysql.emit, p.mysqlStats)
		return
	}
	p.mysql.t.Packet(ev, p.mysql.emit)
}

func (p *pipeline) mysqlResult(r *event.MySQLResult) {
	if r.Command != event.MySQLHandshake && r.LatencyNs > 0 {
		p.met.Request(metrics.MySQL, r.Side == event.MySQLServer, r.LatencyNs)
	}
	if r.Command != event.MySQLHandshake {
		p.countRequest(event.CountMySQL)
	}
	// the connection's number in the table, by its socket
	if e := p.table.Current(r.Conn.Sock); e != nil && e.Conn.Src == r.Conn.Src && e.Conn.Dst == r.Conn.Dst {
		r.Conn.ID = e.Conn.ID
		if r.Conn.Pid == 0 && e.Conn.Pid != 0 {
			r.Conn.Pid, r.Conn.Comm, r.Conn.OwnerSrc = e.Conn.Pid, e.Conn.Comm, e.Conn.OwnerSrc
		}
	}
	p.l7Line(p.mysql.log,
		func(b []byte) []byte { return output.AppendMySQLLog(b, r) },
		func(b []byte) []byte { return p.pr.MySQL(b, r) }, false)
}

// mysqlStats prints the per-command counters: those that changed (every
// --interval), or all of them (at exit). Printed with -q too: they are
// summaries.
func (p *pipeline) mysqlStats(ts uint64, final bool) {
	p.mysql.t.Stats(!final, func(s *event.MySQLStats) {
		p.l7Line(p.mysql.log,
			func(b []byte) []byte { return output.AppendMySQLStatsLog(b, s, final) },
			func(b []byte) []byte { return p.pr.MySQLStats(b, ts, s, final) }, true)
	})
}

// mysqlFinish: at exit, the requests still waiting are unanswered, then
// every command's counters.
func (p *pipeline) mysqlFinish() {
	if p.cfg.MySQL && p.mysqlInit() {
		l7Finish(p, output.MonoNow(), p.mysql.t, p.mysql.emit, p.mysqlStats)
	}
}
