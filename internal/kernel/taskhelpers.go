package kernel

import (
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
)

// Task helpers (bpf_get_current_pid_tgid, bpf_get_current_comm) are open to
// tracing programs on every kernel, but to cgroup_skb and netfilter programs
// only on newer ones (bpf_get_current_pid_tgid from Linux 6.10 for every
// program type; bpf_get_current_comm later: not on 6.12, yes on 6.18). A
// verifier refuses a program that calls one its kernel does not offer, even
// on a path that would never run, so the BPF code asks volatile const flags
// the loader sets from TaskHelpers (nw_owner_current_if in nw_sock.h): the
// verifier knows their values and never sees the calls its kernel refuses.
//
// NW_AVOID=task_pid / task_comm (AvoidEnv) makes TaskHelpers report the
// helper missing for cgroup_skb and netfilter programs: what older kernels
// get, testable here.

type taskKey struct {
	pt ebpf.ProgramType
	fn asm.BuiltinFunc
}

var (
	taskMu    sync.Mutex
	taskCache = map[taskKey]bool{}
)

// TaskHelpers reports (probed once per program type, cached) whether
// programs of type pt may call bpf_get_current_pid_tgid (pid) and
// bpf_get_current_comm (comm) on the running kernel.
func TaskHelpers(pt ebpf.ProgramType) (pid, comm bool) {
	return haveTaskHelper(pt, asm.FnGetCurrentPidTgid, "task_pid"), haveTaskHelper(pt, asm.FnGetCurrentComm, "task_comm")
}

func haveTaskHelper(pt ebpf.ProgramType, fn asm.BuiltinFunc, avoidName string) bool {
	if avoided()[avoidName] && (pt == ebpf.CGroupSKB || pt == ebpf.Netfilter) {
		return false
	}
	k := taskKey{pt, fn}
	taskMu.Lock()
	defer taskMu.Unlock()
	ok, done := taskCache[k]
	if !done {
		ok = features.HaveProgramHelper(pt, fn) == nil
		taskCache[k] = ok
	}
	return ok
}

// SetTaskHelpers sets an object's flags for the task helpers of programs of
// type pt: the bool volatile consts named pidVar and commVar (either may be
// "" when the object has no such flag).
func SetTaskHelpers(spec *ebpf.CollectionSpec, pt ebpf.ProgramType, pidVar, commVar string) error {
	pid, comm := TaskHelpers(pt)
	for _, v := range []struct {
		name string
		val  bool
	}{{pidVar, pid}, {commVar, comm}} {
		if v.name == "" {
			continue
		}
		sv, ok := spec.Variables[v.name]
		if !ok {
			return fmt.Errorf("no variable %s in the object", v.name)
		}
		if err := sv.Set(v.val); err != nil {
			return fmt.Errorf("set %s: %w", v.name, err)
		}
	}
	return nil
}
