// Package drops is the -e concern: TCP segments the kernel rejects (bad
// checksum, out-of-window sequence, and every other TCP drop reason the
// kernel reports), attributed to tracked connections.
//
// Which drops are reported. kfree_skb fires for every dropped skb on the
// host; BPF keeps one when (1) its reason is marked in nw_drop_keep, (2)
// its headers are TCP, (3) its socket (rx_sk, else skb->sk) is a tracked
// connection, or there is no socket at all (then sk = 0 and the pipeline
// attributes it by addresses), and (4) -s/-d match. The reasons marked are
// built here from the kernel's BTF enum skb_drop_reason:
//   - every SKB_DROP_REASON_TCP_* reason, except the three that discard
//     data already received (TCP_OLD_DATA: a spurious retransmission;
//     TCP_OFOMERGE, TCP_OFO_DROP: out-of-order data superseded by the real
//     bytes). Those segments were accepted once; they are duplicates, not
//     rejected segments.
//   - the generic reasons TCP's receive path uses for a segment of a
//     connection: SOCKET_FILTER, SOCKET_BACKLOG, SOCKET_RCVBUFF, PROTO_MEM,
//     PKT_TOO_SMALL, XFRM_POLICY, SECURITY_HOOK.
//
// Not marked: NOT_SPECIFIED (any untyped kfree_skb), QUEUE_PURGE and
// SOCKET_CLOSE (queues freed when a socket goes away), NO_SOCKET (by
// definition no connection), and link/IP/netfilter/qdisc reasons (not a
// decision of TCP).
//
// Names: TCP_OLD_SEQUENCE, TCP_INVALID_SEQUENCE, TCP_INVALID_END_SEQUENCE
// and TCP_OVERWINDOW are "Invalid SEQ"; TCP_CSUM (and the tcp_bad_csum
// tracepoint) is "Invalid checksum"; every other reason is its kernel name
// without the SKB_DROP_REASON_ prefix.
package drops

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
)

// Boundaries of this concern (rows of the hook table, internal/kernel/table.go).
const (
	BoundaryKfree     = kernel.DropKfree
	BoundaryCsum      = kernel.DropCsum
	BoundaryCsumEntry = kernel.DropCsumEntry
	BoundaryRxSock    = kernel.DropRxSock
)

// Names of the two reasons every user knows.
const (
	InvalidSeq  = "Invalid SEQ"
	InvalidCsum = "Invalid checksum"
)

const reasonPrefix = "SKB_DROP_REASON_"

var invalidSeq = map[string]bool{
	"TCP_OLD_SEQUENCE": true, "TCP_INVALID_SEQUENCE": true,
	"TCP_INVALID_END_SEQUENCE": true, "TCP_OVERWINDOW": true,
}

var duplicates = map[string]bool{"TCP_OLD_DATA": true, "TCP_OFOMERGE": true, "TCP_OFO_DROP": true}

var genericTCP = map[string]bool{
	"SOCKET_FILTER": true, "SOCKET_BACKLOG": true, "SOCKET_RCVBUFF": true, "PROTO_MEM": true,
	"PKT_TOO_SMALL": true, "XFRM_POLICY": true, "SECURITY_HOOK": true,
}

// Reasons is the table of drop reasons, indexed by the kernel's code.
type Reasons struct {
	Name []string // people's name ("" for codes the kernel does not define)
	// Kernel is the kernel's own name without SKB_DROP_REASON_
	// (TCP_CSUM, ...; "" where undefined), as -k reports it.
	Kernel []string
	Keep   []bool // reported by -e
	Csum   uint32 // code of TCP_CSUM (0 if unknown)
}

// maxCodes bounds the table: core reasons are small numbers; subsystem
// reasons (SKB_DROP_REASON_SUBSYS_MASK bits) are never reported.
const maxCodes = 1 << 12

// ReasonsFromBTF builds the table from the enum skb_drop_reason in spec.
func ReasonsFromBTF(spec *btf.Spec) (*Reasons, error) {
	var en *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &en); err != nil {
		return nil, fmt.Errorf("kernel BTF has no enum skb_drop_reason: %w", err)
	}
	return reasonsFromEnum(en)
}

func reasonsFromEnum(en *btf.Enum) (*Reasons, error) {
	kernelNames := kernel.EnumNames(en, reasonPrefix, maxCodes)
	n := len(kernelNames)
	r := &Reasons{Name: make([]string, n), Kernel: kernelNames, Keep: make([]bool, n)}
	for code, name := range kernelNames {
		if name == "" {
			continue
		}
		switch {
		case name == "TCP_CSUM":
			r.Name[code] = InvalidCsum
			r.Csum = uint32(code)
		case invalidSeq[name]:
			r.Name[code] = InvalidSeq
		default:
			r.Name[code] = name
		}
		r.Keep[code] = (strings.HasPrefix(name, "TCP_") && !duplicates[name]) || genericTCP[name]
	}
	if r.Csum == 0 {
		return nil, errors.New("kernel BTF: enum skb_drop_reason has no TCP_CSUM")
	}
	return r, nil
}

// NameOf returns the name of code ("" if unknown). No allocation.
func (r *Reasons) NameOf(code uint32) string {
	if int(code) < len(r.Name) {
		return r.Name[code]
	}
	return ""
}

// KfreeArgs returns the kernel's BTF and the number of arguments of its
// kfree_skb tracepoint: 2 before 5.17, 3 with the drop reason, 4 with
// rx_sk (6.11+).
func KfreeArgs() (*btf.Spec, int, error) {
	kspec, err := kernel.KernelBTF()
	if err != nil {
		return nil, 0, err
	}
	return kspec, kernel.TracepointArgs(kspec, "kfree_skb"), nil
}

// noRxSk (tests): load as on a kernel whose kfree_skb has no rx_sk.
var noRxSk bool

// Concern implements engine.Concern for -e.
type Concern struct {
	kernel.Live
	reasons  *Reasons
	rxSk     bool // kfree_skb has rx_sk
	noReason bool // kfree_skb has no drop reason (before 5.17)
}

// csumOnly is the reason table of a kernel without enum skb_drop_reason
// (before 5.17), where only the tcp_bad_csum tracepoint reports: code 0.
func csumOnly() *Reasons {
	return &Reasons{Name: []string{InvalidCsum}, Keep: []bool{false}, Csum: 0}
}

// New returns the -e concern (not loaded yet).
func New(cfg *config.Config) *Concern { return &Concern{} }

// Name implements engine.Concern.
func (c *Concern) Name() string { return "TCP errors (-e)" }

// Types implements engine.Concern.
func (c *Concern) Types() []event.Type { return []event.Type{event.Error} }

// Load builds the reason table and loads the object, reusing the
// connection object's maps.
func (c *Concern) Load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	kspec, nargs, err := KfreeArgs()
	if err != nil {
		return err
	}
	if nargs < 3 {
		// No drop reason in this kernel's kfree_skb (before 5.17): only
		// the checksum tracepoint can report. Without it, one line.
		if !csumHookAvailable() {
			return errors.New("rejected segments need the kfree_skb drop reason (Linux 5.17+), the tcp/tcp_bad_csum tracepoint (5.14+) or kprobes; this kernel has none of them")
		}
		c.reasons = csumOnly()
	} else if c.reasons, err = ReasonsFromBTF(kspec); err != nil {
		return err
	}
	c.rxSk = nargs >= 4 && !noRxSk
	spec, err := loadDrops()
	if err != nil {
		return fmt.Errorf("drops: parse object: %w", err)
	}
	c.noReason = nargs < 3
	if c.noReason {
		delete(spec.Programs, "nw_kfree_btf")
		delete(spec.Programs, "nw_kfree_raw")
	}
	if c.rxSk {
		delete(spec.Programs, "nw_drop_rxsk_btf")
		delete(spec.Programs, "nw_drop_rxsk_raw")
	}
	if err := spec.Variables["cfg_kfree_rx_sk"].Set(c.rxSk); err != nil {
		return fmt.Errorf("drops: %w", err)
	}
	if err := spec.Variables["cfg_csum_reason"].Set(c.reasons.Csum); err != nil {
		return fmt.Errorf("drops: %w", err)
	}
	spec.Maps["nw_drop_keep"].MaxEntries = uint32(max(len(c.reasons.Keep), 1))
	coll, err := conn.LoadShared(spec, cfg, shared)
	if err != nil {
		return fmt.Errorf("drops: %w", err)
	}
	keep := coll.Maps["nw_drop_keep"]
	for code, k := range c.reasons.Keep {
		if !k {
			continue
		}
		if err := keep.Put(uint32(code), uint8(1)); err != nil {
			coll.Close()
			return fmt.Errorf("drops: fill reason table: %w", err)
		}
	}
	c.Coll = coll
	return nil
}

// Attach attaches kfree_skb first; once it is live the checksum hook stays
// silent (kfree_skb reports TCP_CSUM with the socket), so a bad segment
// yields one record. Without kfree_skb, the checksum hook reports alone.
func (c *Concern) Attach(log *slog.Logger) error {
	_, kerr := c.Live.Attach(log, BoundaryKfree)
	if kerr == nil && !c.rxSk {
		// kfree_skb without rx_sk: a drop after TCP's socket lookup is
		// named by the socket tcp_probe saw it reach.
		if _, err := c.Live.Attach(log, BoundaryRxSock); err != nil {
			log.Warn("TCP errors after the socket lookup are attributed by addresses only", "hook", BoundaryRxSock, "err", err)
		}
	}
	if kerr == nil {
		if err := c.Coll.Variables["nw_kfree_live"].Set(uint32(1)); err != nil {
			// Cannot tell the checksum hook to stay silent: it must not
			// run, or bad segments would be reported twice.
			log.Debug("checksum hook not used", "err", err)
			return nil
		}
	} else if c.noReason {
		log.Warn("TCP error tracing degraded: only bad checksums are reported (drop reasons in kfree_skb need Linux 5.17+)")
	} else {
		log.Warn("TCP error tracing degraded: only bad checksums are reported", "hook", BoundaryKfree, "err", kerr)
	}
	a, cerr := c.Live.Attach(log, BoundaryCsum)
	if cerr == nil && a.Cand.Kind == kernel.Kretprobe {
		// the kretprobe is live: now the entry that keeps the skb
		if _, err := c.Live.Attach(log, BoundaryCsumEntry); err != nil {
			cerr = err
		}
	}
	if cerr != nil && kerr != nil {
		return fmt.Errorf("drops: no hook attached: %v; %v", kerr, cerr)
	}
	return nil
}

// csumHookAvailable: does the tcp_bad_csum tracepoint exist here?
func csumHookAvailable() bool {
	for _, c := range kernel.Hooks[BoundaryCsum].Candidates {
		if kernel.Available(c) == nil {
			return true
		}
	}
	return false
}

// RecordSize is the size of an NW_EV_ERROR ring record.
const RecordSize = int(unsafe.Sizeof(dropsNwErrEvent{}))

// Decode fills ev from an NW_EV_ERROR record; false for other records. It
// does not allocate: the reason name comes from the table built at Load.
func (c *Concern) Decode(raw []byte, ev *event.Event) bool {
	r := event.Record[dropsNwErrEvent](raw)
	if r == nil || event.Type(r.Hdr.Type) != event.Error {
		return false
	}
	*ev = event.Event{
		Type: event.Error,
		TS:   r.Hdr.Ts,
		Conn: event.Conn{Sock: r.Hdr.Sk, Netns: r.Hdr.Netns},
		Err: event.ErrorInfo{
			Seq:    r.Seq,
			Ack:    r.Ack,
			Reason: r.Reason,
			Src:    netip.AddrPortFrom(conn.Addr(r.Family, &r.Saddr), r.Sport),
			Dst:    netip.AddrPortFrom(conn.Addr(r.Family, &r.Daddr), r.Dport),
			Rx:     r.Rx != 0,
		},
	}
	if c.reasons != nil {
		ev.Err.Name = c.reasons.NameOf(r.Reason)
	}
	return true
}
