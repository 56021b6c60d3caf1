package engine

import (
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/metrics"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/redis"
)

// ---- Redis (-R) ----

// redisState is the pipeline's state for -R: the protocol's Tracker
// (streams, pairs, per-command summaries) and redis.log.
type redisState struct {
	l7State[redis.Tracker]
	emit func(*event.RedisResult)
	sum  func(*event.RedisSummary)
	ts   uint64 // the summaries' time
}

func (p *pipeline) redisInit() bool {
	if r := &p.redis; r.emit == nil {
		r.emit, r.sum = p.redisResult, p.redisSummary
	}
	return p.redis.init(p, event.Redis, output.RedisLogName)
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
	if a := &ev.Ext.App; a.Tick {
		l7Tick(p, ev.TS, a.Final, p.redis.t, p.redis.emit, p.redisSummaries)
		return
	}
	p.redis.t.Packet(ev, p.redis.emit)
}

// redisSummaries prints the summaries of the commands called since the
// previous ones (at exit, final: every command's totals).
func (p *pipeline) redisSummaries(ts uint64, final bool) {
	p.redis.ts = ts
	p.redis.t.Summaries(final, p.redis.sum)
}

func (p *pipeline) redisResult(r *event.RedisResult) {
	if r.Kind == event.RedisAnswer {
		p.met.Request(metrics.Redis, r.Side == event.AppServer, r.LatencyNs)
	}
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
	p.l7Line(p.redis.log,
		func(b []byte) []byte { return output.AppendRedisLog(b, r) },
		func(b []byte) []byte { return p.pr.Redis(b, r) }, false)
}

// redisSummary prints one command's summary (with -q too: summaries).
func (p *pipeline) redisSummary(s *event.RedisSummary) {
	p.l7Line(p.redis.log,
		func(b []byte) []byte { return output.AppendRedisSummaryLog(b, s) },
		func(b []byte) []byte { return p.pr.RedisSummary(b, p.redis.ts, s) }, true)
}
