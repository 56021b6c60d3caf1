// Package retrans is the -r concern: retransmitted segments and
// fast-retransmit / RTO episodes of tracked connections.
//
// BPF keeps the per-connection counters (fast_retrans, timeout_retrans,
// retrans_segs) in the shared connection table, where the connection
// sampler and the close record read them; the ring carries one
// NW_EV_RETRANS record per retransmitted skb and one NW_EV_CONG record per
// episode (an entry into TCP_CA_Recovery or TCP_CA_Loss).
//
// What the hook did not see, the kernel still counts in each socket's
// total_retrans: the connection object compares the two when a tracked
// connection closes and counts the difference (retrans_unseen in the exit
// stats, reported by Counters; conn.bpf.c "What -r did not see").
package retrans

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
)

// Boundaries of this concern (rows of the hook table, internal/kernel/table.go).
const (
	BoundarySkb  = kernel.RtxSkb
	BoundaryCong = kernel.RtxCong
)

// CongFromRtxEnv names the environment variable that, set to 1, makes the
// kernel's fallback for missing tcp_cong_state_set count episodes even
// where the tracepoint exists (tests).
const CongFromRtxEnv = "NW_CONG_FROM_RTX"

// SkipEnv names the environment variable that, set to N > 0, makes the
// retransmit hook ignore one in N retransmissions of tracked connections
// (per CPU), as if it had not run; the exit stats then have
// retrans_test_skipped, their segments (tests of retrans_unseen).
const SkipEnv = "NW_RTX_SKIP"

// Concern implements engine.Concern for -r.
type Concern struct {
	kernel.Live
	congFromRtx bool   // no tcp_cong_state_set: episodes counted at retransmit time
	skip        uint32 // $NW_RTX_SKIP
}

// New returns the -r concern (not loaded yet).
func New(cfg *config.Config) *Concern { return &Concern{} }

// Name implements engine.Concern.
func (c *Concern) Name() string { return "retransmits (-r)" }

// Types implements engine.Concern.
func (c *Concern) Types() []event.Type { return []event.Type{event.Retrans, event.Cong} }

// Load loads the object, reusing the connection object's maps.
func (c *Concern) Load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	spec, err := loadRetrans()
	if err != nil {
		return fmt.Errorf("retrans: parse object: %w", err)
	}
	kspec, err := kernel.KernelBTF()
	if err != nil {
		return err
	}
	if err := spec.Variables["cfg_rtx_err"].Set(kernel.TracepointArgs(kspec, "tcp_retransmit_skb") >= 3); err != nil {
		return fmt.Errorf("retrans: %w", err)
	}
	// No tcp_cong_state_set (before 5.15): episodes from retransmissions.
	// $NW_CONG_FROM_RTX=1 forces it (tests of the fallback on new kernels).
	c.congFromRtx = kernel.TracepointArgs(kspec, "tcp_cong_state_set") == 0 || os.Getenv(CongFromRtxEnv) == "1"
	if err := spec.Variables["cfg_cong_from_rtx"].Set(c.congFromRtx); err != nil {
		return fmt.Errorf("retrans: %w", err)
	}
	if !c.congFromRtx {
		spec.Maps["nw_rtx_episode"].MaxEntries = 1
	}
	if v := os.Getenv(SkipEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return fmt.Errorf("retrans: %s=%q: want a count > 0", SkipEnv, v)
		}
		c.skip = uint32(n)
		slog.Warn("test knob: the retransmit hook ignores one retransmission in N", "env", SkipEnv, "N", n)
	}
	if err := spec.Variables["cfg_rtx_skip"].Set(c.skip); err != nil {
		return fmt.Errorf("retrans: %w", err)
	}
	coll, err := conn.LoadShared(spec, cfg, shared)
	if err != nil {
		return fmt.Errorf("retrans: %w", err)
	}
	c.Coll = coll
	return nil
}

// Attach attaches both boundaries. Either one alone is still useful (the
// counters of the other stay 0), so only losing both is an error.
func (c *Concern) Attach(log *slog.Logger) error {
	var errs []error
	names := []string{BoundarySkb, BoundaryCong}
	if c.congFromRtx {
		// the kernel has no tcp_cong_state_set: the skb hook counts the
		// episodes (from icsk_ca_state and high_seq at retransmit time)
		log.Debug("retransmit episodes taken from retransmissions: this kernel has no tcp_cong_state_set tracepoint")
		names = names[:1]
	}
	for _, name := range names {
		if _, err := c.Live.Attach(log, name); err != nil {
			log.Warn("retransmit tracing degraded", "hook", name, "err", err)
			errs = append(errs, err)
		}
	}
	if len(c.Attached()) == 0 {
		return fmt.Errorf("retrans: no hook attached: %v", errs)
	}
	return nil
}

// Counters implements engine.CounterSource: retrans_unseen, the segments
// closed connections retransmitted (their kernel's count) that the hook
// did not see (counted by the connection object, NW_STAT_RETRANS_UNSEEN);
// with $NW_RTX_SKIP, retrans_test_skipped, the segments it ignored.
func (c *Concern) Counters() map[string]uint64 {
	out := map[string]uint64{"retrans_unseen": 0}
	if c.skip != 0 {
		out["retrans_test_skipped"] = 0
	}
	if c.Coll == nil {
		return out
	}
	out["retrans_unseen"] = sumPerCPU(c.Coll.Maps["nw_stats"], event.StatRetransUnseen)
	if c.skip != 0 {
		out["retrans_test_skipped"] = sumPerCPU(c.Coll.Maps["nw_rtx_skip"], 1)
	}
	return out
}

// sumPerCPU is the sum over CPUs of key k of the per-CPU array m (0 if
// it cannot be read).
func sumPerCPU(m *ebpf.Map, k uint32) uint64 {
	var per []uint64
	if m == nil || m.Lookup(k, &per) != nil {
		return 0
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n
}

// RecordSize is the size of a ring record of this concern.
const RecordSize = int(unsafe.Sizeof(retransNwRetransEvent{}))

// Decode fills ev from an NW_EV_RETRANS or NW_EV_CONG record; it reports
// false for other records and for short ones. It does not allocate.
func (c *Concern) Decode(raw []byte, ev *event.Event) bool { return Decode(raw, ev) }

// Decode is the stateless decoder behind Concern.Decode.
func Decode(raw []byte, ev *event.Event) bool {
	r := event.Record[retransNwRetransEvent](raw)
	if r == nil {
		return false
	}
	t := event.Type(r.Hdr.Type)
	if t != event.Retrans && t != event.Cong {
		return false
	}
	*ev = event.Event{
		Type: t,
		TS:   r.Hdr.Ts,
		// The owner is the kernel entry's: a connection whose SYN is
		// retransmitted has not been reported open yet, so no user-space
		// table knows it.
		Conn: event.Conn{Sock: r.Hdr.Sk, Netns: r.Hdr.Netns, Pid: r.Owner.Pid, OwnerSrc: event.OwnerSrc(r.Owner.Src)},
		Retrans: event.RetransInfo{Seq: r.Seq, CaState: r.CaState, OldState: r.OldState, Segs: r.Segs,
			PreEst: r.PreEst != 0},
	}
	ev.Conn.SetOwner(r.Owner.Pid, r.Owner.Src, &r.Owner.Comm)
	// BPF takes the tuple from the socket when its entry has none yet (not
	// established), so a record always has one; the check only keeps a
	// malformed record from decoding as an address.
	if r.Family == unix.AF_INET || r.Family == unix.AF_INET6 {
		ev.Conn.Src = netip.AddrPortFrom(conn.Addr(r.Family, &r.Saddr), r.Sport)
		ev.Conn.Dst = netip.AddrPortFrom(conn.Addr(r.Family, &r.Daddr), r.Dport)
	}
	return true
}
