// Package rst is the --rst concern (alias --rst_counters): every TCP reset
// the kernel sends or receives (v4/v6, every network namespace), with its
// direction, the state the connection was in, and for a reset sent the
// kernel's reason (Linux 6.10+: enum sk_rst_reason, named from the running
// kernel's BTF, so reasons added later are named without a code change).
// Totals go to the exit stats (rst_sent, rst_received). See rst.bpf.c for
// what is seen and its limits.
package rst

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/output"
)

// Boundaries of this concern (rows of the hook table, internal/kernel/table.go).
const (
	BoundarySend  = kernel.RstSend
	BoundaryRecv  = kernel.RstRecv
	BoundaryClose = kernel.RstClose
)

// Record flags (NW_RST_* in rst.bpf.c).
const (
	flagRx       = 1
	flagReason   = 2
	flagAborted  = 4
	flagNoSocket = 8
)

const reasonPrefix = "SK_RST_REASON_"

// maxCodes bounds the reason table (the kernel's enum has ~25).
const maxCodes = 1024

// Reasons names enum sk_rst_reason codes: the kernel's names without the
// SK_RST_REASON_ prefix, by code.
type Reasons []string

// ReasonsFromBTF reads enum sk_rst_reason from spec (nil, nil when the
// kernel has none: before 6.10).
func ReasonsFromBTF(spec *btf.Spec) (Reasons, error) {
	var en *btf.Enum
	if err := spec.TypeByName("sk_rst_reason", &en); err != nil {
		return nil, nil
	}
	return reasonsFromEnum(en), nil
}

func reasonsFromEnum(en *btf.Enum) Reasons { return kernel.EnumNames(en, reasonPrefix, maxCodes) }

// NameOf names code ("reason<code>" when the table lacks it: allocates only
// then).
func (r Reasons) NameOf(code uint32) string {
	if int(code) < len(r) && r[code] != "" {
		return r[code]
	}
	return "reason" + strconv.FormatUint(uint64(code), 10)
}

// Concern implements engine.Concern for --rst.
type Concern struct {
	kernel.Live
	reasons   Reasons
	hasReason bool // tcp_send_reset has the reason argument (6.10+)
	counts    *ebpf.Map
}

// New returns the --rst concern (not loaded yet).
func New(cfg *config.Config) *Concern { return &Concern{} }

// Name implements engine.Concern.
func (c *Concern) Name() string { return "TCP resets (--rst)" }

// Types implements engine.Concern.
func (c *Concern) Types() []event.Type { return []event.Type{event.Rst} }

// LogNames implements engine.LogNamer.
func (c *Concern) LogNames() []string { return []string{output.RstLogName} }

// Load loads the object, reusing the connection object's maps. Whether
// tcp_send_reset carries the reason, and its names, come from the running
// kernel's BTF.
func (c *Concern) Load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	kspec, err := kernel.KernelBTF()
	if err != nil {
		return err
	}
	// sk, skb before 6.10; sk, skb, reason since
	c.hasReason = kernel.TracepointArgs(kspec, "tcp_send_reset") >= 3
	if c.hasReason {
		if c.reasons, err = ReasonsFromBTF(kspec); err != nil {
			return err
		}
	}
	spec, err := loadRst()
	if err != nil {
		return fmt.Errorf("rst: parse object: %w", err)
	}
	if err := spec.Variables["cfg_rst_reason"].Set(c.hasReason); err != nil {
		return fmt.Errorf("rst: %w", err)
	}
	coll, err := conn.LoadShared(spec, cfg, shared)
	if err != nil {
		return fmt.Errorf("rst: %w", err)
	}
	c.Coll = coll
	c.counts = coll.Maps["nw_rst_count"]
	return nil
}

// Attach attaches the transitions to CLOSE first (so an active reset sent
// right after one finds the state it aborted), then the two reset hooks.
// Both reset hooks are needed; without the CLOSE hook an active reset says
// CLOSE.
func (c *Concern) Attach(log *slog.Logger) error {
	if _, err := c.Live.Attach(log, BoundaryClose); err != nil {
		log.Warn("active resets will show state CLOSE, not the state they aborted", "hook", BoundaryClose, "err", err)
	}
	for _, b := range []string{BoundarySend, BoundaryRecv} {
		if _, err := c.Live.Attach(log, b); err != nil {
			c.Live.Detach()
			return fmt.Errorf("rst: %w", err)
		}
	}
	if !c.hasReason {
		log.Info("resets sent carry no reason on this kernel (tcp_send_reset has it from Linux 6.10)")
	}
	return nil
}

// Counters implements engine.CounterSource: resets sent and received
// (after -s/-d), counted in the kernel whatever the ring buffer took.
func (c *Concern) Counters() map[string]uint64 {
	out := map[string]uint64{"rst_sent": 0, "rst_received": 0}
	if c.counts == nil {
		return out
	}
	var per []uint64
	for i, k := range []string{"rst_sent", "rst_received"} {
		if err := c.counts.Lookup(uint32(i), &per); err != nil {
			continue
		}
		for _, v := range per {
			out[k] += v
		}
	}
	return out
}

// RecordSize is the size of an NW_EV_RST ring record.
const RecordSize = int(unsafe.Sizeof(rstNwRstEvent{}))

// Decode implements engine.Concern: it fills ev from an NW_EV_RST record
// (false for anything else). No allocation for a reason the kernel's enum
// names.
func (c *Concern) Decode(raw []byte, ev *event.Event) bool {
	if !Decode(raw, ev) {
		return false
	}
	if ev.Ext.Rst.HasReason {
		ev.Ext.Rst.Name = c.reasons.NameOf(ev.Ext.Rst.Reason)
	}
	return true
}

// Decode is the decoder behind Concern.Decode, without reason names.
func Decode(raw []byte, ev *event.Event) bool {
	if len(raw) < RecordSize || event.Type(raw[0]) != event.Rst {
		return false
	}
	r := event.Record[rstNwRstEvent](raw)
	x := ev.Ext
	if x == nil {
		return false
	}
	*ev = event.Event{
		Type: event.Rst,
		TS:   r.Hdr.Ts,
		Conn: event.Conn{Sock: r.Hdr.Sk, Netns: r.Hdr.Netns},
		Ext:  x,
	}
	x.Rst = event.RstInfo{
		Rx:        r.Flags&flagRx != 0,
		State:     r.State,
		Aborted:   r.Flags&flagAborted != 0,
		NoSocket:  r.Flags&flagNoSocket != 0,
		Reason:    r.Reason,
		HasReason: r.Flags&flagReason != 0,
		EstLo:     r.EstLo,
		Src:       netip.AddrPortFrom(conn.Addr(r.Family, &r.Saddr), r.Sport),
		Dst:       netip.AddrPortFrom(conn.Addr(r.Family, &r.Daddr), r.Dport),
	}
	if r.Owner.Pid != 0 {
		ev.Conn.SetOwner(r.Owner.Pid, r.Owner.Src, &r.Owner.Comm)
	}
	return true
}
