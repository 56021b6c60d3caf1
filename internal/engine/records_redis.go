package engine

import (
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/redis"
)

// ---- Redis (-R) ----

// redisState is the pipeline's state for -R: the protocol's Tracker
// (streams, pairs, per-command summaries) and redis.log.
type redisState struct {
	t       *redis.Tracker
	log     *output.Log
	started bool
	emit    func(*event.RedisResult)
	sum     func(*event.RedisSummary)
	ts      uint64 // the summaries' time
}

func (p *pipeline) redisInit() bool {
	r := &p.redis
	if !r.started {
		r.started = true
		if rp, ok := p.l7proto(event.Redis).(*redis.Proto); ok {
			r.t = rp.Tracker()
		}
		r.log = p.files.Log(output.RedisLogName)
		r.emit = p.redisResult
		r.sum = p.redisSummary
	}
	return r.t != nil
}

// redisEvent: a Redis packet record (its requests and replies are paired
// or kept), the capture's tick (every --interval: requests unanswered too
// long, then the summaries of the commands called since the last one) or
// its final tick (at exit: every request still waiting is unanswered, then
// every command's totals).
func (p *pipeline) redisEvent(ev *event.Event) {
	if !p.redisInit() {
		return
	}
	r := &p.redis
	a := &ev.Ext.App
	switch {
	case a.Tick && a.Final:
		r.t.Flush(r.emit)
		r.ts = ev.TS
		r.t.Summaries(true, r.sum)
		p.flushOut()
	case a.Tick:
		r.t.Expire(ev.TS, r.emit)
		r.ts = ev.TS
		r.t.Summaries(false, r.sum)
	default:
		r.t.Packet(ev, r.emit)
	}
}

func (p *pipeline) redisResult(r *event.RedisResult) {
	if r.Kind != event.RedisUnmatched {
		p.countRequest(event.CountRedis)
	}
	// the connection's number, when the table has its socket
	if e := p.table.Current(r.Conn.Sock); e != nil && (e.Conn.Src == r.Conn.Src || e.Conn.Dst == r.Conn.Src) {
		r.Conn.ID = e.Conn.ID
		if r.Conn.Pid == 0 {
			r.Conn.Pid, r.Conn.Comm, r.Conn.OwnerSrc = e.Conn.Pid, e.Conn.Comm, e.Conn.OwnerSrc
		}
	}
	if l := p.redis.log; l != nil {
		p.lbuf = output.AppendRedisLog(p.lbuf[:0], r)
		l.Write(p.lbuf)
	}
	if !p.cfg.Quiet {
		p.buf = p.pr.Redis(p.buf[:0], r)
		p.out.Write(p.buf)
	}
}

// redisSummary prints one command's summary (with -q too: summaries).
func (p *pipeline) redisSummary(s *event.RedisSummary) {
	if l := p.redis.log; l != nil {
		p.lbuf = output.AppendRedisSummaryLog(p.lbuf[:0], s)
		l.Write(p.lbuf)
	}
	p.buf = p.pr.RedisSummary(p.buf[:0], p.redis.ts, s)
	p.out.Write(p.buf)
}
