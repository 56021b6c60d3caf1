// Package kernel holds every question netwatcher asks about the running
// kernel: file systems it needs mounted, cached feature probes, and the hook
// table that maps each observation point to an ordered list of candidate
// hooks. Nothing else in the tree looks at kernel versions.
package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// TracefsDir is where netwatcher expects tracefs.
const TracefsDir = "/sys/kernel/tracing"

var mountOnce sync.Once
var mountErr error

// EnsureTracefs mounts tracefs if it is not mounted yet (many hosts, this
// project's CI among them, boot without it). Only classic tracepoints need it.
func EnsureTracefs() error {
	mountOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(TracefsDir, "events")); err == nil {
			return
		}
		if err := unix.Mount("nodev", TracefsDir, "tracefs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			mountErr = fmt.Errorf("mount tracefs on %s: %w", TracefsDir, err)
		}
	})
	return mountErr
}

// CheckPrivileges returns a one-line explanation when netwatcher cannot load
// BPF programs at all.
func CheckPrivileges() error {
	if os.Geteuid() == 0 {
		return nil
	}
	// CAP_BPF + CAP_PERFMON (+ CAP_NET_ADMIN, CAP_SYS_ADMIN for iterators) would
	// also do; check the effective set.
	data, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
				var caps uint64
				fmt.Sscanf(strings.TrimSpace(v), "%x", &caps)
				const capSysAdmin, capBPF, capPerfmon = 21, 39, 38
				if caps&(1<<capSysAdmin) != 0 || (caps&(1<<capBPF) != 0 && caps&(1<<capPerfmon) != 0) {
					return nil
				}
			}
		}
	}
	return errors.New("not root and no CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN): cannot load eBPF programs; nothing can run (try sudo)")
}

var btfOnce sync.Once
var btfSpec *btf.Spec
var btfErr error

// KernelBTF returns the running kernel's BTF, loaded once.
func KernelBTF() (*btf.Spec, error) {
	btfOnce.Do(func() {
		btfSpec, btfErr = btf.LoadKernelSpec()
		if btfErr != nil {
			btfErr = fmt.Errorf("kernel BTF not available (/sys/kernel/btf/vmlinux): %w; CO-RE programs cannot load", btfErr)
		}
	})
	return btfSpec, btfErr
}

var memlockOnce sync.Once
var memlockErr error

// RemoveMemlock lifts RLIMIT_MEMLOCK, once. Kernels before 5.11 charge BPF
// maps to it (Debian 11's 5.10: the default 64 KiB refuses the first map,
// "map create: operation not permitted"); later ones charge the memory
// cgroup and the call changes nothing. An error (no CAP_SYS_RESOURCE) is
// returned for the caller to mention; loading may still work.
func RemoveMemlock() error {
	memlockOnce.Do(func() { memlockErr = rlimit.RemoveMemlock() })
	return memlockErr
}

var atomicsOnce sync.Once
var atomicsErr error

// HaveAtomics reports (once) whether BPF programs may use atomic
// instructions that return a value (compare-and-swap, exchange, fetch-add):
// Linux 5.12. Older verifiers refuse them wherever they appear in a
// program, dead code included ("BPF_STX uses reserved fields"). The probe
// loads a socket filter that does one compare-and-swap on its stack.
func HaveAtomics() error {
	atomicsOnce.Do(func() {
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type:         ebpf.SocketFilter,
			License:      "GPL",
			Instructions: atomicsProbeInsns(),
		})
		if err != nil {
			atomicsErr = fmt.Errorf("BPF atomic compare-and-swap refused (needs Linux 5.12): %w", err)
			return
		}
		p.Close()
	})
	return atomicsErr
}

func atomicsProbeInsns() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0), // expected old value
		asm.Mov.Imm(asm.R2, 1), // new value
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, -8),
		// Constant set by hand: cilium/ebpf v0.22 marshals an atomic built
		// with AtomicOp.Mem with imm 0, i.e. as a plain atomic add (the
		// old XADD, which 5.10 accepts: the probe would always pass).
		{OpCode: asm.CmpXchg.OpCode(asm.DWord), Dst: asm.R1, Src: asm.R2, Constant: int64(asm.CmpXchg >> 8)},
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
}

// TracepointArgs returns the number of arguments of a BTF-typed
// tracepoint (without the context pointer), 0 if the kernel has none.
func TracepointArgs(spec *btf.Spec, name string) int {
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_"+name, &td); err != nil {
		return 0
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return 0
	}
	fp, ok := ptr.Target.(*btf.FuncProto)
	if !ok || len(fp.Params) == 0 {
		return 0
	}
	return len(fp.Params) - 1
}

// EnumNames reads a kernel enum whose value names share a prefix
// (skb_drop_reason: SKB_DROP_REASON_*, sk_rst_reason: SK_RST_REASON_*)
// from the BTF enum en into a table indexed by value: the names without
// the prefix, "" where the enum has no value. Values of limit or more
// (subsystem bits, sentinels) and the <prefix>MAX sentinel are left out.
// So a reason the kernel gains appears with its name, with no code change.
func EnumNames(en *btf.Enum, prefix string, limit uint64) []string {
	n := uint64(0)
	for _, v := range en.Values {
		if strings.HasPrefix(v.Name, prefix) && v.Name != prefix+"MAX" && v.Value < limit {
			n = max(n, v.Value+1)
		}
	}
	names := make([]string, n)
	for _, v := range en.Values {
		if name, ok := strings.CutPrefix(v.Name, prefix); ok && name != "MAX" && v.Value < n {
			names[v.Value] = name
		}
	}
	return names
}
