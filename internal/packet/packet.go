// Package packet is the packet concern (issue #3): one record per TCP data
// segment of a tracked connection, sent or received, in every network
// namespace, with per-layer times (-t) and the first payload bytes (-i).
//
// Kernel side (packet.bpf.c): records are made by cgroup_skb ingress/egress
// programs on the root cgroup v2, which fire for every namespace. With -t,
// boundary stamps come from tracepoints (host-wide) and from netfilter
// PRE_ROUTING / LOCAL_OUT links, which are per network namespace: an
// internal/netns manager attaches them in every namespace as it appears.
// Kernels without some of these (Debian 12's 6.1: no kfunc
// bpf_cast_to_kern_ctx, no netfilter links, no tcp_sendmsg_locked
// tracepoint) get the next candidate of each boundary in the hook table:
// context-only cgroup_skb variants and host-wide kprobes. Before 5.17 (no
// bpf_loop) the packet object does not load: the concern says so in one
// line and does not load either, except with --summary, whose counts need
// no packet object (summary.go).
//
// User space turns the raw stamps into layer times (Decode); a stamp of 0
// (boundary not seen) or stamps out of order give a Missing bit, never a
// wrapped number.
package packet

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/output"
)

// Boundaries of this concern (rows of the hook table, internal/kernel/table.go).
const (
	BRxMac   = kernel.PktRxLink
	BRxCopy  = kernel.PktRxCopy
	BRxTaken = kernel.PktRxTaken
	BClose   = kernel.PktClose
	BTxTCP   = kernel.PktTxTCP
	BTxQueue = kernel.PktTxQueue
	BTxXmit  = kernel.PktTxXmit
	BRxTCP   = kernel.PktRxTCP
	BTxOut   = kernel.PktTxOut
	BRxIP    = kernel.PktRxIP
	BTxIP    = kernel.PktTxIP
)

// bpfLoop: the packet object calls bpf_loop (5.17+); older kernels refuse its
// callbacks before anything else ("number of funcs in func_info doesn't
// match number of subprogs"), so without it the concern does not load.
var bpfLoop = kernel.HelperFeature(ebpf.CGroupSKB, asm.FnLoop, "bpf_loop", "Linux 5.17+")

// tracepointBoundaries are attached with -t, in this order.
var tracepointBoundaries = []string{BRxMac, BRxCopy, BRxTaken, BClose, BTxTCP, BTxQueue, BTxXmit}

// nsBoundaries are attached inside every network namespace (-t).
var nsBoundaries = []string{BRxIP, BTxIP}

// Concern implements engine.Concern.
type Concern struct {
	kernel.Live // the object and its host-wide hooks
	cfg         *config.Config
	log         *slog.Logger
	ns          *kernel.NetnsHooks // nil without -t or netfilter links
	gcStop      chan struct{}
	gcDone      chan struct{}

	stale atomic.Uint64 // sent segments dropped before the driver (GC)
	sum   summaryState  // --summary (summary.go)
	walk  connWalk      // --summary's counts (summary.go)
}

// New returns the packet concern (packets are always on).
func New(cfg *config.Config) *Concern { return &Concern{cfg: cfg} }

// Name implements engine.Concern.
func (c *Concern) Name() string { return "packets" }

// Types implements engine.Concern.
func (c *Concern) Types() []event.Type { return []event.Type{event.Packet} }

// netfilterAvailable: can the per-namespace IP-entry hooks work here (cached
// probe through the hook table)?
func netfilterAvailable() error { return kernel.Available(kernel.Hooks[BRxIP].Candidates[0]) }

// cgroupSKBAvailable: can the record makers work here (either variant)?
func cgroupSKBAvailable() error {
	var first error
	for _, c := range kernel.Hooks[BRxTCP].Candidates {
		err := kernel.Available(c)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// sendEntryByKprobe: the send-side TCP entry is seen by the kprobe candidate
// (no tcp_sendmsg_locked tracepoint): its chunks wait in a hash map.
func sendEntryByKprobe() bool { return kernel.Available(kernel.Hooks[BTxTCP].Candidates[0]) != nil }

// Load implements engine.Concern.
func (c *Concern) Load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	c.cfg = cfg
	// --summary: its counts come from the connection object's walk
	// (summary.go); the packet object only for -t's histograms, and
	// without it the counts still work (summaryOnly).
	if cfg.Summary {
		if err := c.walk.load(cfg, shared); err != nil {
			return fmt.Errorf("packet: %w", err)
		}
		if !cfg.Time {
			return nil // no program per packet
		}
	}
	if err := c.loadObject(cfg, shared); err != nil {
		if err = c.summaryOnly(err); err != nil {
			c.walk.close()
		}
		return err
	}
	return nil
}

// loadObject loads the packet object.
func (c *Concern) loadObject(cfg *config.Config, shared map[string]*ebpf.Map) error {
	if err := cgroupSKBAvailable(); err != nil {
		return err
	}
	if err := bpfLoop.Available(); err != nil {
		return fmt.Errorf("packet records (packet lines, -t, -i) %w", err)
	}
	spec, err := loadPacket()
	if err != nil {
		return fmt.Errorf("packet: parse object: %w", err)
	}
	for name, v := range map[string]bool{"cfg_time": cfg.Time, "cfg_http": cfg.HTTP, "cfg_txq_hash": sendEntryByKprobe(), "cfg_summary": cfg.Summary} {
		if err := spec.Variables[name].Set(v); err != nil {
			return fmt.Errorf("packet: set %s: %w", name, err)
		}
	}
	if err := spec.Variables["cfg_sample"].Set(max(cfg.Sample, 1)); err != nil {
		return fmt.Errorf("packet: set cfg_sample: %w", err)
	}
	switch {
	case !cfg.Time:
		// Only the record makers are needed.
		for name, p := range spec.Programs {
			if p.Type != ebpf.CGroupSKB {
				delete(spec.Programs, name)
			}
		}
	case netfilterAvailable() != nil:
		kernel.DeleteNetfilter(spec)
	}
	// Shared maps are created by the connection object, possibly resized.
	coll, err := conn.LoadShared(spec, cfg, shared)
	if err != nil {
		return fmt.Errorf("packet: %w", err)
	}
	c.Coll = coll
	return nil
}

// Attach implements engine.Concern: cgroup_skb record makers (required),
// then with -t the tracepoints and the per-namespace netfilter links.
func (c *Concern) Attach(log *slog.Logger) error {
	c.log = log
	if n := c.cfg.Sample; n > 1 && (!c.cfg.Summary || c.timed()) {
		msg := fmt.Sprintf("packet records: 1 in %d segments", n)
		if c.cfg.HTTP {
			msg += " (and every segment that may start an HTTP line)"
		}
		log.Info(msg, "sample", n)
	}
	if c.cfg.Summary {
		if err := c.walk.attach(); err != nil {
			return fmt.Errorf("packets: %w", err)
		}
		if !c.cfg.Time {
			return nil // no program per packet (summary.go)
		}
		if err := c.sum.untimed; err != nil {
			log.Warn("--summary -t: layer-time histograms missing (counts only): they need the packet programs", "err", kernel.OneLine(err))
			return nil
		}
	}
	for _, name := range []string{BRxTCP, BTxOut} {
		if _, err := c.Live.Attach(log, name); err != nil {
			c.Detach()
			return fmt.Errorf("packets: %w", err)
		}
	}
	if !c.cfg.Time {
		return nil
	}
	for _, name := range tracepointBoundaries {
		if _, err := c.Live.Attach(log, name); err != nil {
			log.Warn("layer time boundary missing (reported as -)", "boundary", name, "err", kernel.OneLine(err))
		}
	}
	if nferr := netfilterAvailable(); nferr != nil {
		// Host-wide candidates (kprobes) instead; one line if they fail.
		var why []string
		for _, name := range nsBoundaries {
			if _, err := c.Live.Attach(log, name); err != nil {
				why = append(why, kernel.OneLine(err))
			}
		}
		if len(why) > 0 {
			log.Warn("IP-layer boundaries missing (mac_time and ip_time reported as -): they need netfilter BPF links (Linux 6.4+) or kprobes",
				"err", strings.Join(why, "; "))
		}
	} else {
		var err error
		if c.ns, err = kernel.StartNetns(c.Coll, log, nsBoundaries); err != nil {
			log.Warn("IP-layer boundaries missing (mac_time and ip_time reported as -)", "err", err.Error())
		}
	}
	c.gcStop, c.gcDone = make(chan struct{}), make(chan struct{})
	go c.gc()
	return nil
}

// StaleAfter is how long a sent segment may wait between IP entry and the
// driver before it is considered dropped (qdisc drop, unresolved neighbour)
// and its stamps are forgotten.
var StaleAfter = 30 * time.Second

// gc removes sent-segment stamps whose skb never reached the driver.
func (c *Concern) gc() {
	defer close(c.gcDone)
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	m := c.Coll.Maps["nw_pkt_txpend"]
	var k packetTxKey
	var v packetTxPend
	var del []packetTxKey
	for {
		select {
		case <-c.gcStop:
			return
		case <-t.C:
		}
		now := output.MonoNow()
		del = del[:0]
		it := m.Iterate()
		for it.Next(&k, &v) {
			var newest uint64
			for _, ts := range v.T {
				newest = max(newest, ts)
			}
			if newest != 0 && now > newest && now-newest > uint64(StaleAfter) {
				del = append(del, k)
			}
		}
		for i := range del {
			if m.Delete(&del[i]) == nil {
				c.stale.Add(1)
			}
		}
		if len(del) > 0 && c.log != nil {
			c.log.Debug("sent segments never transmitted by a driver", "count", len(del), "total", c.stale.Load())
		}
	}
}

// Stale returns how many sent segments were forgotten because they never
// reached a driver (dropped after the IP layer).
func (c *Concern) Stale() uint64 { return c.stale.Load() }

// Detach implements engine.Concern.
func (c *Concern) Detach() {
	if c.gcStop != nil {
		close(c.gcStop)
		<-c.gcDone
		c.gcStop = nil
	}
	// c.ns itself stays: the engine's reader may still call Decode
	// (Seen is safe on closed hooks).
	c.ns.Close()
	c.Live.Detach()
}

// Close implements engine.Concern.
func (c *Concern) Close() {
	c.Detach()
	c.walk.close()
	c.Live.Close()
}

// rawPkt is the shortest record (struct nw_pkt_event up to `t`: without -t
// and without payload bytes). Decode casts only this much, so a short record
// is never read as a longer type (checkptr); the stamps and payload bytes of
// longer records are copied out by offset. TestLayout keeps it in step with
// the generated packetNwPktEvent.
type rawPkt struct {
	Type    uint8
	Rx      uint8
	HttpLen uint8
	HttpCut uint8
	Netns   uint32
	Sk      uint64
	Ts      uint64
	Seq     uint32
	Ack     uint32
	Len     uint32
	EstLo   uint32
}

const (
	eventSize = int(unsafe.Sizeof(packetNwPktEvent{}))
	baseSize  = int(unsafe.Sizeof(rawPkt{}))
	tOff      = int(unsafe.Offsetof(packetNwPktEvent{}.T))
	httpOff   = int(unsafe.Offsetof(packetNwPktEvent{}.Http))
)

// Decode implements engine.Concern. It runs on the engine's reader
// goroutine and does not allocate.
func (c *Concern) Decode(raw []byte, ev *event.Event) bool {
	if !Decode(raw, ev) {
		return false
	}
	c.ns.Seen(ev.Conn.Netns)
	return true
}

// Decode fills ev from a raw packet record (either the short form, without
// payload bytes, or the full one). It reports false for other records.
//
// Packet records carry no addresses (see packet.bpf.c): ev.Conn has the
// socket and the namespace only; the engine adds the rest from its
// connection table when it prints them.
func Decode(raw []byte, ev *event.Event) bool {
	if len(raw) < baseSize || raw[0] != byte(event.Packet) {
		return false
	}
	r := (*rawPkt)(unsafe.Pointer(&raw[0]))
	ev.Type = event.Packet
	ev.TS = r.Ts
	ev.HasStats = false
	ev.Conn = event.Conn{Sock: r.Sk, Netns: r.Netns}
	p := &ev.Packet
	rx := r.Rx != 0
	var t [4]uint64
	if len(raw) >= httpOff {
		for i := range t {
			t[i] = binary.NativeEndian.Uint64(raw[tOff+8*i:])
		}
	}
	// receive: t0 link, t1 IP, t2 TCP, t3 copy  => mac, ip, tcp
	// send:    t0 TCP, t1 IP, t2 queue, t3 xmit => tcp, ip, mac
	// Computed first, each field of the event written once and none read
	// back: the event's slot is often not in this CPU's cache (issue 17).
	mac, ip, tcp, missing := event.LayerTimes(&t, rx)
	p.Seq, p.Ack, p.Len, p.EstLo = r.Seq, r.Ack, r.Len, r.EstLo
	p.Rx = rx
	p.MacNs, p.IPNs, p.TCPNs, p.Missing = mac, ip, tcp, missing
	p.HTTPLen, p.HTTPCut = 0, false
	if len(raw) >= eventSize && r.HttpLen > 0 {
		n := min(int(r.HttpLen), len(p.HTTP))
		copy(p.HTTP[:n], raw[httpOff:httpOff+n])
		p.HTTPLen = uint8(n)
		p.HTTPCut = r.HttpCut != 0
	}
	return true
}

// Counters reports the concern's own counters for the final stats; with
// --sample and -t also pkt_sample_waits: segments that waited for a later
// hook (the picked ones, and unpicked HTTP starts kept in order behind one),
// the work the queue, transmit and copy hooks search through.
func (c *Concern) Counters() map[string]uint64 {
	m := map[string]uint64{"pkt_tx_stale": c.Stale()}
	if c.cfg != nil && c.cfg.Sample > 1 && c.cfg.Time && c.Coll != nil {
		if v := c.Coll.Variables["nw_pkt_waits"]; v != nil {
			var n uint64
			if v.Get(&n) == nil {
				m["pkt_sample_waits"] = n
			}
		}
	}
	return m
}

// PacketRingBytes sizes the packet ring: room for bursts of a
// 1 Gbit/s-class transfer while user space catches up.
func (c *Concern) PacketRingBytes() uint32 {
	if c.cfg != nil && c.cfg.Summary {
		return 64 << 10 // --summary: no packet record (other concerns may want more)
	}
	return 16 << 20
}

// Picked reports whether --sample n records the TCP data segment with
// sequence number seq sent from port sport to port dport (the ports of its
// TCP header, so a received segment's sport is the remote one). It is the
// kernel's pkt_pick (packet.bpf.c): murmur3's 32-bit finaliser of
// seq ^ (sport<<16 | dport), picked when it is 0 modulo n.
func Picked(seq uint32, sport, dport uint16, n uint32) bool {
	if n <= 1 {
		return true
	}
	h := seq ^ (uint32(sport)<<16 | uint32(dport))
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h%n == 0
}
