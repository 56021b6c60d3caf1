package kernel

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The probe answers what the verifier does: a program of the type calling
// the helper loads exactly when TaskHelpers says it may (the loaders' flags
// rest on it). Tracing programs (kprobe) always may; cgroup_skb and
// netfilter depend on the kernel (both on 6.18).
func TestTaskHelpers(t *testing.T) {
	root(t)
	if pid, comm := TaskHelpers(ebpf.Kprobe); !pid || !comm {
		t.Errorf("kprobe: pid %v comm %v, want both", pid, comm)
	}
	var u unix.Utsname
	_ = unix.Uname(&u)
	for _, pt := range []ebpf.ProgramType{ebpf.CGroupSKB, ebpf.Netfilter} {
		pid, comm := TaskHelpers(pt)
		t.Logf("%s on %s: bpf_get_current_pid_tgid %v, bpf_get_current_comm %v", pt, unix.ByteSliceToString(u.Release[:]), pid, comm)
		if p2, c2 := TaskHelpers(pt); p2 != pid || c2 != comm {
			t.Errorf("%s: not the cached answer", pt)
		}
		for _, h := range []struct {
			fn   asm.BuiltinFunc
			want bool
		}{{asm.FnGetCurrentPidTgid, pid}, {asm.FnGetCurrentComm, comm}} {
			if got := loads(t, pt, h.fn); got != h.want {
				t.Errorf("%s calling %s loads %v, TaskHelpers says %v", pt, h.fn, got, h.want)
			}
		}
	}
}

// loads: does a program of type pt that calls fn pass the verifier?
func loads(t *testing.T, pt ebpf.ProgramType, fn asm.BuiltinFunc) bool {
	insns := asm.Instructions{}
	if fn == asm.FnGetCurrentComm {
		insns = append(insns,
			asm.Mov.Imm(asm.R3, 0),
			asm.StoreMem(asm.RFP, -16, asm.R3, asm.DWord), asm.StoreMem(asm.RFP, -8, asm.R3, asm.DWord),
			asm.Mov.Reg(asm.R1, asm.RFP), asm.Add.Imm(asm.R1, -16), asm.Mov.Imm(asm.R2, 16))
	}
	insns = append(insns, fn.Call(), asm.Mov.Imm(asm.R0, 1), asm.Return())
	spec := &ebpf.ProgramSpec{Type: pt, License: "GPL", Instructions: insns}
	if pt == ebpf.Netfilter {
		spec.AttachType = ebpf.AttachNetfilter
	}
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		if !strings.Contains(err.Error(), "helper") && !strings.Contains(err.Error(), "unknown func") &&
			!strings.Contains(err.Error(), "not supported") {
			t.Logf("%s/%s: %v", pt, fn, err)
		}
		return false
	}
	p.Close()
	return true
}

func TestSetTaskHelpersNeedsTheVariables(t *testing.T) {
	root(t)
	err := SetTaskHelpers(&ebpf.CollectionSpec{}, ebpf.CGroupSKB, "cfg_skb_pid", "")
	if err == nil || !strings.Contains(err.Error(), "cfg_skb_pid") {
		t.Errorf("a missing flag: %v", err)
	}
	if err := SetTaskHelpers(&ebpf.CollectionSpec{}, ebpf.CGroupSKB, "", ""); err != nil {
		t.Errorf("no flags: %v", err)
	}
}
