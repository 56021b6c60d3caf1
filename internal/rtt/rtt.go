// Package rtt is the --rtt concern: per connection, the distribution of
// the kernel's own RTT samples (what tcp_rtt_estimator is fed, not the
// smoothed srtt) as a log2 histogram kept in the kernel; printed every
// --interval for the connections that had samples in it, and once more at
// close with the whole connection's histogram. See rtt.bpf.c for what is
// sampled and what is not seen.
package rtt

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/output"
)

// Boundary of this concern (a row of the hook table, internal/kernel/table.go).
const Boundary = kernel.RttSockOps

// Concern implements engine.Concern (and engine.Ticker) for --rtt.
type Concern struct {
	kernel.Live
	interval time.Duration

	// last: each connection's histogram as the previous read saw it, by
	// socket; a read drops the sockets it did not see (closed).
	last map[uint64]*snap
	seen uint64    // read generation
	ext  event.Ext // the payload of the periodic records Tick makes (one at a time)
	keys []uint64
	vals []rttNwRttHist
	// readErrors counts failed map reads (a period without lines).
	readErrors uint64
}

type snap struct {
	h    rttNwRttHist
	seen uint64
}

// New returns the --rtt concern (not loaded yet).
func New(cfg *config.Config) *Concern {
	return &Concern{interval: cfg.Interval, last: map[uint64]*snap{}}
}

// Name implements engine.Concern.
func (c *Concern) Name() string { return "RTT histograms (--rtt)" }

// Types implements engine.Concern.
func (c *Concern) Types() []event.Type { return []event.Type{event.Rtt} }

// LogNames implements engine.LogNamer.
func (c *Concern) LogNames() []string { return []string{output.RttLogName} }

// Load loads the object, reusing the connection object's maps; the
// histogram map holds as many connections as the connection table.
func (c *Concern) Load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	spec, err := loadRtt()
	if err != nil {
		return fmt.Errorf("rtt: parse object: %w", err)
	}
	if cfg.MaxConns > 0 {
		spec.Maps["nw_rtt"].MaxEntries = cfg.MaxConns
	}
	coll, err := conn.LoadShared(spec, cfg, shared)
	if err != nil {
		return fmt.Errorf("rtt: %w", err)
	}
	c.Coll = coll
	return nil
}

// Attach implements engine.Concern.
func (c *Concern) Attach(log *slog.Logger) error {
	if _, err := c.Live.Attach(log, Boundary); err != nil {
		return fmt.Errorf("rtt: %w", err)
	}
	return nil
}

// Interval implements engine.Ticker.
func (c *Concern) Interval() time.Duration { return c.interval }

// Tick implements engine.Ticker: it reads every connection's histogram
// and hands emit one record per connection that had samples since the
// last read (the difference). It runs on the pipeline goroutine.
func (c *Concern) Tick(now uint64, emit func(*event.Event)) {
	m := c.Coll.Maps["nw_rtt"]
	if m == nil {
		return
	}
	c.seen++
	ev := event.Event{Ext: &c.ext}
	err := c.read(m, func(sk uint64, h *rttNwRttHist) {
		prev := c.last[sk]
		if prev == nil {
			prev = &snap{}
			c.last[sk] = prev
		} else if prev.h.EstLo != h.EstLo && prev.h.EstLo != 0 || older(h, &prev.h) {
			prev.h = rttNwRttHist{} // the socket's memory holds another connection now
		}
		prev.seen = c.seen
		if Diff(h, &prev.h, now, sk, &ev) {
			emit(&ev)
		}
		prev.h = *h
	})
	if err != nil {
		c.readErrors++
		return
	}
	for sk, s := range c.last {
		if s.seen != c.seen {
			delete(c.last, sk)
		}
	}
}

// older: some bucket of h is below old's: h is a new histogram.
func older(h, old *rttNwRttHist) bool {
	for i := range h.Slots {
		if h.Slots[i] < old.Slots[i] {
			return true
		}
	}
	return false
}

// read walks the map in batches (one syscall per batch of entries).
func (c *Concern) read(m *ebpf.Map, fn func(uint64, *rttNwRttHist)) error {
	const batch = 1024
	if c.keys == nil {
		c.keys, c.vals = make([]uint64, batch), make([]rttNwRttHist, batch)
	}
	var cur ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cur, c.keys, c.vals, nil)
		for i := 0; i < n; i++ {
			fn(c.keys[i], &c.vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil // done
		}
		if err != nil {
			return err
		}
	}
}

// Diff fills ev (its Ext) with the samples h has beyond prev (a periodic
// record of socket sk at now, monotonic ns); false when there are none.
func Diff(h, prev *rttNwRttHist, now, sk uint64, ev *event.Event) bool {
	var any bool
	x := ev.Ext
	*ev = event.Event{Type: event.Rtt, TS: now, Conn: event.Conn{Sock: sk, Netns: h.Netns}, Ext: x}
	r := &x.Rtt
	*r = event.RttInfo{}
	for i := range h.Slots {
		r.Buckets[i] = h.Slots[i] - prev.Slots[i]
		any = any || r.Buckets[i] != 0
	}
	if !any {
		return false
	}
	r.SumUs = h.SumUs - prev.SumUs
	fill(h, r)
	return true
}

func fill(h *rttNwRttHist, r *event.RttInfo) {
	r.MinUs, r.MaxUs, r.EstLo, r.Srtt = h.MinUs, h.MaxUs, h.EstLo, h.Srtt != 0
	r.Src = netip.AddrPortFrom(conn.Addr(h.Family, &h.Saddr), h.Sport)
	r.Dst = netip.AddrPortFrom(conn.Addr(h.Family, &h.Daddr), h.Dport)
}

// Counters implements engine.CounterSource: connections whose histogram
// did not fit in the kernel map (no samples for them), failed map reads.
func (c *Concern) Counters() map[string]uint64 {
	out := map[string]uint64{"rtt_read_errors": c.readErrors}
	var per []uint64
	if m := c.Coll.Maps["nw_rtt_stats"]; m != nil && m.Lookup(uint32(0), &per) == nil {
		var n uint64
		for _, v := range per {
			n += v
		}
		out["rtt_table_full"] = n
	}
	return out
}

// RecordSize is the size of an NW_EV_RTT ring record.
const RecordSize = int(unsafe.Sizeof(rttNwRttEvent{}))

// Decode implements engine.Concern: it fills ev from an NW_EV_RTT record
// (a connection's whole histogram at its close; false for anything else).
// Stateless; no allocation.
func (c *Concern) Decode(raw []byte, ev *event.Event) bool { return Decode(raw, ev) }

// Decode is the decoder behind Concern.Decode.
func Decode(raw []byte, ev *event.Event) bool {
	if len(raw) < RecordSize || event.Type(raw[0]) != event.Rtt {
		return false
	}
	r := event.Record[rttNwRttEvent](raw)
	x := ev.Ext
	if x == nil {
		return false
	}
	*ev = event.Event{Type: event.Rtt, TS: r.Hdr.Ts, Conn: event.Conn{Sock: r.Hdr.Sk, Netns: r.Hdr.Netns}, Ext: x}
	x.Rtt = event.RttInfo{Buckets: r.H.Slots, SumUs: r.H.SumUs, Close: true}
	fill(&r.H, &x.Rtt)
	return true
}
