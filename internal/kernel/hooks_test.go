package kernel

import (
	"os"
	"strings"
	"testing"
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
	c := Candidate{Kind: Fentry, Target: "tcp_set_state"}
	a, b := Available(c), Available(c)
	if (a == nil) != (b == nil) {
		t.Error("probe result not stable")
	}
	t.Logf("this kernel: fentry=%v kprobe=%v cgroup_skb=%v netfilter=%v", a,
		Available(Candidate{Kind: Kprobe, Target: "tcp_set_state"}),
		Available(Candidate{Kind: CgroupSKB, Target: "ingress"}),
		Available(Candidate{Kind: Netfilter, Target: "PRE_ROUTING"}))
}

func TestKindNames(t *testing.T) {
	for k := TpBTF; k <= Netfilter+1; k++ {
		if k.String() == "" {
			t.Errorf("kind %d has no name", k)
		}
	}
	if !Netfilter.PerNetns() || TpBTF.PerNetns() || CgroupSKB.PerNetns() {
		t.Error("scope of kinds wrong")
	}
}

func TestAttachErrorNamesEveryCandidate(t *testing.T) {
	Register(Boundary{Name: "test/none", Candidates: []Candidate{
		{Kind: TpBTF, Target: "no_such_tp", Prog: "a"},
		{Kind: RawTP, Target: "no_such_tp", Prog: "b"},
	}})
	defer delete(Hooks, "test/none")
	_, err := Attach(emptyColl(), "test/none")
	if err == nil || !strings.Contains(err.Error(), "tp_btf") || !strings.Contains(err.Error(), "raw_tp") || strings.Contains(err.Error(), "\n") {
		t.Errorf("want one line naming both candidates, got %v", err)
	}
}
