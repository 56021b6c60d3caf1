package packet

// --summary: no ring record. Data segments and bytes per direction come
// from the kernel's own per-socket counters of the tracked connections
// (tcp_sock data_segs_in/out, bytes_received/sent; nw_conn_sum.h says
// exactly what they count): no program runs per packet for them. With -t
// the packet programs still run, for the layer times only: each record
// they would have made adds to one log2 histogram per layer and direction
// (nw_pkt_summary, per CPU; see packet.bpf.c), so a histogram counts skbs
// (a TSO/GRO super-segment once) where the segment counts count wire
// segments.
//
// This file reads them: totals since start (Totals, for the metrics), and
// per --interval deltas and the run's totals as event.LayerSum records
// (engine.Ticker, engine.Finisher), written to summary.log.

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

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
	for d := range out {
		s := &out[d]
		if c.cfg.Time {
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
		s.Timed = c.cfg.Time
	}
	// the counts: the sockets' own (the programs' per-skb ones are the
	// histograms' business), read after the histograms: a segment the
	// histograms have is in the counts
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
// connections' tcp_sock counters, as the connection object's close hook
// left them in nw_conn_sum (closed ones) plus a walk of the connection
// table (open ones, nw_pkt_conn_walk_*), minus what the adopted
// connections had at adoption.
type connWalk struct {
	prog  string     // the walk program of the table variant
	table *ebpf.Map  // the connection table it walks (shared)
	sum   *ebpf.Map  // conn.ConnSumMap (shared)
	acc   *ebpf.Map  // nw_pkt_conn_walk: the walk's total
	mu    sync.Mutex // one walk at a time (pipeline, metrics scrapes)
	it    *link.Iter
	run   func() error    // one walk into acc (attach: read it to the end)
	hw    packetNwConnCtr // the largest total so far: totals never go back
	per   []packetNwConnCtr
}

// Walk programs, one per connection-table variant (packet.bpf.c).
const (
	walkSets = "nw_pkt_conn_walk_sets"
	walkHash = "nw_pkt_conn_walk_hash"
)

// prepare keeps, in spec, the walk of the table variant of shared (none
// without --summary) and returns its name.
func (w *connWalk) prepare(spec *ebpf.CollectionSpec, cfg *config.Config, shared map[string]*ebpf.Map) (string, error) {
	keep, drop := walkSets, walkHash
	w.table = shared["nw_conn_keys"]
	if h := shared["nw_conn_hash"]; h != nil && h.MaxEntries() > 1 {
		keep, drop = walkHash, walkSets
		w.table = h
	}
	delete(spec.Programs, drop)
	if !cfg.Summary {
		delete(spec.Programs, keep)
		return "", nil
	}
	if w.sum = shared[conn.ConnSumMap]; w.sum == nil || w.table == nil {
		return "", errors.New("--summary: the connection object shares no " + conn.ConnSumMap + " (regenerate it)")
	}
	w.prog = keep
	return keep, nil
}

// attach makes the walk's iterator (once; Detach leaves it: the exit
// summary walks after the hooks are gone).
func (w *connWalk) attach(coll *ebpf.Collection) error {
	w.acc = coll.Maps["nw_pkt_conn_walk"]
	it, err := link.AttachIter(link.IterOptions{Program: coll.Programs[w.prog], Map: w.table})
	if err != nil {
		return fmt.Errorf("--summary's connection walk: %w", err)
	}
	w.it = it
	w.run = func() error {
		rd, err := it.Open()
		if err != nil {
			return err
		}
		defer rd.Close()
		_, err = io.Copy(io.Discard, rd)
		return err
	}
	return nil
}

func (w *connWalk) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.run = nil
	if w.it != nil {
		w.it.Close()
		w.it = nil
	}
}

// counts returns the tracked connections' data segments and bytes per
// direction since the start: closed + open - adopted. The closed ones are
// read before the walk, and a close adds to nw_conn_sum only after its
// connection left the table: a connection is never counted twice; one
// that closes during the walk may be missed (or counted as of when the
// walk saw it) by this total, and is counted in full by the next one. The
// totals returned never decrease. At exit the state hook is detached, so
// nothing moves from the table to nw_conn_sum under the walk and the
// total is exact; a connection that closed after the detach is still in
// the table, and the walk reads its final counters from the closed
// socket (TCP sockets are SLAB_TYPESAFE_BY_RCU: the memory stays a
// tcp_sock, its counters those of the last connection until reused).
func (w *connWalk) counts() (packetNwConnCtr, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.run == nil {
		return w.hw, errors.New("--summary's connection walk is not attached")
	}
	closed, err := w.sumKey(0)
	if err != nil {
		return w.hw, err
	}
	adopted, err := w.sumKey(conn.ConnSumAdopted)
	if err != nil {
		return w.hw, err
	}
	if err := w.acc.Update(uint32(0), packetNwConnCtr{}, ebpf.UpdateAny); err != nil {
		return w.hw, fmt.Errorf("nw_pkt_conn_walk: %w", err)
	}
	if err := w.run(); err != nil {
		return w.hw, fmt.Errorf("connection walk: %w", err)
	}
	var open packetNwConnCtr
	if err := w.acc.Lookup(uint32(0), &open); err != nil {
		return w.hw, fmt.Errorf("nw_pkt_conn_walk: %w", err)
	}
	tot := func(hw *uint64, c, o, a uint64) {
		if v := int64(c + o - a); v > int64(*hw) { // a missed adopted one: below 0
			*hw = uint64(v)
		}
	}
	tot(&w.hw.SegsIn, closed.SegsIn, open.SegsIn, adopted.SegsIn)
	tot(&w.hw.SegsOut, closed.SegsOut, open.SegsOut, adopted.SegsOut)
	tot(&w.hw.BytesIn, closed.BytesIn, open.BytesIn, adopted.BytesIn)
	tot(&w.hw.BytesOut, closed.BytesOut, open.BytesOut, adopted.BytesOut)
	return w.hw, nil
}

// sumKey is key k of conn.ConnSumMap summed over the CPUs.
func (w *connWalk) sumKey(k uint32) (packetNwConnCtr, error) {
	var s packetNwConnCtr
	if err := w.sum.Lookup(k, &w.per); err != nil {
		return s, fmt.Errorf("%s[%d]: %w", conn.ConnSumMap, k, err)
	}
	for _, v := range w.per {
		s.SegsIn += v.SegsIn
		s.SegsOut += v.SegsOut
		s.BytesIn += v.BytesIn
		s.BytesOut += v.BytesOut
	}
	return s, nil
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

// pruneMaps deletes the maps of spec no program uses (the per-packet ones
// when only the walk is loaded: they are preallocated, megabytes), except
// the data sections (load-time constants) and the connection table's
// (conn.LoadShared reads their specs).
func pruneMaps(spec *ebpf.CollectionSpec) {
	used := map[string]bool{}
	for _, p := range spec.Programs {
		for _, ins := range p.Instructions {
			if r := ins.Reference(); r != "" {
				used[r] = true
			}
		}
	}
	for name := range spec.Maps {
		if !used[name] && !strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "nw_conn") {
			delete(spec.Maps, name)
		}
	}
}
