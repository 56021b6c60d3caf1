package drops_test

import (
	"testing"

	"github.com/netwatcher/netwatcher/internal/drops"
	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// The tcp_bad_csum hook on its own (what runs where kfree_skb has no drop
// reason): one record per bad segment, attributed by addresses.
func TestBadCsumHookAlone(t *testing.T) {
	nstest.RequireRoot(t)
	c, rd := attachOnly(t, drops.BoundaryCsum)

	p := nstest.NewPair(t)
	p.RxChecksumOff(t, true)
	tc := lab.Dial(t, p, false, 0, 0)
	const n = 4
	res, err := fault.BadCsum(lab.Ctx(t), tc.Injection(t, n, ""))
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[uint32]bool{}
	for _, s := range res.Segments {
		seqs[s.Seq] = true
	}
	evs := flowErrors(t, rd, c, tc)
	for _, ev := range evs {
		if ev.Err.Name != drops.InvalidCsum || !seqs[ev.Err.Seq] || ev.Conn.Netns != uint32(p.B.Inode(t)) {
			t.Errorf("record %+v: want %q, an injected seq, netns %d", ev.Err, drops.InvalidCsum, p.B.Inode(t))
		}
	}
	if len(evs) != n {
		t.Errorf("%d records from tcp_bad_csum alone, want %d", len(evs), n)
	}
}
