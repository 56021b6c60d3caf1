package engine

import (
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/mysql"
	"github.com/netwatcher/netwatcher/internal/output"
)

// ---- MySQL (-M) ----

// mysqlState is the pipeline's state for -M: the protocol's Tracker
// (connections, pairing, per-command counters) and mysql.log.
type mysqlState struct {
	t       *mysql.Tracker
	log     *output.Log
	started bool
	emit    func(*event.MySQLResult)
}

// mysqlTracker is what the -M protocol (l7cap) offers the pipeline.
type mysqlTracker interface{ Tracker() *mysql.Tracker }

func (p *pipeline) mysqlInit() bool {
	m := &p.mysql
	if !m.started {
		m.started = true
		if mt, ok := p.l7proto(event.MySQL).(mysqlTracker); ok {
			m.t = mt.Tracker()
		}
		m.log = p.files.Log(mysql.LogName)
		m.emit = p.mysqlResult
	}
	return m.t != nil
}

// mysqlEvent: a captured segment (its packets read, requests paired), or
// the protocol's tick (every --interval: idle connections forgotten, the
// per-command counters that changed printed).
func (p *pipeline) mysqlEvent(ev *event.Event) {
	if !p.mysqlInit() {
		return
	}
	m := &p.mysql
	if ev.Ext.App.Tick {
		m.t.Expire(ev.TS, m.emit)
		p.mysqlStats(ev.TS, false)
		return
	}
	m.t.Packet(ev, m.emit)
}

func (p *pipeline) mysqlResult(r *event.MySQLResult) {
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
	if l := p.mysql.log; l != nil {
		p.lbuf = output.AppendMySQLLog(p.lbuf[:0], r)
		l.Write(p.lbuf)
	}
	if !p.cfg.Quiet {
		p.buf = p.pr.MySQL(p.buf[:0], r)
		p.out.Write(p.buf)
	}
}

// mysqlStats prints the per-command counters: those that changed (every
// --interval), or all of them (at exit). Printed with -q too: they are
// summaries.
func (p *pipeline) mysqlStats(ts uint64, final bool) {
	p.mysql.t.Stats(!final, func(s *event.MySQLStats) {
		if l := p.mysql.log; l != nil {
			p.lbuf = output.AppendMySQLStatsLog(p.lbuf[:0], s, final)
			l.Write(p.lbuf)
		}
		p.buf = p.pr.MySQLStats(p.buf[:0], ts, s, final)
		p.out.Write(p.buf)
	})
}

// mysqlFinish: at exit, the requests still waiting are unanswered, then
// every command's counters.
func (p *pipeline) mysqlFinish() {
	if !p.cfg.MySQL || !p.mysqlInit() {
		return
	}
	p.mysql.t.Flush(p.mysql.emit)
	p.mysqlStats(output.MonoNow(), true)
	p.flushOut()
}
