package conn

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/netwatcher/netwatcher/internal/config"
)

// ConnSumMap is the per-CPU map of --summary's counts (conn.bpf.c): key 0,
// the final tcp_sock counters of every tracked connection that closed;
// key 1, the counters the adopted connections had when adopted (user
// space writes it once, at start-up, into the first CPU's value). Values:
// struct nw_conn_ctr (nw_conn_sum.h). Shared (SharedMaps): the concern
// that makes --summary's records reads it through LoadSumWalk, which adds
// the open connections' current counters.
const ConnSumMap = "nw_conn_sum"

// ConnSumAdopted is the key of ConnSumMap that holds the adopted
// connections' counters at adoption.
const ConnSumAdopted = uint32(1)

// addBase remembers that the connection sk, found by Existing, is adopted:
// its counters until now are not netwatcher's to count.
func (p *Probe) addBase(sk uint64) {
	if p.base == nil {
		return
	}
	b, ok := p.base[sk]
	if !ok {
		return
	}
	delete(p.base, sk)
	p.adopted.SegsIn += b.SegsIn
	p.adopted.SegsOut += b.SegsOut
	p.adopted.BytesIn += b.BytesIn
	p.adopted.BytesOut += b.BytesOut
}

// flushBase adds what addBase gathered to ConnSumMap's key 1 (first CPU).
// BPF never writes that key: a read-modify-write from here is exact.
func (p *Probe) flushBase() error {
	if p.base == nil {
		return nil
	}
	clear(p.base) // the connections not adopted: counted from 0 by their own entry, or not at all
	a := p.adopted
	p.adopted = connNwConnCtr{}
	if a == (connNwConnCtr{}) {
		return nil
	}
	m := p.Coll.Maps[ConnSumMap]
	var per []connNwConnCtr
	if err := m.Lookup(ConnSumAdopted, &per); err != nil || len(per) == 0 {
		return fmt.Errorf("conn: %s[%d]: %w", ConnSumMap, ConnSumAdopted, err)
	}
	per[0].SegsIn += a.SegsIn
	per[0].SegsOut += a.SegsOut
	per[0].BytesIn += a.BytesIn
	per[0].BytesOut += a.BytesOut
	if err := m.Update(ConnSumAdopted, per, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("conn: %s[%d]: %w", ConnSumMap, ConnSumAdopted, err)
	}
	return nil
}

// SumCounts are --summary's data segments and bytes per direction (struct
// nw_conn_ctr, nw_conn_sum.h: what the kernel's counters count).
type SumCounts = connNwConnCtr

// The walk of the open connections (conn.bpf.c): its program (one name
// after pickTwins: nw_iter_sum_na for the hash variant) and its total.
const (
	sumWalkProg = "nw_iter_sum"
	sumOpenMap  = "nw_sum_open"
)

// dropSumWalk removes the walk from the connection object's own spec:
// LoadSumWalk loads it.
func dropSumWalk(spec *ebpf.CollectionSpec) {
	delete(spec.Programs, sumWalkProg)
	delete(spec.Programs, sumWalkProg+twinSuffix)
	delete(spec.Maps, sumOpenMap)
}

// SumWalk is --summary's count of data segments and bytes: the tracked
// connections' tcp_sock counters, as the state hook left them in
// ConnSumMap at close (closed ones) plus a walk of the connection table
// (open ones, nw_iter_sum), minus what the adopted connections had at
// adoption (ConnSumAdopted). Its own small collection (the walk program
// of the connection object, on the shared maps): it loads wherever the
// connection object does (5.10 included), whatever else a concern loads.
type SumWalk struct {
	coll  *ebpf.Collection
	table *ebpf.Map // what the walk iterates: the hash table (shared) or the arrays' nw_walk_chunks
	sum   *ebpf.Map // ConnSumMap (shared)
	acc   *ebpf.Map // nw_sum_open: the walk's total
	mu    sync.Mutex
	it    *link.Iter
	run   func() error // one walk into acc (Attach: read it to the end)
	hw    SumCounts    // the largest total so far: totals never go back
	per   []SumCounts
}

// LoadSumWalk loads the walk for the connection object whose SharedMaps
// are shared (its table variant, its ConnSumMap) with the -s/-d filter of
// cfg (the filter is the connection object's business; set for the
// object's constants only). Attach makes it usable.
func LoadSumWalk(cfg *config.Config, shared map[string]*ebpf.Map) (*SumWalk, error) {
	w := &SumWalk{sum: shared[ConnSumMap], table: shared["nw_conn_keys"]}
	variant := TableSets
	if h := shared["nw_conn_hash"]; h != nil && h.MaxEntries() > 1 {
		variant, w.table = TableHash, h
	}
	if w.sum == nil || w.table == nil {
		return nil, errors.New("--summary: the connection object shares no " + ConnSumMap)
	}
	spec, err := loadConn()
	if err != nil {
		return nil, fmt.Errorf("conn: parse object: %w", err)
	}
	pickTwins(spec, variant)
	for name := range spec.Programs {
		if name != sumWalkProg {
			delete(spec.Programs, name)
		}
	}
	pruneMaps(spec)
	if variant == TableSets {
		spec.Maps[walkChunksMap].MaxEntries = walkChunks(w.table.MaxEntries())
	}
	coll, err := LoadShared(spec, cfg, shared)
	if err != nil {
		return nil, fmt.Errorf("--summary's connection walk: %w", err)
	}
	w.coll, w.acc = coll, coll.Maps[sumOpenMap]
	if variant == TableSets {
		w.table = coll.Maps[walkChunksMap] // NW_WALK_SETS sets per call
	}
	return w, nil
}

// pruneMaps deletes the maps of spec no program uses, except the data
// sections (load-time constants), the connection table's (load reads
// their specs for the table variant) and the walk's chunks (the iterator's
// map, which no instruction names).
func pruneMaps(spec *ebpf.CollectionSpec) {
	used := map[string]bool{"nw_conn_keys": true, "nw_conn_hash": true, walkChunksMap: true}
	for _, p := range spec.Programs {
		for _, ins := range p.Instructions {
			if r := ins.Reference(); r != "" {
				used[r] = true
			}
		}
	}
	for name := range spec.Maps {
		if !used[name] && !strings.HasPrefix(name, ".") {
			delete(spec.Maps, name)
		}
	}
}

// Attach makes the walk's iterator (once). Close ends it: the exit
// summary walks after the hooks are detached.
func (w *SumWalk) Attach() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.it != nil {
		return nil
	}
	it, err := link.AttachIter(link.IterOptions{Program: w.coll.Programs[sumWalkProg], Map: w.table})
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

// Close releases the walk (nil-safe).
func (w *SumWalk) Close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.run = nil
	if w.it != nil {
		w.it.Close()
		w.it = nil
	}
	if w.coll != nil {
		w.coll.Close()
		w.coll = nil
	}
}

// Counts returns the tracked connections' data segments and bytes per
// direction since the start: closed + open - adopted. Safe from any
// goroutine (one walk at a time). The closed ones are read before the
// walk, and a close adds to ConnSumMap only after its connection left the
// table: a connection is never counted twice; one that closes during the
// walk may be missed (or counted as of when the walk saw it) by this
// total, and is counted in full by the next one. The totals returned
// never decrease. At exit the state hook is detached, so nothing moves
// from the table to ConnSumMap under the walk and the total is exact; a
// connection that closed after the detach is still in the table, and the
// walk reads its final counters from the closed socket (TCP sockets are
// SLAB_TYPESAFE_BY_RCU: the memory stays a tcp_sock, its counters those
// of the last connection until reused).
func (w *SumWalk) Counts() (SumCounts, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.run == nil {
		return w.hw, errors.New("--summary's connection walk is not attached")
	}
	closed, err := w.sumKey(0)
	if err != nil {
		return w.hw, err
	}
	adopted, err := w.sumKey(ConnSumAdopted)
	if err != nil {
		return w.hw, err
	}
	if err := w.acc.Update(uint32(0), SumCounts{}, ebpf.UpdateAny); err != nil {
		return w.hw, fmt.Errorf("%s: %w", sumOpenMap, err)
	}
	if err := w.run(); err != nil {
		return w.hw, fmt.Errorf("connection walk: %w", err)
	}
	var open SumCounts
	if err := w.acc.Lookup(uint32(0), &open); err != nil {
		return w.hw, fmt.Errorf("%s: %w", sumOpenMap, err)
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

// sumKey is key k of ConnSumMap summed over the CPUs.
func (w *SumWalk) sumKey(k uint32) (SumCounts, error) {
	var s SumCounts
	if err := w.sum.Lookup(k, &w.per); err != nil {
		return s, fmt.Errorf("%s[%d]: %w", ConnSumMap, k, err)
	}
	for _, v := range w.per {
		s.SegsIn += v.SegsIn
		s.SegsOut += v.SegsOut
		s.BytesIn += v.BytesIn
		s.BytesOut += v.BytesOut
	}
	return s, nil
}
