package engine

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/ringread"
)

// Ring sources: the pipeline merges the two rings by time (see merge).
const (
	srcLife   = 0 // lifecycle, retransmit and error records
	srcPacket = 1 // packet records (neither is dropped in user space: see packetBatches)
	nSources  = 2
)

// pollEvery bounds how long a record waits in a ring when BPF did not wake
// the reader (wakeups are batched per 64 KiB-2 MiB, see nw_wake_flag), while the
// console shows records as they come.
const pollEvery = 20 * time.Millisecond

// quietPoll replaces pollEvery and idlePoll with -q: nothing shows a
// record before the files are flushed (once a second), so records may wait
// in the ring longer, and at low rates the wakeups were most of the tool's
// CPU (issue 17, `-q` for 5 s, tool CPU ticks / voluntary context
// switches, A/B/A/B: churn 10-14 / ~3,800 at 20 ms, 5-6 / ~1,300 at 100 ms,
// 4 / ~780 at 250 ms; http 12-13, 9, 6-7). BPF still wakes the reader per
// wakeup step (with -q 1/8 of the ring: 2 MiB of the packet ring, 512 KiB
// of the lifecycle ring; cfg_wake_shift) and the merge pokes a reader it
// waits for, so at high rates nothing waits this long.
const quietPoll = 250 * time.Millisecond

// holdCheck is how often the pipeline looks again while the merge holds
// records for the other ring's watermark.
const holdCheck = pollEvery / 2

// idlePoll is how often a reader whose ring has been empty for idleAfter
// polls in a row looks at it: BPF still wakes it when a burst fills
// its wakeup step (nw_wake_flag), and the pipeline pokes it when records of the other
// ring wait for its watermark (merge.holding), so only a lone record
// waits this long. Polling an idle ring every pollEvery cost ~1.5% of
// the machine here (two readers at 50 Hz plus the Go scheduler's
// spinning, measured with no traffic at all); at 100 ms the idle cost is
// within noise of 250 ms (3-4 ticks of 10 ms per 10 s).
const (
	idlePoll  = 100 * time.Millisecond
	idleAfter = 5
)

// publishEvery bounds how long a busy reader keeps its watermark to itself
// (the pipeline holds the other ring's records until it moves).
const publishEvery = 5 * time.Millisecond

// batchLen is how many events one hand-off carries at most.
const batchLen = 256

// extLen is how many records with an Ext payload one batch carries at most
// (a batch is handed over early when they are used up).
const extLen = 32

// batch is a reusable slice of events that returns to its reader's pool
// once the pipeline has handled all of them.
type batch struct {
	evs  []event.Event
	ext  []event.Ext // Ext slots (see event.Ext), made when first needed
	nExt int         // slots of ext in use
	next int         // the first event the pipeline has not handled
	src  int
	pool *batchPool
}

// batchPool is a reader's free batches, reused last in, first out: the
// batch the pipeline handed back last is the one still in the caches. A
// channel reused them in turn, so every record was written into memory
// last touched 63 batches (9 MiB) ago: the packet decoder waited on cache
// misses of its event slot for most of its time (issue 17, perf).
type batchPool struct {
	mu    sync.Mutex
	free  []*batch
	ready chan struct{} // a token after put: wakes a reader waiting for a batch
}

func newPool(n, src int) *batchPool {
	n = max(n, 2)
	pool := &batchPool{free: make([]*batch, 0, n), ready: make(chan struct{}, 1)}
	for i := 0; i < n; i++ {
		pool.free = append(pool.free, &batch{evs: make([]event.Event, 0, batchLen), pool: pool, src: src})
	}
	return pool
}

// tryGet takes the free batch put last, or nil.
func (p *batchPool) tryGet() *batch {
	p.mu.Lock()
	var b *batch
	if n := len(p.free); n > 0 {
		b = p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
	}
	p.mu.Unlock()
	return b
}

// put gives a handled batch back.
func (p *batchPool) put(b *batch) {
	p.mu.Lock()
	p.free = append(p.free, b)
	p.mu.Unlock()
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

// coreTypes are the record types whose decoders use no Ext slot: only the
// others get one. Both rings carry records with an Ext payload (UDP, ICMP,
// DNS, netfilter records go on the packet ring), but most runs have none
// or few: an Ext is ~4.5 KiB, and a slot for every event of every batch
// was 111 MiB of heap (resident only where touched, but the garbage
// collector's target grows with it: RSS of -q -ax on churn 117-125 MiB).
// Now a batch makes its extLen slots when its first such record comes.
var coreTypes = func() (t [event.MaxRingType]bool) {
	for _, x := range []event.Type{event.ConnOpen, event.ConnOwner, event.ConnClose, event.Packet, event.Retrans, event.Cong, event.Error} {
		t[x] = true
	}
	return t
}()

// needsExt: raw is a record that gets an Ext slot.
func needsExt(raw []byte) bool {
	return len(raw) > 0 && int(raw[0]) < len(coreTypes) && !coreTypes[raw[0]]
}

// reader drains one ring into batches for the pipeline.
//
// Watermark: after a pass over the ring that began at time T and found no
// record still being written, every record committed before T has been
// read; once those are handed over, the reader publishes T. The pipeline
// releases a record of the OTHER ring only when this watermark has passed
// its timestamp, so records of both rings come out in time order (a
// connection's open before its packets, its packets before its close).
// Records are stamped in the BPF program that commits them, a few hundred
// ns earlier (mergeSlack covers that).
type reader struct {
	src      int
	r        *ringread.Reader
	lossless bool
	pool     *batchPool
	queue    chan<- *batch
	pipeDone <-chan struct{} // the pipeline stopped: nobody returns batches any more
	decode   func(raw []byte, ev *event.Event) bool
	ctr      *Counters
	wm       *atomic.Uint64
	handed   *atomic.Uint64 // the ring position up to which every record was handed over (see merge.idleMark)

	quiet bool // -q: poll every quietPoll (see there)

	b    *batch
	stop bool
}

// get takes a free batch. The lossless reader waits for one (until the
// pipeline is gone); the lossy one does not: without a free batch its
// records are dropped and counted.
func (rd *reader) get() bool {
	if rd.lossless {
		for {
			if rd.b = rd.pool.tryGet(); rd.b != nil {
				return true
			}
			select {
			case <-rd.pool.ready: // a batch came back (or a stale token: look again)
			case <-rd.pipeDone:
				return false
			}
		}
	}
	rd.b = rd.pool.tryGet()
	return true
}

func (rd *reader) send() {
	if rd.b != nil && len(rd.b.evs) > 0 {
		rd.queue <- rd.b
		rd.b = nil
	}
}

// one handles one ring record; false stops the pass.
func (rd *reader) one(raw []byte) bool {
	if rd.b == nil && !rd.get() {
		rd.stop = true
		return false
	}
	if rd.b == nil { // lossy reader, no free batch: the pipeline is behind
		rd.ctr.QueueLost.Add(1)
		return true
	}
	b := rd.b
	b.evs = b.evs[:len(b.evs)+1]
	ev := &b.evs[len(b.evs)-1]
	ev.Ext = nil
	ext := needsExt(raw)
	if ext {
		if b.ext == nil {
			b.ext = make([]event.Ext, extLen)
		}
		ev.Ext = &b.ext[b.nExt]
	}
	if !rd.decode(raw, ev) {
		b.evs = b.evs[:len(b.evs)-1]
		rd.ctr.Undecodable.Add(1)
		return true
	}
	if ext {
		b.nExt++
	}
	if len(b.evs) == cap(b.evs) || ext && b.nExt == len(b.ext) {
		rd.send()
		if !rd.get() {
			rd.stop = true
			return false
		}
	}
	return true
}

// run reads until the ring is flushed (stop) and drained, or the pipeline
// is gone. On return the watermark is +inf: nothing more will come.
func (rd *reader) run() error {
	defer rd.wm.Store(math.MaxUint64)
	defer rd.send()
	if !rd.get() {
		return nil
	}
	var published uint64
	flushed := false
	empty := 0 // passes in a row that found nothing
	for {
		start := output.MonoNow()
		n, busy := rd.r.Batch(rd.one)
		if n > 0 {
			rd.ctr.Events.Add(uint64(n)) // once per pass: an atomic add per record showed in profiles
		}
		if rd.stop {
			return nil
		}
		if busy {
			runtime.Gosched() // a record is being written: back in a moment
			continue
		}
		if n > 0 {
			empty = 0
		}
		if n > 0 && start-published < uint64(publishEvery) {
			continue // keep filling the batch; publish at the latest every publishEvery
		}
		// Everything committed before start is read: hand it over, then
		// say so (in this order, see merge).
		rd.send()
		rd.handed.Store(rd.r.Consumed())
		rd.wm.Store(start)
		published = start
		if n > 0 {
			continue
		}
		if flushed {
			return nil // stopped and drained
		}
		if rd.b == nil && !rd.get() {
			return nil
		}
		wait := pollEvery
		if empty++; empty > idleAfter {
			wait = idlePoll
		}
		if rd.quiet {
			wait = quietPoll
		}
		switch err := rd.r.Wait(wait); {
		case errors.Is(err, ringread.ErrFlushed):
			flushed = true // drain what is left, then stop
		case err != nil:
			return fmt.Errorf("ring buffer: %w", err)
		}
	}
}
