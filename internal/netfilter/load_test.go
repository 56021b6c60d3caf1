package netfilter

import (
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/ringtest"
)

// Every program of the object passes this kernel's verifier: the netfilter
// links, both kfree_skb twins and the nf_hook_slow kprobes of kernels
// before 6.4 (kprobes do not attach here, but they load).
func TestEveryCandidateLoads(t *testing.T) {
	nstest.RequireRoot(t)
	if !ByLinks() {
		t.Skip("no netfilter BPF links on this kernel")
	}
	cfg := &config.Config{NetFilter: true}
	c := New(cfg)
	ringtest.Load(t, conn.Options{}, cfg, c)
	for _, b := range append(append([]string(nil), NsBoundaries...), kernel.NfDrop, kernel.NfSlow, kernel.NfSlowRet) {
		for _, cand := range kernel.Hooks[b].Candidates {
			if c.Coll.Programs[cand.Prog] == nil {
				t.Errorf("%s: candidate %s %s: program %s not loaded", b, cand.Kind, cand.Target, cand.Prog)
			}
		}
	}
}
