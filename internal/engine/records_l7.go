package engine

import (
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/l7cap"
	"github.com/netwatcher/netwatcher/internal/output"
)

// ---- application capture (-N, -R, -M): internal/l7cap ----

// l7proto is the capture's protocol of record type t (DNS, Redis,
// MySQL), nil when it is off.
func (p *pipeline) l7proto(t event.Type) l7cap.Protocol {
	for _, c := range p.concerns {
		if l, ok := c.(*l7cap.Concern); ok {
			return l.Protocol(t)
		}
	}
	return nil
}

// l7State is the pipeline's state for one application protocol: the
// tracker (T) its l7cap protocol offers (pairs, streams, counters) and its
// log file. Each records_<proto>.go embeds one.
type l7State[T any] struct {
	t       *T
	log     *output.Log
	started bool
}

// init finds the tracker of the capture's protocol of record type rt and
// opens the log file logName, on the first call; it reports whether the
// protocol is on.
func (s *l7State[T]) init(p *pipeline, rt event.Type, logName string) bool {
	if !s.started {
		s.started = true
		if tp, ok := p.l7proto(rt).(interface{ Tracker() *T }); ok {
			s.t = tp.Tracker()
		}
		s.log = p.files.Log(logName)
	}
	return s.t != nil
}

// l7Line writes one line of an application protocol: logLine appended to
// its log file (when open), then outLine to the output, unless it is a
// record and -q is on (summaries and counters are printed with -q too).
func (p *pipeline) l7Line(l *output.Log, logLine, outLine func([]byte) []byte, summary bool) {
	if l != nil {
		p.lbuf = logLine(p.lbuf[:0])
		l.Write(p.lbuf)
	}
	if summary || !p.cfg.Quiet {
		p.buf = outLine(p.buf[:0])
		p.out.Write(p.buf)
	}
}

// l7Tracker is what a protocol's tick asks of its tracker (R: its result
// record). Records go to the tracker's Packet directly: the event must not
// pass through an interface (it would escape: one allocation per record).
type l7Tracker[R any] interface {
	Expire(nowNs uint64, emit func(*R))
	Flush(emit func(*R))
}

// l7Tick handles a protocol's tick record at ts: every --interval, what
// waited too long is reported (to emit), then the summaries that changed
// (summaries(ts, false)); the final tick (at exit, for an l7cap.Finisher
// protocol) is l7Finish.
func l7Tick[R any](p *pipeline, ts uint64, final bool, t l7Tracker[R], emit func(*R), summaries func(ts uint64, final bool)) {
	if final {
		l7Finish(p, ts, t, emit, summaries)
		return
	}
	t.Expire(ts, emit)
	summaries(ts, false)
}

// l7Finish ends a protocol's run: what still waits is unanswered, then
// every summary (final), and the output is flushed.
func l7Finish[R any](p *pipeline, ts uint64, t l7Tracker[R], emit func(*R), summaries func(ts uint64, final bool)) {
	t.Flush(emit)
	summaries(ts, true)
	p.flushOut()
}
