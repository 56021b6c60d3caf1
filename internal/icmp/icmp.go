// Package icmp is the -I concern (alias --icmptime): one record per ICMP
// or ICMPv6 message entering or leaving a host stack, every network
// namespace, with its layer times; echo requests and replies with their
// id/seq (the pipeline pairs them into the round trip the kernel saw),
// error types with the flow they quote. See icmp.bpf.c for the boundaries
// and their limits.
//
// The IP and ICMP entries and IP output are netfilter links (6.4+), one
// set per network namespace, kept in every namespace by an
// internal/netns manager; without netfilter links the concern does not
// load (one line, the rest runs).
package icmp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/output"
)

// Boundaries of this concern (rows of the hook table, internal/kernel/table.go).
const (
	BRxLink  = kernel.ICMPRxLink
	BRxIP    = kernel.ICMPRxIP
	BRxICMP  = kernel.ICMPRxICMP
	BRxCopy  = kernel.ICMPRxCopy
	BTxIP    = kernel.ICMPTxIP
	BTxQueue = kernel.ICMPTxQueue
	BTxXmit  = kernel.ICMPTxXmit
)

// hostBoundaries are attached once (tracepoints see every namespace).
var hostBoundaries = []string{BRxLink, BRxCopy, BTxQueue, BTxXmit}

// nsBoundaries are attached inside every network namespace.
var nsBoundaries = []string{BRxIP, BRxICMP, BTxIP}

// PendingMax is how long a message may wait in the kernel for its last
// boundary (an echo for its copy or its kernel reply, a sent message for
// the driver) before Tick records it as it is.
var PendingMax = time.Second

// Concern implements engine.Concern for -I.
type Concern struct {
	kernel.Live
	cfg *config.Config
	log *slog.Logger
	ns  *kernel.NetnsHooks

	// pipeline goroutine (Tick)
	ext   event.Ext
	rxKey icmpNwIcmpEchoKey
	txKey uint64
	val   icmpNwIcmpEvent
	del   []icmpNwIcmpEchoKey
	delTx []uint64

	late atomic.Uint64 // records made by Tick (the last boundary never came)
}

// New returns the -I concern (not loaded yet).
func New(cfg *config.Config) *Concern { return &Concern{cfg: cfg} }

// Name implements engine.Concern.
func (c *Concern) Name() string { return "ICMP (-I)" }

// Types implements engine.Concern.
func (c *Concern) Types() []event.Type { return []event.Type{event.ICMP} }

// LogNames implements engine.LogNamer.
func (c *Concern) LogNames() []string { return []string{output.ICMPLogName} }

// PacketRingBytes implements engine.PacketRinger: ICMP is rare next to
// TCP; a flood of pings at line rate fills 4 MiB (~24k records) in tens
// of ms, counted as lost_ring_full.
func (c *Concern) PacketRingBytes() uint32 { return 4 << 20 }

// netfilterAvailable: the record makers are netfilter links.
func netfilterAvailable() error { return kernel.Available(kernel.Hooks[BRxICMP].Candidates[0]) }

// Load implements engine.Concern.
func (c *Concern) Load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	c.cfg = cfg
	if err := netfilterAvailable(); err != nil {
		return fmt.Errorf("ICMP (-I) needs netfilter BPF links at IP and ICMP entry: %w", err)
	}
	spec, err := loadIcmp()
	if err != nil {
		return fmt.Errorf("icmp: parse object: %w", err)
	}
	if err := kernel.SetTaskHelpers(spec, ebpf.Netfilter, "cfg_nf_pid", "cfg_nf_comm"); err != nil {
		return fmt.Errorf("icmp: %w", err)
	}
	coll, err := conn.LoadShared(spec, cfg, shared)
	if err != nil {
		return fmt.Errorf("icmp: %w", err)
	}
	c.Coll = coll
	return nil
}

// Attach implements engine.Concern: the host-wide tracepoints (a missing
// one leaves its layer time "-"), then the netfilter links in every
// namespace (required).
func (c *Concern) Attach(log *slog.Logger) error {
	c.log = log
	for _, name := range hostBoundaries {
		if _, err := c.Live.Attach(log, name); err != nil {
			log.Warn("ICMP boundary missing (its layer times reported as -)", "boundary", name, "err", err)
		}
	}
	var err error
	if c.ns, err = kernel.StartNetns(c.Coll, log, nsBoundaries); err != nil {
		c.Live.Detach()
		return fmt.Errorf("icmp: %w", err)
	}
	return nil
}

// Detach implements engine.Concern.
func (c *Concern) Detach() {
	c.ns.Close() // Seen stays safe for the reader
	c.Live.Detach()
}

// Close implements engine.Concern.
func (c *Concern) Close() {
	c.Detach()
	c.Live.Close()
}

// RecordSize is the size of an NW_EV_ICMP ring record.
const RecordSize = int(unsafe.Sizeof(icmpNwIcmpEvent{}))

// Decode implements engine.Concern (reader goroutine, no allocation). A
// record of a namespace the manager has not hooked yet asks it to scan.
func (c *Concern) Decode(raw []byte, ev *event.Event) bool {
	if !Decode(raw, ev) {
		return false
	}
	c.ns.Seen(ev.Conn.Netns)
	return true
}

// Decode fills ev from an NW_EV_ICMP record (false for anything else).
func Decode(raw []byte, ev *event.Event) bool {
	r := event.Record[icmpNwIcmpEvent](raw)
	if r == nil || event.Type(r.Hdr.Type) != event.ICMP || ev.Ext == nil {
		return false
	}
	fill(r, ev, r.Hdr.Ts)
	return true
}

// fill decodes record r into ev, stamped ts.
func fill(r *icmpNwIcmpEvent, ev *event.Event, ts uint64) {
	x := ev.Ext
	*ev = event.Event{Type: event.ICMP, TS: ts, Conn: event.Conn{Sock: r.Hdr.Sk, Netns: r.Hdr.Netns}, Ext: x}
	i := &x.ICMP
	*i = event.ICMPInfo{
		Rx: r.Rx != 0, Family: r.Family, Type: r.IcmpType, Code: r.IcmpCode,
		ID: r.Id, Seq: r.Seq, Len: r.Len, End: r.End, InnerProto: r.InnerProto,
	}
	src, dst := conn.Addr(r.Family, &r.Saddr), conn.Addr(r.Family, &r.Daddr)
	if i.Rx {
		i.Local, i.Remote = dst, src
	} else {
		i.Local, i.Remote = src, dst
	}
	if r.InnerProto != 0 {
		i.InnerSrc = netip.AddrPortFrom(conn.Addr(r.Family, &r.InnerSaddr), r.InnerSport)
		i.InnerDst = netip.AddrPortFrom(conn.Addr(r.Family, &r.InnerDaddr), r.InnerDport)
	}
	t := &r.T
	for _, s := range t {
		if s != 0 {
			if i.First == 0 {
				i.First = s
			}
			i.Last = s
		}
	}
	// receive: t0 link, t1 IP, t2 ICMP, t3 end => mac, ip, icmp
	// send:    t0 send (not seen), t1 IP, t2 queue, t3 driver => icmp, ip, mac
	var missing uint8
	i.MacNs, i.IPNs, i.ICMPNs, missing = event.LayerTimes(t, i.Rx)
	i.Missing |= missing
	if r.Owner.Pid != 0 {
		ev.Conn.SetOwner(r.Owner.Pid, r.Owner.Src, &r.Owner.Comm)
	}
	// the kernel made the message (sent without an application's socket:
	// no sock; the owner may be unknown where netfilter programs lack the
	// task helpers) or answered it (a request ended by the kernel's reply)
	i.Kernel = i.Rx && i.End == event.ICMPEndKernel || !i.Rx && r.Hdr.Sk == 0
}

// Interval implements engine.Ticker: the --interval of the other periodic
// records (a shorter one would make theirs more frequent too).
func (c *Concern) Interval() time.Duration { return c.cfg.Interval }

// Tick implements engine.Ticker: messages that waited longer than
// PendingMax for their last boundary (an echo nobody copied or answered,
// a sent message that never reached a driver) are recorded as they are,
// that boundary missing. The kernel and Tick both delete before they
// record: whoever deletes records, once.
func (c *Concern) Tick(now uint64, emit func(*event.Event)) { c.sweep(now, uint64(PendingMax), emit) }

// Finish implements the engine's Finisher: at exit (the hooks detached,
// the rings drained) every message still waiting is recorded as it is.
func (c *Concern) Finish(now uint64, emit func(*event.Event)) { c.sweep(now, 0, emit) }

// sweep records the messages that have waited longer than age (ns).
func (c *Concern) sweep(now, age uint64, emit func(*event.Event)) {
	if c.Coll == nil {
		return
	}
	old := func(v *icmpNwIcmpEvent) bool {
		var newest uint64
		for _, s := range v.T {
			newest = max(newest, s)
		}
		return age == 0 || newest != 0 && now > newest && now-newest > age
	}
	ev := event.Event{Ext: &c.ext}
	record := func(start int) {
		c.late.Add(1)
		fill(&c.val, &ev, c.val.T[start])
		emit(&ev)
	}
	if m := c.Coll.Maps["nw_icmp_rxpend"]; m != nil {
		c.del = sweepMap(m, &c.rxKey, c.del, &c.val, old, func() { record(2) })
	}
	if m := c.Coll.Maps["nw_icmp_txpend"]; m != nil {
		c.delTx = sweepMap(m, &c.txKey, c.delTx, &c.val, old, func() { record(1) })
	}
}

// sweepMap deletes the records of m that old reports (keys collected
// first, then deleted) and calls done for each one this call deleted (the
// record in *val): the kernel may finish one in between. It returns keys
// for reuse.
func sweepMap[K any](m *ebpf.Map, key *K, keys []K, val *icmpNwIcmpEvent, old func(*icmpNwIcmpEvent) bool, done func()) []K {
	keys = keys[:0]
	it := m.Iterate()
	for it.Next(key, val) {
		if old(val) {
			keys = append(keys, *key)
		}
	}
	for i := range keys {
		if m.LookupAndDelete(&keys[i], val) == nil {
			done()
		}
	}
	return keys
}

// Counters implements engine.CounterSource: records made without their
// last boundary because a kernel table was full (or the same echo was
// still waiting), records made late by Tick or at exit by Finish
// (icmp_unfinished), and messages still waiting when the stats were taken
// (no record: only where the engine has no Finisher).
func (c *Concern) Counters() map[string]uint64 {
	out := map[string]uint64{
		"icmp_rx_pending_full": 0, "icmp_tx_pending_full": 0,
		"icmp_unfinished": c.late.Load(), "icmp_pending_at_exit": 0,
	}
	if c.Coll == nil {
		return out
	}
	if m := c.Coll.Maps["nw_stats"]; m != nil {
		var per []uint64
		for k, i := range map[string]uint32{"icmp_rx_pending_full": event.StatICMPRxPendFull, "icmp_tx_pending_full": event.StatICMPTxPendFull} {
			if m.Lookup(i, &per) == nil {
				for _, v := range per {
					out[k] += v
				}
			}
		}
	}
	for _, name := range []string{"nw_icmp_rxpend", "nw_icmp_txpend"} {
		if m := c.Coll.Maps[name]; m != nil {
			n, err := count(m)
			if err == nil {
				out["icmp_pending_at_exit"] += n
			}
		}
	}
	return out
}

func count(m *ebpf.Map) (uint64, error) {
	var n uint64
	it := m.Iterate()
	var k, v []byte
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil && !errors.Is(err, ebpf.ErrIterationAborted) {
		return n, err
	}
	return n, nil
}
