package engine

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/netwatcher/netwatcher/internal/output"
)

// mergeSlack: a record is stamped (bpf_ktime_get_ns) in the BPF program
// that commits it, before the reservation; a record on one ring may so be
// committed up to a program run later than its stamp says. Waiting this
// much past a record's stamp for the other ring makes that harmless.
const mergeSlack = 2_000_000 // ns

// merge puts the records of the two rings back in time order. Each ring is
// read in commit order (nearly time order: records of different CPUs may
// cross by a program run); across rings nothing is ordered, because each
// has its own reader. The pipeline handles the older of the two heads; when
// one ring has nothing waiting, a record of the other waits until that
// ring's reader has read everything committed up to the record's stamp
// (its watermark, see reader).
//
// Batches stay in the merge until all their records are handled: no copy
// per record. A source holding more than its limit of batches is released
// without waiting for the other ring: under CPU starvation one reader may
// not run for a while, and holding on would empty the other reader's pool
// (its reader would wait for a batch while its ring fills; when the packet
// reader still dropped records then, measured: 12k of 33k lost under a
// load average of 7 on 2 cores), or stop both readers at once. Order then is as good as the rings give it,
// and records that come out older than one already handled are counted
// (Late).
type merge struct {
	fifo  [nSources][]*batch
	wm    [nSources]*atomic.Uint64
	limit [nSources]int // batches held per source before releasing without the watermark
	Late  uint64        // records handled after a younger record of the other ring (ordered as well as possible)
	last  uint64        // timestamp of the last record handled

	// Holding: after release, the source whose watermark the held
	// records wait for, or -1. An idle reader polls its ring rarely (see
	// reader.run): poke (if set) asks it to look now, at most once per
	// pokeEvery per source, so held records wait a pass, not a poll.
	waitFor  int
	poke     [nSources]func()
	lastPoke [nSources]uint64

	// With -q (quiet): held records may wait a while (nothing shows them
	// before the once-a-second flush), so the merge pokes only when they
	// have waited pokeAfter or fill a quarter of their limit (the reader
	// publishes by itself at its poll, its BPF wakeup (nw_wake_flag) or publishEvery
	// when busy), and the pipeline looks again every recheck instead of
	// holdCheck. Each poke is a wakeup of a goroutine that mostly finds a
	// few records: on churn most of the tool's context switches.
	pokeAfter uint64 // ns; 0: at once
	holdSince uint64 // when the merge began to hold (output.MonoNow), 0: not holding
	recheck   time.Duration

	// Idle rings (see idleMark): handed is what the reader says it has
	// handed over, produced reads the ring's producer position.
	handed   [nSources]*atomic.Uint64
	produced [nSources]func() uint64
}

// pokeEvery is the least time between two pokes of one reader (ns).
const pokeEvery = uint64(publishEvery)

// Quiet mode's poke delay and hold re-check (see merge.pokeAfter).
const (
	quietPokeAfter = uint64(100 * time.Millisecond)
	quietRecheck   = 50 * time.Millisecond
)

func newMerge() *merge {
	m := &merge{waitFor: -1, recheck: holdCheck}
	for i := range m.wm {
		m.wm[i] = new(atomic.Uint64)
		m.handed[i] = new(atomic.Uint64)
		m.limit[i] = math.MaxInt
	}
	return m
}

// quiet makes the merge poke late (see pokeAfter).
func (m *merge) quiet() {
	m.pokeAfter, m.recheck = quietPokeAfter, quietRecheck
}

// idleMark is a watermark for src that its reader did not publish: if the
// ring's producer position is still where the reader last said it had
// handed everything over, nothing was reserved in the ring since, so every
// record stamped before now (less mergeSlack, as for a published mark) is
// in the merge's hands or its queue. An idle ring (the lifecycle ring
// under request/response traffic) so never needs its reader woken: the
// merge pokes it only when the ring holds records. 0 when the ring is not
// idle. Called before the queue is drained (the reader sends before it
// says handed).
func (m *merge) idleMark(src int) uint64 {
	f := m.produced[src]
	if f == nil {
		return 0
	}
	h := m.handed[src].Load()
	now := output.MonoNow()
	if f() != h {
		return 0
	}
	return now
}

// holding reports whether records wait for a watermark; it pokes the
// reader they wait for (rate-limited). now is output.MonoNow().
func (m *merge) holding(now uint64) bool {
	src := m.waitFor
	if src < 0 {
		m.holdSince = 0
		return false
	}
	if m.holdSince == 0 {
		m.holdSince = now
	}
	held := 1 - src // the source whose records wait
	late := now-m.holdSince >= m.pokeAfter || len(m.fifo[held]) >= max(m.limit[held]/4, 1)
	if late && m.poke[src] != nil && now-m.lastPoke[src] >= pokeEvery {
		m.lastPoke[src] = now
		m.poke[src]()
	}
	return true
}

func (m *merge) push(b *batch) { m.fifo[b.src] = append(m.fifo[b.src], b) }

func (m *merge) head(src int) *batch {
	if len(m.fifo[src]) == 0 {
		return nil
	}
	return m.fifo[src][0]
}

// release hands every record that may go now, in order, to fn. drain is
// called after the watermarks are read and before records are released: it
// must push every batch already sent (a reader sends before it publishes,
// so a watermark never runs ahead of a batch the merge has).
func (m *merge) release(drain func(), fn func(src int, b *batch, i int)) {
	var wm [nSources]uint64
	for i := range wm {
		wm[i] = m.wm[i].Load()
		if wm[i] != math.MaxUint64 {
			wm[i] = max(wm[i], m.idleMark(i))
		}
	}
	drain()
	m.waitFor = -1
	for {
		h0, h1 := m.head(srcLife), m.head(srcPacket)
		var src int
		switch {
		case h0 != nil && h1 != nil:
			if h1.evs[h1.next].TS < h0.evs[h0.next].TS {
				src = srcPacket
			}
		case h0 != nil:
			if !passed(wm[srcPacket], h0.evs[h0.next].TS) && len(m.fifo[srcLife]) <= m.limit[srcLife] {
				m.waitFor = srcPacket
				return
			}
		case h1 != nil:
			if !passed(wm[srcLife], h1.evs[h1.next].TS) && len(m.fifo[srcPacket]) <= m.limit[srcPacket] {
				m.waitFor = srcLife
				return
			}
			src = srcPacket
		default:
			return
		}
		b := m.fifo[src][0]
		i := b.next
		b.next++
		if ts := b.evs[i].TS; ts < m.last {
			m.Late++
		} else {
			m.last = ts
		}
		fn(src, b, i)
		if b.next == len(b.evs) {
			m.fifo[src][0] = nil
			m.fifo[src] = m.fifo[src][1:]
			b.evs, b.next, b.nExt = b.evs[:0], 0, 0
			b.pool.put(b)
		}
	}
}

// passed: a reader with watermark wm has read everything committed up to
// ts (plus the slack).
func passed(wm, ts uint64) bool {
	return wm == math.MaxUint64 || ts+mergeSlack <= wm
}

// pending is the number of records held.
func (m *merge) pending() int {
	n := 0
	for _, f := range m.fifo {
		for _, b := range f {
			n += len(b.evs) - b.next
		}
	}
	return n
}
