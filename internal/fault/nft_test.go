package fault

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/tcpconn"
)

func rootHasNwfaultTable(t *testing.T) bool {
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	return strings.Contains(string(out), TablePrefix)
}

func TestDrop(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(tcpconn.Family(v6), func(t *testing.T) {
			l := newLab(t)
			// Without TSO/GSO on the sending veth every packet is one MSS
			// segment; otherwise each drop removes a 64 KB super-packet and
			// 1 in 5 of those stalls the flow in RTOs.
			for _, o := range []string{"tso", "gso"} {
				if err := SetOffload(l.A, l.IfA, o, false); err != nil {
					t.Fatal(err)
				}
			}
			p := l.connect(t, v6)
			beforeA, beforeB := counters(t, l.A), counters(t, l.B)
			// Let the transfer get going (cwnd grown) before dropping, so
			// that losses are repaired by fast retransmits, not only RTOs.
			finish := p.Bulk(t)
			time.Sleep(200 * time.Millisecond)
			res, err := Drop(tcpconn.Ctx(t), DropOptions{Netns: l.B, Flow: p.flow, Every: 5, Duration: 800 * time.Millisecond, Out: tcpconn.Log(t),
				Ready: func() {
					if rootHasNwfaultTable(t) {
						t.Error("nwfault table appeared in the root namespace")
					}
					if tb := nftTables(t, l.B); !strings.Contains(tb, TablePrefix) {
						t.Errorf("no nwfault table in %s: %q", l.B, tb)
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			sent := finish()
			dA, dB := counters(t, l.A).Sub(beforeA), counters(t, l.B).Sub(beforeB)
			t.Logf("sent %d bytes; nft dropped %d packets in %v", sent, res.Dropped, res.Active)
			t.Logf("sender delta: %s", dA.NonZero(watched...))
			t.Logf("receiver delta: %s", dB.NonZero(watched...))
			if tb := nftTables(t, l.B); tb != "" {
				t.Errorf("tables left in %s: %q", l.B, tb)
			}
			if res.Dropped == 0 {
				t.Error("nothing dropped")
			}
			if dA["TcpRetransSegs"] <= 0 || dA["TcpExtTCPFastRetrans"] <= 0 {
				t.Errorf("sender TcpRetransSegs +%d, TcpExtTCPFastRetrans +%d: want both > 0", dA["TcpRetransSegs"], dA["TcpExtTCPFastRetrans"])
			}
		})
	}
}

func TestBlackout(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(tcpconn.Family(v6), func(t *testing.T) {
			l := newLab(t)
			p := l.connect(t, v6)
			beforeA, beforeB := counters(t, l.A), counters(t, l.B)
			finish := p.Bulk(t)
			time.Sleep(200 * time.Millisecond)
			res, err := Blackout(tcpconn.Ctx(t), BlackoutOptions{Netns: l.B, Flow: p.flow, Length: 150 * time.Millisecond,
				Repeat: 2, Gap: 300 * time.Millisecond, Out: tcpconn.Log(t)})
			if err != nil {
				t.Fatal(err)
			}
			// Keep sending until an RTO after the last blackout had time to fire.
			time.Sleep(500 * time.Millisecond)
			sent := finish()
			dA, dB := counters(t, l.A).Sub(beforeA), counters(t, l.B).Sub(beforeB)
			var ws []string
			for _, w := range res.Windows {
				ws = append(ws, fmt.Sprintf("%v/%d pkts", w.Len, w.Dropped))
			}
			t.Logf("sent %d bytes; blackouts %v dropped %d packets", sent, ws, res.Dropped)
			t.Logf("sender delta: %s", dA.NonZero(watched...))
			t.Logf("receiver delta: %s", dB.NonZero(watched...))
			if tb := nftTables(t, l.B); tb != "" {
				t.Errorf("tables left in %s: %q", l.B, tb)
			}
			if len(res.Windows) != 2 || res.Dropped == 0 {
				t.Errorf("windows %d, dropped %d", len(res.Windows), res.Dropped)
			}
			if dA["TcpExtTCPTimeouts"] < 1 {
				t.Errorf("sender TcpExtTCPTimeouts +%d, want >= 1", dA["TcpExtTCPTimeouts"])
			}
		})
	}
}
