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

	"github.com/cilium/ebpf/btf"
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
