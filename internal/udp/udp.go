// Package udp is the -u concern: UDP flows host-wide (every network
// namespace, IPv4 and IPv6) with their owner, datagrams and payload bytes
// per direction, and with -t one record per datagram with its layer times.
// See udp.bpf.c for the hooks and what each one sees.
//
// Flows live in a kernel hash map (nw_udp_flows); Tick reads it every
// --interval and makes one NW_EV_UDP_FLOW record per flow that changed
// (its deltas and totals), Finish one more per flow at exit, after the
// hooks are detached, so nothing counted is lost on SIGINT/SIGTERM. A flow
// idle for FlowIdle gets its last record and leaves the map (it starts
// again from zero if it speaks again). Datagram records (-t) come on the
// packet ring.
package udp

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
	BRx      = kernel.UDPRx
	BTx      = kernel.UDPTx
	BOwner   = kernel.UDPOwner
	BOwnerTx = kernel.UDPOwnerTx
	BRxLink  = kernel.UDPRxLink
	BRxIP    = kernel.UDPRxIP
	BRxCopy  = kernel.UDPRxCopy
	BDrop    = kernel.UDPDrop
	BTxIP    = kernel.UDPTxIP
	BTxQueue = kernel.UDPTxQueue
	BTxXmit  = kernel.UDPTxXmit
)

// timeBoundaries: the host-wide -t hooks; nsBoundaries are attached in
// every network namespace (netfilter links).
var (
	timeBoundaries = []string{BRxLink, BRxCopy, BTxQueue, BTxXmit}
	nsBoundaries   = []string{BRxIP, BTxIP}
)

// FlowIdle: a flow without datagrams for this long gets its last record
// and leaves the kernel's table (the table holds flows, not history).
var FlowIdle = 60 * time.Second

// StaleAfter: a sent datagram's stamps waiting this long for a driver
// (dropped on the way, or fragmented: the skb the driver sends is another)
// are removed and counted (udp_tx_stale).
var StaleAfter = 10 * time.Second

// Concern implements engine.Concern, engine.Ticker and the engine's
// Finisher for -u.
type Concern struct {
	kernel.Live
	cfg *config.Config
	log *slog.Logger
	ns  *kernel.NetnsHooks
	// rxSk: kfree_skb names the socket of a drop (6.11+): rx_drops counted
	rxSk bool

	// pipeline goroutine (Tick, Finish)
	last    map[udpNwUdpKey]*snap
	gen     uint64
	ext     event.Ext
	keys    []udpNwUdpKey
	vals    []udpNwUdpFlow
	del     []udpNwUdpKey
	readErr uint64
	idle    uint64 // flows removed after FlowIdle
	txKeys  []uint64
	txVals  []udpTxPend

	stale atomic.Uint64 // sent datagrams that never reached a driver
}

// snap is a flow as the previous read saw it.
type snap struct {
	f   udpNwUdpFlow
	gen uint64
}

// New returns the -u concern (not loaded yet).
func New(cfg *config.Config) *Concern {
	return &Concern{cfg: cfg, last: map[udpNwUdpKey]*snap{}}
}

// Name implements engine.Concern.
func (c *Concern) Name() string { return "UDP flows (-u)" }

// Types implements engine.Concern.
func (c *Concern) Types() []event.Type { return []event.Type{event.UDP, event.UDPFlow} }

// LogNames implements engine.LogNamer.
func (c *Concern) LogNames() []string { return []string{output.UDPLogName} }

// PacketRingBytes implements engine.PacketRinger: datagram records (-t)
// go on the packet ring (~130 bytes each).
func (c *Concern) PacketRingBytes() uint32 {
	if c.cfg.Time {
		return 16 << 20
	}
	return 0
}

// anyAvailable: this kernel offers one of the boundary's candidates.
func anyAvailable(b string) bool {
	for _, cand := range kernel.Hooks[b].Candidates {
		if kernel.Available(cand) == nil {
			return true
		}
	}
	return false
}

func netfilterAvailable() error { return kernel.Available(kernel.Hooks[BRxIP].Candidates[0]) }

// Load loads the object with the connection object's shared maps; the
// flow table holds up to --max-conns flows (allocated per flow).
func (c *Concern) Load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	c.cfg = cfg
	var first error
	for _, cand := range kernel.Hooks[BRx].Candidates {
		if err := kernel.Available(cand); err == nil {
			first = nil
			break
		} else if first == nil {
			first = err
		}
	}
	if first != nil {
		return fmt.Errorf("udp: %w", first)
	}
	spec, err := loadUdp()
	if err != nil {
		return fmt.Errorf("udp: parse object: %w", err)
	}
	if err := spec.Variables["cfg_time"].Set(cfg.Time); err != nil {
		return fmt.Errorf("udp: set cfg_time: %w", err)
	}
	c.rxSk = false
	if kb, err := kernel.KernelBTF(); err == nil {
		c.rxSk = kernel.TracepointArgs(kb, "kfree_skb") >= 4
	}
	// owners from sendmsg/recvmsg where the tracepoints exist, else the
	// sender at egress
	if err := spec.Variables["cfg_owner_egress"].Set(!anyAvailable(BOwnerTx)); err != nil {
		return fmt.Errorf("udp: set cfg_owner_egress: %w", err)
	}
	if err := spec.Variables["cfg_rx_copy"].Set(anyAvailable(BRxCopy)); err != nil {
		return fmt.Errorf("udp: set cfg_rx_copy: %w", err)
	}
	if err := spec.Variables["cfg_rx_sk"].Set(c.rxSk); err != nil {
		return fmt.Errorf("udp: set cfg_rx_sk: %w", err)
	}
	// the task helpers cgroup_skb and netfilter programs may call here
	if err := kernel.SetTaskHelpers(spec, ebpf.CGroupSKB, "cfg_skb_pid", "cfg_skb_comm"); err != nil {
		return fmt.Errorf("udp: %w", err)
	}
	if err := kernel.SetTaskHelpers(spec, ebpf.Netfilter, "cfg_nf_pid", "cfg_nf_comm"); err != nil {
		return fmt.Errorf("udp: %w", err)
	}
	if !cfg.Time {
		// only -t uses it: no 1 MiB table for nothing
		spec.Maps["nw_udp_txpend"].MaxEntries = 1
	}
	if cfg.MaxConns > 0 {
		spec.Maps["nw_udp_flows"].MaxEntries = cfg.MaxConns
	}
	if !cfg.Time {
		for _, b := range append(append([]string{}, timeBoundaries...), nsBoundaries...) {
			for _, cand := range kernel.Hooks[b].Candidates {
				delete(spec.Programs, cand.Prog)
			}
		}
	} else if netfilterAvailable() != nil {
		kernel.DeleteNetfilter(spec)
	}
	coll, err := conn.LoadShared(spec, cfg, shared)
	if err != nil {
		return fmt.Errorf("udp: %w", err)
	}
	c.Coll = coll
	return nil
}

// Attach implements engine.Concern: the flow hooks (required), the owner
// of receiving sockets, then with -t the layer boundaries.
func (c *Concern) Attach(log *slog.Logger) error {
	c.log = log
	for _, name := range []string{BRx, BTx} {
		if _, err := c.Live.Attach(log, name); err != nil {
			c.Detach()
			return fmt.Errorf("udp: %w", err)
		}
	}
	if _, err := c.Live.Attach(log, BOwner); err != nil {
		log.Warn("owner of UDP sockets that only receive unknown (pid -)", "err", kernel.OneLine(err))
	}
	if _, err := c.Live.Attach(log, BOwnerTx); err != nil {
		if pid, _ := kernel.TaskHelpers(ebpf.CGroupSKB); pid {
			log.Warn("owner of sending UDP sockets taken at IP output (the current task there)", "err", kernel.OneLine(err))
		} else {
			log.Warn("owner of sending UDP sockets unknown (pid -)", "err", kernel.OneLine(err))
		}
	}
	if !c.rxSk {
		log.Warn("UDP receive drops not counted (rx_drops null): kfree_skb names no socket before Linux 6.11")
	} else if _, err := c.Live.Attach(log, BDrop); err != nil {
		log.Warn("UDP receive drops not counted (rx_drops null)", "err", kernel.OneLine(err))
		c.rxSk = false
	}
	if !c.cfg.Time {
		return nil
	}
	for _, name := range timeBoundaries {
		if _, err := c.Live.Attach(log, name); err != nil {
			log.Warn("UDP layer time boundary missing (reported as -)", "boundary", name, "err", kernel.OneLine(err))
		}
	}
	if err := netfilterAvailable(); err != nil {
		log.Warn("UDP IP-layer boundaries missing (mac_time and ip_time reported as -): they need netfilter BPF links (Linux 6.4+)", "err", kernel.OneLine(err))
	} else {
		var err error
		if c.ns, err = kernel.StartNetns(c.Coll, log, nsBoundaries); err != nil {
			log.Warn("UDP IP-layer boundaries missing (mac_time and ip_time reported as -)", "err", err.Error())
		}
	}
	return nil
}

// Detach implements engine.Concern.
func (c *Concern) Detach() {
	c.ns.Close()
	c.Live.Detach()
}

// Close implements engine.Concern.
func (c *Concern) Close() {
	c.Detach()
	c.Live.Close()
}

// Interval implements engine.Ticker.
func (c *Concern) Interval() time.Duration { return c.cfg.Interval }

// Tick implements engine.Ticker: one record per flow that changed since
// the previous read; flows idle for FlowIdle get their last record and
// leave the kernel's table. Runs on the pipeline goroutine.
func (c *Concern) Tick(now uint64, emit func(*event.Event)) {
	c.read(now, emit, false)
	c.gcTx(now)
}

// Finish is the last read, at exit (the hooks are detached): one record
// per flow still in the table, with what it did since the previous read.
func (c *Concern) Finish(now uint64, emit func(*event.Event)) {
	c.read(now, emit, true)
}

func (c *Concern) read(now uint64, emit func(*event.Event), final bool) {
	if c.Coll == nil {
		return
	}
	m := c.Coll.Maps["nw_udp_flows"]
	if m == nil {
		return
	}
	c.gen++
	c.del = c.del[:0]
	ev := event.Event{Ext: &c.ext}
	err := c.batch(m, func(k *udpNwUdpKey, f *udpNwUdpFlow) {
		prev := c.last[*k]
		if prev == nil || prev.f.FirstNs != f.FirstNs {
			// new, or a new flow under the key after the old one left
			prev = &snap{}
			c.last[*k] = prev
		}
		prev.gen = c.gen
		idle := !final && now > f.LastNs && now-f.LastNs >= uint64(FlowIdle)
		what := uint8(event.UDPInterval)
		switch {
		case final:
			what = event.UDPExit
		case idle:
			what = event.UDPIdle
			c.del = append(c.del, *k)
		}
		if Diff(k, f, &prev.f, now, what, c.rxSk, &ev) {
			c.owner(k.Cookie, &ev)
			emit(&ev)
		}
		prev.f = *f
	})
	if err != nil {
		c.readErr++
		return
	}
	for i := range c.del {
		if m.Delete(&c.del[i]) == nil {
			c.idle++
		}
		delete(c.last, c.del[i])
	}
	for k, s := range c.last {
		if s.gen != c.gen {
			delete(c.last, k)
		}
	}
}

// owner gives a record its socket's latest owner (the process whose
// sendmsg/recvmsg on it returned last: the flow's own copy is the first
// one it saw, and a socket's first datagram may come before any); the
// flow's copy stays when the socket's entry is gone (LRU). One lookup per
// record printed.
func (c *Concern) owner(cookie uint64, ev *event.Event) {
	m := c.Coll.Maps["nw_udp_owner"]
	if m == nil {
		return
	}
	var o udpNwOwner
	if m.Lookup(&cookie, &o) == nil && o.Pid != 0 {
		ev.Conn.SetOwner(o.Pid, o.Src, &o.Comm)
	}
}

func (c *Concern) batch(m *ebpf.Map, fn func(*udpNwUdpKey, *udpNwUdpFlow)) error {
	const n = 1024
	if c.keys == nil {
		c.keys, c.vals = make([]udpNwUdpKey, n), make([]udpNwUdpFlow, n)
	}
	var cur ebpf.MapBatchCursor
	for {
		got, err := m.BatchLookup(&cur, c.keys, c.vals, nil)
		for i := 0; i < got; i++ {
			fn(&c.keys[i], &c.vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Diff fills ev with flow f's record at now (prev: its values at the
// previous record, zero for a new flow). false when nothing changed and
// the record is periodic.
func Diff(k *udpNwUdpKey, f, prev *udpNwUdpFlow, now uint64, what uint8, hasDrops bool, ev *event.Event) bool {
	rx, rxb := f.RxDgrams-prev.RxDgrams, f.RxBytes-prev.RxBytes
	tx, txb := f.TxDgrams-prev.TxDgrams, f.TxBytes-prev.TxBytes
	drops := f.RxDrops - prev.RxDrops
	if what == event.UDPInterval && rx == 0 && tx == 0 && drops == 0 {
		return false
	}
	x := ev.Ext
	src := netip.AddrPortFrom(conn.Addr(k.Family, &f.Laddr), f.Lport)
	dst := netip.AddrPortFrom(conn.Addr(k.Family, &k.Raddr), k.Rport)
	*ev = event.Event{Type: event.UDPFlow, TS: now, Conn: event.Conn{Sock: f.Sk, Netns: f.Netns, Src: src, Dst: dst}, Ext: x}
	ev.Conn.SetOwner(f.Owner.Pid, f.Owner.Src, &f.Owner.Comm)
	x.UDP = event.UDPInfo{
		Src: src, Dst: dst,
		RxDgrams: rx, RxBytes: rxb, TxDgrams: tx, TxBytes: txb,
		RxDgramsTotal: f.RxDgrams, RxBytesTotal: f.RxBytes, TxDgramsTotal: f.TxDgrams, TxBytesTotal: f.TxBytes,
		RxDrops: drops, RxDropsTotal: f.RxDrops, HasDrops: hasDrops,
		FirstNs: f.FirstNs, LastNs: f.LastNs, Why: what,
	}
	return true
}

// gcTx removes sent-datagram stamps that never reached a driver.
func (c *Concern) gcTx(now uint64) {
	if !c.cfg.Time {
		return
	}
	m := c.Coll.Maps["nw_udp_txpend"]
	if m == nil {
		return
	}
	var k uint64
	var v udpTxPend
	c.txKeys = c.txKeys[:0]
	it := m.Iterate()
	for it.Next(&k, &v) {
		if t := v.En.T[1]; t != 0 && now > t && now-t > uint64(StaleAfter) {
			c.txKeys = append(c.txKeys, k)
		}
	}
	for i := range c.txKeys {
		if m.Delete(&c.txKeys[i]) == nil {
			c.stale.Add(1)
		}
	}
}

// Counters implements engine.CounterSource.
func (c *Concern) Counters() map[string]uint64 {
	out := map[string]uint64{"udp_flow_table_full": c.stat(event.StatUDPFlowFull), "udp_read_errors": c.readErr,
		"udp_flows_idle_removed": c.idle}
	if c.cfg.Time {
		out["udp_rx_unread"] = c.stat(event.StatUDPRxUnread)
		out["udp_tx_table_full"] = c.stat(event.StatUDPTxFull)
		out["udp_tx_stale"] = c.stale.Load()
	}
	return out
}

func (c *Concern) stat(i uint32) uint64 {
	if c.Coll == nil || c.Coll.Maps["nw_stats"] == nil {
		return 0
	}
	var per []uint64
	if c.Coll.Maps["nw_stats"].Lookup(i, &per) != nil {
		return 0
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n
}

// RecordSize is the size of an NW_EV_UDP record.
const RecordSize = int(unsafe.Sizeof(udpNwUdpEvent{}))

// Decode implements engine.Concern (reader goroutine; no allocation).
func (c *Concern) Decode(raw []byte, ev *event.Event) bool {
	if !Decode(raw, ev) {
		return false
	}
	c.ns.Seen(ev.Conn.Netns)
	return true
}

// Decode fills ev from an NW_EV_UDP record (one datagram, -t).
func Decode(raw []byte, ev *event.Event) bool {
	if len(raw) < RecordSize || event.Type(raw[0]) != event.UDP || ev.Ext == nil {
		return false
	}
	r := event.Record[udpNwUdpEvent](raw)
	x := ev.Ext
	src := netip.AddrPortFrom(conn.Addr(r.Family, &r.Laddr), r.Lport)
	dst := netip.AddrPortFrom(conn.Addr(r.Family, &r.Raddr), r.Rport)
	*ev = event.Event{Type: event.UDP, TS: r.Hdr.Ts, Conn: event.Conn{Sock: r.Hdr.Sk, Netns: r.Hdr.Netns, Src: src, Dst: dst}, Ext: x}
	ev.Conn.SetOwner(r.Owner.Pid, r.Owner.Src, &r.Owner.Comm)
	u := &x.UDP
	*u = event.UDPInfo{Src: src, Dst: dst, Rx: r.Rx != 0, Len: r.Len, Dgrams: r.Dgrams}
	var missing uint8
	u.MacNs, u.IPNs, u.UDPNs, missing = event.LayerTimes(&r.T, u.Rx)
	u.Missing |= missing
	return true
}
