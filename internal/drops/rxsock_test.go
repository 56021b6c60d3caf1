package drops_test

import (
	"testing"

	"github.com/netwatcher/netwatcher/internal/drops"
	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// TestEveryCandidateLoads (issue 11): every program of the drop boundaries
// passes this kernel's verifier, the tcp_probe socket hooks of kernels
// without kfree_skb's rx_sk included (they are not loaded where rx_sk
// exists, so the test loads as before 6.11), and the kprobe/kretprobe pair
// on __skb_checksum_complete for kernels without tcp_bad_csum (before 5.14),
// which loads here although kprobes cannot attach.
func TestEveryCandidateLoads(t *testing.T) {
	nstest.RequireRoot(t)
	defer drops.WithoutRxSk()()
	c := loadConcern(t)
	progs := c.Programs()
	for _, name := range []string{drops.BoundaryKfree, drops.BoundaryCsum, drops.BoundaryRxSock, drops.BoundaryCsumEntry} {
		for _, cand := range kernel.Hooks[name].Candidates {
			if !progs[cand.Prog] {
				t.Errorf("%s: candidate %s %s: program %s not loaded", name, cand.Kind, cand.Target, cand.Prog)
			}
		}
	}
}

// TestOutOfWindowWithoutRxSk: where kfree_skb has no rx_sk (6.1), a segment
// TCP drops after its socket lookup is still named by its socket and
// namespace, through the socket tcp_probe saw it reach. Loaded as on such a
// kernel (the rx_sk argument ignored), a sequence-check drop must come with
// a socket and the receiver's namespace, not as an unattributed drop.
func TestOutOfWindowWithoutRxSk(t *testing.T) {
	nstest.RequireRoot(t)
	defer drops.WithoutRxSk()()
	c, rd := attachOnly(t, drops.BoundaryRxSock, drops.BoundaryKfree)

	p := nstest.NewPair(t)
	tc := lab.Dial(t, p, false, 0, 0)
	const m = 3
	want := 0
	for _, mode := range []string{fault.ModeFuture, fault.ModeOld} {
		res, err := fault.OutOfWindow(lab.Ctx(t), tc.Injection(t, m, mode))
		if err != nil {
			t.Fatal(err)
		}
		want += len(res.Segments)
	}
	if err := tc.RoundTrip(1000, 5); err != nil {
		t.Fatal(err)
	}
	evs := flowErrors(t, rd, c, tc)
	got, named := len(evs), 0
	for _, ev := range evs {
		if ev.Conn.Sock != 0 && ev.Conn.Netns == uint32(p.B.Inode(t)) && ev.Err.Rx && ev.Err.Name == drops.InvalidSeq {
			named++
		} else {
			t.Logf("not named: sock %#x netns %d rx %v %q", ev.Conn.Sock, ev.Conn.Netns, ev.Err.Rx, ev.Err.Name)
		}
	}
	t.Logf("%d injected, %d records, %d with the socket and namespace", want, got, named)
	if got != want || named != want {
		t.Errorf("%d records, %d named by socket and namespace, want %d", got, named, want)
	}
}
