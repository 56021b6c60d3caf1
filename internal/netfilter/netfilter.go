// Package netfilter is the -n concern: per packet, the time spent in each
// netfilter hook it crosses (PRE_ROUTING, LOCAL_IN, FORWARD, LOCAL_OUT,
// POST_ROUTING; IPv4 and IPv6; every network namespace), the hook and the
// kernel's reason when it is dropped there, and a per-hook histogram every
// --interval and at exit. See netfilter.bpf.c for what is measured and
// its limits.
package netfilter

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/drops"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/output"
)

// NsBoundaries are attached inside every network namespace: each hook's
// first and last priority.
var NsBoundaries = []string{
	kernel.NfPreFirst, kernel.NfPreLast, kernel.NfInFirst, kernel.NfInLast,
	kernel.NfFwdFirst, kernel.NfFwdLast, kernel.NfOutFirst, kernel.NfOutLast,
	kernel.NfPostFirst, kernel.NfPostLast,
}

// Concern implements engine.Concern for -n.
type Concern struct {
	kernel.Live
	cfg      *config.Config
	log      *slog.Logger
	ns       *kernel.NetnsHooks
	reasons  *drops.Reasons
	stats    *ebpf.Map
	interval time.Duration

	// pipeline goroutine (Tick, Finish)
	last [2 * event.NFHooks]netfilterNwNfHookHist // the run's totals at the previous tick
	per  []netfilterNwNfHookHist
	ext  event.Ext
}

// New returns the -n concern (not loaded yet).
func New(cfg *config.Config) *Concern { return &Concern{cfg: cfg, interval: cfg.Interval} }

// Name implements engine.Concern.
func (c *Concern) Name() string { return "netfilter hook times (-n)" }

// Types implements engine.Concern.
func (c *Concern) Types() []event.Type { return []event.Type{event.NF} }

// LogNames implements engine.LogNamer.
func (c *Concern) LogNames() []string { return []string{output.NFLogName} }

// PacketRingBytes implements engine.PacketRinger: the records go on the
// packet ring (160 bytes each, 168 with the ring header: 8 MiB hold
// ~50,000); with --no-packets there are none (summaries only).
func (c *Concern) PacketRingBytes() uint32 {
	if c.cfg != nil && c.cfg.NoPackets {
		return 0
	}
	return 8 << 20
}

// linksAvailable: can the per-namespace links work here (6.4+)?
func linksAvailable() error { return kernel.Available(kernel.Hooks[kernel.NfPreFirst].Candidates[0]) }

// Available reports whether -n can work on this kernel: netfilter BPF
// links (6.4+), else kprobes on nf_hook_slow.
func Available() error {
	lerr := linksAvailable()
	if lerr == nil {
		return nil
	}
	kerr := kernel.Available(kernel.Hooks[kernel.NfSlow].Candidates[0])
	if kerr == nil {
		kerr = kernel.Available(kernel.Hooks[kernel.NfSlowRet].Candidates[0])
	}
	if kerr == nil {
		return nil
	}
	return fmt.Errorf("netfilter hook times (-n) need netfilter BPF links (Linux 6.4+) or kprobes on nf_hook_slow: %v; %v", lerr, kerr)
}

// ByLinks reports whether -n uses the netfilter links (else the
// nf_hook_slow kprobes).
func ByLinks() bool { return linksAvailable() == nil }

// Load implements engine.Concern.
func (c *Concern) Load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	c.cfg, c.interval = cfg, cfg.Interval
	if err := Available(); err != nil {
		return err
	}
	kspec, nargs, err := drops.KfreeArgs()
	if err != nil {
		return err
	}
	first := uint32(2)
	if nargs >= 3 {
		if c.reasons, err = drops.ReasonsFromBTF(kspec); err != nil {
			return err
		}
		for code, name := range c.reasons.Kernel {
			if name == "NOT_SPECIFIED" {
				first = uint32(code)
			}
		}
	}
	spec, err := loadNetfilter()
	if err != nil {
		return fmt.Errorf("netfilter: parse object: %w", err)
	}
	if nargs < 3 {
		// kfree_skb has no drop reason (before 5.17): the programs would
		// not load; the kretprobe sees drops by their verdict
		delete(spec.Programs, "nw_nf_kfree_btf")
		delete(spec.Programs, "nw_nf_kfree_raw")
	}
	if !ByLinks() {
		kernel.DeleteNetfilter(spec)
	}
	for name, v := range map[string]any{"cfg_records": !cfg.NoPackets, "cfg_first_drop": first} {
		if err := spec.Variables[name].Set(v); err != nil {
			return fmt.Errorf("netfilter: set %s: %w", name, err)
		}
	}
	coll, err := conn.LoadShared(spec, cfg, shared)
	if err != nil {
		return fmt.Errorf("netfilter: %w", err)
	}
	c.Coll = coll
	c.stats = shared["nw_stats"]
	return nil
}

// Attach implements engine.Concern: the drop hook (host-wide), then both
// programs at every hook of every network namespace, new ones too; before
// netfilter links, the nf_hook_slow kprobes (host-wide).
func (c *Concern) Attach(log *slog.Logger) error {
	c.log = log
	if c.Coll.Programs["nw_nf_kfree_btf"] != nil || c.Coll.Programs["nw_nf_kfree_raw"] != nil {
		if _, err := c.Live.Attach(log, kernel.NfDrop); err != nil {
			log.Warn("-n: drops inside a hook have no reason (kfree_skb not attached)", "err", err)
		}
	}
	if !ByLinks() {
		for _, b := range []string{kernel.NfSlowRet, kernel.NfSlow} {
			if _, err := c.Live.Attach(log, b); err != nil {
				c.Live.Detach()
				return fmt.Errorf("netfilter: %w", err)
			}
		}
		log.Info("-n: no netfilter BPF links (Linux 6.4+): whole hook traversals from nf_hook_slow, only where a hook has functions")
		return nil
	}
	// NsBoundaries: 10 programs, v4 and v6 each: 20 links per namespace.
	var err error
	if c.ns, err = kernel.StartNetns(c.Coll, log, NsBoundaries); err != nil {
		c.Live.Detach()
		return fmt.Errorf("netfilter: %w", err)
	}
	return nil
}

// Detach implements engine.Concern.
func (c *Concern) Detach() {
	c.ns.Close()
	c.Live.Detach()
}

// Counters implements engine.CounterSource.
func (c *Concern) Counters() map[string]uint64 {
	out := map[string]uint64{"nf_unmatched": 0, "nf_evicted": 0}
	if c.stats == nil {
		return out
	}
	var per []uint64
	for k, i := range map[string]uint32{"nf_unmatched": event.StatNfUnmatched, "nf_evicted": event.StatNfEvicted} {
		if err := c.stats.Lookup(i, &per); err == nil {
			for _, v := range per {
				out[k] += v
			}
		}
	}
	return out
}

// RecordSize is the size of an NW_EV_NF ring record.
const RecordSize = int(unsafe.Sizeof(netfilterNwNfEvent{}))

// Decode implements engine.Concern (reader goroutines; no allocation: the
// reason name is the table's).
func (c *Concern) Decode(raw []byte, ev *event.Event) bool {
	if !Decode(raw, ev) {
		return false
	}
	if n := &ev.Ext.NF; n.Dropped {
		switch {
		case n.Reason == 0:
			// the nf_hook_slow return saw the drop, kfree_skb did not (no
			// reason before 5.17): a netfilter verdict
			n.Name = "NETFILTER_DROP"
		case c.reasons != nil && int(n.Reason) < len(c.reasons.Kernel):
			n.Name = c.reasons.Kernel[n.Reason]
		}
	}
	return true
}

// Decode fills ev from an NW_EV_NF record (false for anything else).
func Decode(raw []byte, ev *event.Event) bool {
	r := event.Record[netfilterNwNfEvent](raw)
	x := ev.Ext
	if r == nil || event.Type(r.Hdr.Type) != event.NF || x == nil {
		return false
	}
	*ev = event.Event{
		Type: event.NF,
		TS:   r.Hdr.Ts,
		Conn: event.Conn{Sock: r.Hdr.Sk, Netns: r.Hdr.Netns},
		Ext:  x,
	}
	p := &r.P
	n := &x.NF
	*n = event.NFInfo{
		Family: p.Family, Proto: p.Proto, Hooks: p.Hooks & (1<<event.NFHooks - 1),
		DurNs: p.Dur, StartNs: p.Start, EstLo: r.EstLo,
		Dropped: r.Verdict != 0, DropHook: r.DropHook, Reason: r.Reason,
	}
	var sp, dp uint16
	if n.HasPorts() {
		sp, dp = p.Sport, p.Dport
	} else if n.Proto == event.ProtoICMP || n.Proto == event.ProtoICMPv6 {
		n.ICMPType, n.ICMPCode = p.IcmpType, p.IcmpCode
	}
	n.Src = netip.AddrPortFrom(conn.Addr(p.Family, &p.Saddr), sp)
	n.Dst = netip.AddrPortFrom(conn.Addr(p.Family, &p.Daddr), dp)
	if r.Owner.Pid != 0 {
		ev.Conn.SetOwner(r.Owner.Pid, r.Owner.Src, &r.Owner.Comm)
	}
	return true
}

// Interval implements engine.Ticker.
func (c *Concern) Interval() time.Duration { return c.interval }

// Tick implements engine.Ticker: one summary record per (family, hook)
// that had traversals or drops in the interval.
func (c *Concern) Tick(now uint64, emit func(*event.Event)) { c.summaries(now, false, emit) }

// Finish is called once at exit: one summary per (family, hook) of the
// whole run, printed with -q too.
func (c *Concern) Finish(now uint64, emit func(*event.Event)) { c.summaries(now, true, emit) }

func (c *Concern) summaries(now uint64, final bool, emit func(*event.Event)) {
	m := c.Coll.Maps["nw_nf_hist"]
	if m == nil {
		return
	}
	for i := uint32(0); i < 2*event.NFHooks; i++ {
		if err := m.Lookup(i, &c.per); err != nil {
			continue
		}
		var tot netfilterNwNfHookHist
		for j := range c.per {
			Add(&tot, &c.per[j])
		}
		ev := event.Event{Type: event.NF, TS: now, Ext: &c.ext}
		c.ext.NF = event.NFInfo{Summary: true}
		s := &c.ext.NF.Sum
		s.Final = final
		s.Family = 2
		if i >= event.NFHooks {
			s.Family = 10
		}
		s.Hook = uint8(i % event.NFHooks)
		if final {
			Fill(s, &tot, nil)
		} else {
			Fill(s, &tot, &c.last[i])
			c.last[i] = tot
		}
		if s.Count() == 0 && s.Drops == 0 {
			continue
		}
		emit(&ev)
	}
}

// Add adds one CPU's histogram into tot (max: the larger).
func Add(tot, h *netfilterNwNfHookHist) {
	for b := range tot.Buckets {
		tot.Buckets[b] += h.Buckets[b]
	}
	tot.SumNs += h.SumNs
	tot.Drops += h.Drops
	tot.MaxNs = max(tot.MaxNs, h.MaxNs)
}

// Fill sets s from the run's totals h, minus prev (the totals at the
// previous tick; nil: the whole run).
func Fill(s *event.NFSummary, h, prev *netfilterNwNfHookHist) {
	var p netfilterNwNfHookHist
	if prev != nil {
		p = *prev
	}
	for b := range s.Buckets {
		s.Buckets[b] = h.Buckets[b] - p.Buckets[b]
	}
	s.SumNs = h.SumNs - p.SumNs
	s.Drops = h.Drops - p.Drops
	s.MaxNs = h.MaxNs
}
