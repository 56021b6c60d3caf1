package packet

// --summary: the packet programs make no ring record; each record they
// would have made adds to its direction's counters and, with -t, to one
// log2 histogram per layer (nw_pkt_summary, per CPU; see packet.bpf.c).
// This file reads them: totals since start (Totals, for the metrics), and
// per --interval deltas and the run's totals as event.LayerSum records
// (engine.Ticker, engine.Finisher), written to summary.log.

import (
	"fmt"
	"time"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

// summaryState is the concern's --summary state (pipeline goroutine only).
type summaryState struct {
	last [2]event.LayerSumInfo // totals at the previous tick: rx, tx
	ext  event.Ext
	per  []packetNwPktSum
}

// sumMap is the name of the kernel's histograms (key 0: received, 1: sent).
const sumMap = "nw_pkt_summary"

// Interval implements engine.Ticker: --interval with --summary, else 0 (no
// ticks of its own).
func (c *Concern) Interval() time.Duration {
	if c.cfg == nil || !c.cfg.Summary {
		return 0
	}
	return c.cfg.Interval
}

// LogNames implements engine.LogNamer: summary.log with --summary.
func (c *Concern) LogNames() []string {
	if c.cfg == nil || !c.cfg.Summary {
		return nil
	}
	return []string{output.SummaryLogName}
}

// Tick implements engine.Ticker: one record per direction, what the
// interval added.
func (c *Concern) Tick(now uint64, emit func(*event.Event)) { c.summaries(now, false, emit) }

// Finish implements engine.Finisher: one record per direction, the run's
// totals.
func (c *Concern) Finish(now uint64, emit func(*event.Event)) { c.summaries(now, true, emit) }

func (c *Concern) summaries(now uint64, final bool, emit func(*event.Event)) {
	if c.cfg == nil || !c.cfg.Summary || c.Coll == nil {
		return
	}
	tot, err := c.totals(&c.sum.per)
	if err != nil {
		if c.log != nil {
			c.log.Warn("summary: kernel histograms not read", "err", err)
		}
		return
	}
	for d := range tot {
		s := &c.sum.ext.Layer
		if final {
			*s = tot[d]
		} else {
			Delta(s, &tot[d], &c.sum.last[d])
			c.sum.last[d] = tot[d]
		}
		s.Final = final
		if !final && s.Segs == 0 {
			continue // an idle interval: no line (the exit totals always have them)
		}
		ev := event.Event{Type: event.LayerSum, TS: now, Ext: &c.sum.ext}
		emit(&ev)
	}
}

// Totals returns the counters and histograms of both directions (0:
// received, 1: sent) since the start: the kernel's per-CPU values summed.
// Safe to call from any goroutine (it has its own buffer).
func (c *Concern) Totals() ([2]event.LayerSumInfo, error) {
	var per []packetNwPktSum
	return c.totals(&per)
}

func (c *Concern) totals(per *[]packetNwPktSum) ([2]event.LayerSumInfo, error) {
	var out [2]event.LayerSumInfo
	m := c.Coll.Maps[sumMap]
	if m == nil {
		return out, fmt.Errorf("map %s missing", sumMap)
	}
	for d := range out {
		if err := m.Lookup(uint32(d), per); err != nil {
			return out, fmt.Errorf("%s[%d]: %w", sumMap, d, err)
		}
		s := &out[d]
		s.Rx = d == 0
		s.Timed = c.cfg.Time
		for i := range *per {
			addSum(s, &(*per)[i])
		}
	}
	return out, nil
}

// addSum adds one CPU's values into s (max: the larger).
func addSum(s *event.LayerSumInfo, v *packetNwPktSum) {
	s.Segs += v.Segs
	s.Bytes += v.Bytes
	for l := range s.L {
		h, k := &s.L[l], &v.L[l]
		for b := range h.Buckets {
			h.Buckets[b] += k.Buckets[b]
		}
		h.SumNs += k.SumNs
		h.Missing += k.Missing
		h.MaxNs = max(h.MaxNs, k.MaxNs)
	}
}

// Delta sets s to the totals tot minus prev (the totals at the previous
// tick); the maxima stay the run's.
func Delta(s, tot, prev *event.LayerSumInfo) {
	s.Rx, s.Timed = tot.Rx, tot.Timed
	s.Segs = tot.Segs - prev.Segs
	s.Bytes = tot.Bytes - prev.Bytes
	for l := range s.L {
		s.L[l].Sub(&tot.L[l], &prev.L[l])
	}
}
