package packet

// --summary: no ring record. Data segments and bytes per direction come
// from the kernel's own per-socket counters of the tracked connections
// (tcp_sock data_segs_in/out, bytes_received/sent; nw_conn_sum.h says
// exactly what they count), summed by the connection object's walk
// (conn.SumWalk): no program runs per packet for them, and they work on
// every kernel the connection object loads on. With -t the packet
// programs still run, for the layer times only: each record they would
// have made adds to one log2 histogram per layer and direction
// (nw_pkt_summary, per CPU; see packet.bpf.c), so a histogram counts skbs
// (a TSO/GRO super-segment once) where the segment counts count wire
// segments. Where the packet object cannot load (before 5.17: no
// bpf_loop), -t's histograms are missing (one warning) and the counts
// are still made.
//
// This file reads them: totals since start (Totals, for the metrics), and
// per --interval deltas and the run's totals as event.LayerSum records
// (engine.Ticker, engine.Finisher), written to summary.log.

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

// summaryState is the concern's --summary state (pipeline goroutine only).
type summaryState struct {
	last [2]event.LayerSumInfo // totals at the previous tick: rx, tx
	ext  event.Ext
	per  []packetNwPktSum
	// untimed: why -t's histograms are missing (no packet object on this
	// kernel: counts only); warned once, at Attach
	untimed error
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
	if c.cfg == nil || !c.cfg.Summary || c.walk.counts == nil {
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
		if !final && idle(s) {
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
	timed := c.timed()
	for d := range out {
		s := &out[d]
		if timed {
			m := c.Coll.Maps[sumMap]
			if m == nil {
				return out, fmt.Errorf("map %s missing", sumMap)
			}
			if err := m.Lookup(uint32(d), per); err != nil {
				return out, fmt.Errorf("%s[%d]: %w", sumMap, d, err)
			}
			for i := range *per {
				addSum(s, &(*per)[i])
			}
		}
		s.Rx = d == 0
		s.Timed = timed
	}
	// the counts: the sockets' own (the programs' per-skb ones are the
	// histograms' business), read after the histograms: a segment the
	// histograms have is in the counts
	if c.walk.counts == nil {
		return out, errors.New("--summary's connection walk is not loaded")
	}
	n, err := c.walk.counts()
	if err != nil {
		return out, err
	}
	for d := range out {
		s := &out[d]
		if s.Rx {
			s.Segs, s.Bytes = n.SegsIn, n.BytesIn
		} else {
			s.Segs, s.Bytes = n.SegsOut, n.BytesOut
		}
	}
	return out, nil
}

// timed: --summary -t with the packet object loaded (its histograms).
func (c *Concern) timed() bool { return c.cfg.Time && c.sum.untimed == nil && c.Coll != nil }

// summaryOnly is Load's way out when the packet object cannot load (err):
// with --summary the counts need none of it (the connection object's
// walk), so the concern still loads, without -t's histograms (Attach
// warns in one line); without --summary the concern is unavailable.
func (c *Concern) summaryOnly(err error) error {
	if !c.cfg.Summary || c.walk.sw == nil {
		return err
	}
	c.sum.untimed = err
	return nil
}

// idle: an interval without data segments and without layer times.
func idle(s *event.LayerSumInfo) bool {
	if s.Segs != 0 || s.Bytes != 0 {
		return false
	}
	for l := range s.L {
		if s.L[l].Count() != 0 || s.L[l].Missing != 0 {
			return false
		}
	}
	return true
}

// connWalk is --summary's count of data segments and bytes: the tracked
// connections' own counters, summed by the connection object's walk
// (conn.SumWalk: closed + open - adopted). It loads wherever the
// connection object does (5.10 included), so the counts do not depend on
// the packet object, which only -t's histograms need.
type connWalk struct {
	sw     *conn.SumWalk
	counts func() (conn.SumCounts, error) // sw.Counts (a test's fake)
}

// load loads the walk on the connection object's shared maps.
func (w *connWalk) load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	sw, err := conn.LoadSumWalk(cfg, shared)
	if err != nil {
		return err
	}
	w.sw, w.counts = sw, sw.Counts
	return nil
}

// attach makes the walk's iterator (Detach leaves it: the exit summary
// walks after the hooks are gone).
func (w *connWalk) attach() error {
	if w.sw == nil {
		return errors.New("--summary's connection walk is not loaded")
	}
	return w.sw.Attach()
}

func (w *connWalk) close() {
	w.sw.Close()
	w.sw = nil
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
