// Package dropreason is the -k concern (with -F and -A): every packet the
// kernel frees as dropped, any protocol, with the kernel's drop reason
// (enum skb_drop_reason, named from BTF), its network namespace, addresses,
// ports or ICMP type/code, the socket and its owner where one is known, and
// the kernel location that dropped it (symbolised from /proc/kallsyms:
// function+offset); with -A the kernel stack. See dropreason.bpf.c for what
// the kernel side does and what it leaves out.
//
// internal/drops (-e) is the TCP-only view of the same tracepoint, for
// tracked connections; the two attach their own programs and can run
// together.
package dropreason

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/drops"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/kernel/ksym"
	"github.com/netwatcher/netwatcher/internal/output"
)

// Boundary of this concern (a row of the hook table, internal/kernel/table.go).
const Boundary = kernel.DropReason

// ListenOverflow is the kernel's name of an accept-queue overflow.
const ListenOverflow = "TCP_LISTEN_OVERFLOW"

// Concern implements engine.Concern for -k.
type Concern struct {
	kernel.Live
	reasons *drops.Reasons
	syms    *ksym.Table
	stats   *ebpf.Map // the shared nw_stats (ring-full counts)
	stack   bool
}

// New returns the -k concern (not loaded yet).
func New(cfg *config.Config) *Concern { return &Concern{stack: cfg.Stack} }

// Name implements engine.Concern.
func (c *Concern) Name() string { return "packet drops (-k)" }

// Types implements engine.Concern.
func (c *Concern) Types() []event.Type { return []event.Type{event.Drop} }

// LogNames implements engine.LogNamer.
func (c *Concern) LogNames() []string { return []string{output.DropLogName} }

// Symbols is the kernel symbol table loaded at start (nil if kallsyms was
// unreadable: locations are then printed as addresses).
func (c *Concern) Symbols() *ksym.Table { return c.syms }

// Load reads the reason names from BTF and the kernel symbols, and loads
// the object, reusing the connection object's maps.
func (c *Concern) Load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	kspec, nargs, err := drops.KfreeArgs()
	if err != nil {
		return err
	}
	if nargs < 3 {
		return errors.New("drop reasons need Linux 5.17+ (kfree_skb has no reason argument here)")
	}
	if c.reasons, err = drops.ReasonsFromBTF(kspec); err != nil {
		return err
	}
	first := -1
	for code, name := range c.reasons.Kernel {
		if name == "NOT_SPECIFIED" {
			first = code
		}
	}
	if first < 0 {
		return errors.New("kernel BTF: enum skb_drop_reason has no NOT_SPECIFIED")
	}
	if c.syms, err = ksym.Load(); err != nil {
		slog.Warn("drop locations shown as addresses", "err", err)
	}
	spec, err := loadDropreason()
	if err != nil {
		return fmt.Errorf("dropreason: parse object: %w", err)
	}
	n := uint32(len(c.reasons.Kernel))
	for name, v := range map[string]any{
		"cfg_first_drop": uint32(first),
		"cfg_nreasons":   n,
		"cfg_rx_sk":      nargs >= 4,
		"cfg_stack":      c.stack,
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return fmt.Errorf("dropreason: %s: %w", name, err)
		}
	}
	spec.Maps["nw_dropr_count"].MaxEntries = n + 1
	coll, err := conn.LoadShared(spec, cfg, shared)
	if err != nil {
		return fmt.Errorf("dropreason: %w", err)
	}
	c.Coll = coll
	c.stats = shared["nw_stats"]
	return nil
}

// Attach implements engine.Concern.
func (c *Concern) Attach(log *slog.Logger) error {
	if _, err := c.Live.Attach(log, Boundary); err != nil {
		return fmt.Errorf("dropreason: %w", err)
	}
	return nil
}

// RecordSize is the size of an NW_EV_DROP ring record with -A; without it
// the record ends before the stack (HeadSize).
const (
	RecordSize = int(unsafe.Sizeof(dropreasonNwDropEvent{}))
	HeadSize   = int(unsafe.Offsetof(dropreasonNwDropEvent{}.Stack))
)

// Decode implements engine.Concern: it fills ev from an NW_EV_DROP record
// (false for anything else). No allocation: the reason name is the table's.
func (c *Concern) Decode(raw []byte, ev *event.Event) bool {
	if !Decode(raw, ev) {
		return false
	}
	ev.Ext.Drop.Name = c.NameOf(ev.Ext.Drop.Reason)
	return true
}

// NameOf is the kernel's name of reason code ("" if unknown).
func (c *Concern) NameOf(code uint32) string {
	if c.reasons != nil && int(code) < len(c.reasons.Kernel) {
		return c.reasons.Kernel[code]
	}
	return ""
}

// Decode is the decoder behind Concern.Decode (without the reason name).
func Decode(raw []byte, ev *event.Event) bool {
	if len(raw) < HeadSize || event.Type(raw[0]) != event.Drop {
		return false
	}
	var r *dropreasonNwDropEvent
	var head dropreasonNwDropEvent
	if len(raw) >= RecordSize {
		r = (*dropreasonNwDropEvent)(unsafe.Pointer(&raw[0]))
	} else {
		// without -A the record ends before the stack: never view it
		// through the whole type (it would straddle the ring's end)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&head)), HeadSize), raw)
		r = &head
	}
	x := ev.Ext
	if x == nil {
		return false
	}
	*ev = event.Event{
		Type: event.Drop,
		TS:   r.Hdr.Ts,
		Conn: event.Conn{Sock: r.Hdr.Sk, Netns: r.Hdr.Netns},
		Ext:  x,
	}
	d := &x.Drop
	*d = event.DropInfo{}
	d.Reason, d.Location, d.Family, d.L3, d.Proto = r.Reason, r.Location, r.Family, r.L3, r.Proto
	d.ICMPType, d.ICMPCode, d.FromSock, d.SkState, d.EstLo = r.IcmpType, r.IcmpCode, r.FromSk != 0, r.SkState, r.EstLo
	if r.Family != 0 {
		d.Src = netip.AddrPortFrom(conn.Addr(r.Family, &r.Saddr), r.Sport)
		d.Dst = netip.AddrPortFrom(conn.Addr(r.Family, &r.Daddr), r.Dport)
	}
	if len(raw) >= RecordSize {
		d.NStack = min(r.Nstack, event.DropStackMax)
		d.Stack = r.Stack
	}
	if r.Owner.Pid != 0 {
		ev.Conn.SetOwner(r.Owner.Pid, r.Owner.Src, &r.Owner.Comm)
	}
	return true
}

// Counters implements engine.CounterSource: drops by reason (every drop
// the filters kept, also those whose record the full ring refused) and the
// records lost to a full ring.
func (c *Concern) Counters() map[string]uint64 {
	out := map[string]uint64{}
	if c.Coll == nil {
		return out
	}
	m := c.Coll.Maps["nw_dropr_count"]
	var per []uint64
	for i := uint32(0); i < m.MaxEntries(); i++ {
		if err := m.Lookup(i, &per); err != nil {
			continue
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		if n == 0 {
			continue
		}
		name := c.NameOf(i)
		if name == "" {
			name = "other"
		}
		out["drops_"+name] += n
	}
	if c.stats != nil {
		if err := c.stats.Lookup(uint32(event.StatRingFull+int(event.Drop)), &per); err == nil {
			var n uint64
			for _, v := range per {
				n += v
			}
			out["drop_records_lost"] = n
		}
	}
	return out
}
