package kernel

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

func root(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run as root")
		}
		t.Skip("needs root")
	}
}

func TestProbes(t *testing.T) {
	root(t)
	if err := Available(Candidate{Kind: TpBTF, Target: "inet_sock_set_state"}); err != nil {
		t.Errorf("tp_btf inet_sock_set_state: %v", err)
	}
	if err := Available(Candidate{Kind: Tracepoint, Target: "sock/inet_sock_set_state"}); err != nil {
		t.Errorf("tracepoint (mounts tracefs itself): %v", err)
	}
	for _, c := range []Candidate{
		{Kind: TpBTF, Target: "no_such_tracepoint"},
		{Kind: Tracepoint, Target: "sock/no_such_tracepoint"},
		{Kind: Netfilter, Target: "NOT_A_HOOK"},
	} {
		if Available(c) == nil {
			t.Errorf("%v reported available", c)
		}
	}
	// cached: the same answer, also for errors
	c := Candidate{Kind: Kprobe, Target: "tcp_set_state"}
	a, b := Available(c), Available(c)
	if (a == nil) != (b == nil) {
		t.Error("probe result not stable")
	}
	t.Logf("this kernel: kprobe=%v cgroup_skb=%v netfilter=%v", a,
		Available(Candidate{Kind: CgroupSKB, Target: "ingress"}),
		Available(Candidate{Kind: Netfilter, Target: "PRE_ROUTING"}))
}

func TestKindNames(t *testing.T) {
	for k := TpBTF; k <= Kretprobe+1; k++ {
		if k.String() == "" {
			t.Errorf("kind %d has no name", k)
		}
	}
	if !Netfilter.PerNetns() || TpBTF.PerNetns() || CgroupSKB.PerNetns() {
		t.Error("scope of kinds wrong")
	}
}

func TestAttachErrorNamesEveryCandidate(t *testing.T) {
	Hooks["test/none"] = Boundary{Name: "test/none", Candidates: []Candidate{
		{Kind: TpBTF, Target: "no_such_tp", Prog: "a"},
		{Kind: RawTP, Target: "no_such_tp", Prog: "b"},
	}}
	defer delete(Hooks, "test/none")
	_, err := Attach(emptyColl(), "test/none")
	if err == nil || !strings.Contains(err.Error(), "tp_btf") || !strings.Contains(err.Error(), "raw_tp") || strings.Contains(err.Error(), "\n") {
		t.Errorf("want one line naming both candidates, got %v", err)
	}
}

// A program that needs a missing feature is unavailable and pruned; the
// next candidate of its boundary (another variant of the program) is
// chosen; the feature is probed once.
func TestProgramFeatures(t *testing.T) {
	probes := 0
	missing := Feature{Name: "test feature (Linux 99+)", Probe: func() error { probes++; return errors.New("not in this kernel") }}
	b := Boundary{Name: "test/variants", Candidates: []Candidate{
		{Kind: CgroupSKB, Target: "ingress", Prog: "test_prog_new", Needs: []Feature{missing}},
		{Kind: CgroupSKB, Target: "ingress", Prog: "test_prog_old"},
	}}
	table = append(table, b)
	defer func() { table = table[:len(table)-1] }()
	err := Available(b.Candidates[0])
	if err == nil || !strings.Contains(err.Error(), "Linux 99+") {
		t.Errorf("want the feature named, got %v", err)
	}
	if Available(b.Candidates[0]) == nil || probes != 1 {
		t.Errorf("feature probed %d times, want 1 (cached)", probes)
	}
	spec := &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{"test_prog_new": {}, "test_prog_old": {}}}
	Prune(spec)
	if spec.Programs["test_prog_new"] != nil || spec.Programs["test_prog_old"] == nil {
		t.Errorf("prune kept %v", spec.Programs)
	}
	if os.Geteuid() == 0 && CgroupV2Root() != "" {
		if err := Available(b.Candidates[1]); err != nil {
			t.Errorf("the other variant: %v", err)
		}
	}
}

// kprobe candidates name every function they attach to; a missing one
// makes the candidate unavailable (on kernels with kprobes: here they are
// off, which is reported first).
func TestKprobeTargets(t *testing.T) {
	root(t)
	err := Available(Candidate{Kind: Kprobe, Target: "tcp_set_state,no_such_function_nw"})
	if err == nil {
		t.Fatal("a missing kprobe target reported available")
	}
	if _, serr := os.Stat("/sys/bus/event_source/devices/kprobe/type"); serr == nil && !strings.Contains(err.Error(), "no_such_function_nw") {
		t.Errorf("want the missing function named, got %v", err)
	}
	if err := kallsymsHave([]string{"tcp_v4_rcv", "ip_rcv"}); err != nil {
		t.Errorf("kallsyms: %v", err)
	}
	if err := kallsymsHave([]string{"tcp_v4_rcv", "no_such_function_nw"}); err == nil || !strings.Contains(err.Error(), "no_such_function_nw") || strings.Contains(err.Error(), "tcp_v4_rcv") {
		t.Errorf("kallsyms: want only the missing function named, got %v", err)
	}
}
