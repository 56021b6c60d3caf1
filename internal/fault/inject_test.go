package fault

import (
	"fmt"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/tcpconn"
)

var watched = []string{"TcpInSegs", "TcpOutSegs", "TcpInErrs", "TcpInCsumErrors", "TcpRetransSegs",
	"TcpExtBeyondWindow", "TcpExtTCPOFOQueue", "TcpExtTCPOFODrop", "TcpExtTCPOFOMerge",
	"TcpExtTCPACKSkippedSeq", "TcpExtDelayedACKLost", "TcpExtTCPDSACKOldSent", "TcpExtTCPDSACKOfoSent",
	"TcpExtTCPPureAcks", "TcpExtTCPHPHits", "TcpExtTCPSACKDiscard", "TcpExtTCPDSACKIgnoredOld",
	"TcpExtTCPFastRetrans", "TcpExtTCPTimeouts", "TcpExtTCPLossProbes", "TcpExtTCPSackRecovery",
	"TcpExtTCPSlowStartRetrans", "TcpExtTCPLostRetransmit"}

func TestBadCsum(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(tcpconn.Family(v6), func(t *testing.T) {
			l := newLab(t)
			if err := SetRxChecksum(l.B, l.IfB, false); err != nil {
				t.Fatal(err)
			}
			p := l.connect(t, v6)
			if err := p.RoundTrip(1000, 1); err != nil {
				t.Fatal(err)
			}
			beforeB, beforeA := counters(t, l.B), counters(t, l.A)
			res, err := BadCsum(tcpconn.Ctx(t), InjectOptions{Netns: l.A, Flow: p.flow, Count: 5, Out: tcpconn.Log(t),
				Ready: func() {
					if err := p.RoundTrip(100, 2); err != nil {
						t.Error(err)
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Segments) != 5 {
				t.Fatalf("injected %d segments, want 5", len(res.Segments))
			}
			got := waitCounter(t, l.B, beforeB, "TcpInCsumErrors", 5)
			if err := p.RoundTrip(3000, 3); err != nil {
				t.Fatalf("connection broken after badcsum: %v", err)
			}
			dB, dA := counters(t, l.B).Sub(beforeB), counters(t, l.A).Sub(beforeA)
			t.Logf("receiver delta: %s", dB.NonZero(watched...))
			t.Logf("sender delta: %s", dA.NonZero(watched...))
			if got != 5 || dB["TcpInCsumErrors"] != 5 {
				t.Fatalf("receiver TcpInCsumErrors grew by %d, want exactly 5", dB["TcpInCsumErrors"])
			}
		})
	}
}

func TestOutOfWindow(t *testing.T) {
	cases := []struct {
		mode  string
		v6    bool
		count int
	}{
		{ModeFuture, false, 4}, {ModeFuture, true, 4},
		{ModeOld, false, 4}, {ModeOld, true, 4},
		{ModeInWindowOOO, false, 3}, {ModeInWindowOOO, true, 3},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s-%s", tc.mode, tcpconn.Family(tc.v6)), func(t *testing.T) {
			l := newLab(t)
			p := l.connect(t, tc.v6)
			if err := p.RoundTrip(1000, 1); err != nil {
				t.Fatal(err)
			}
			beforeB, beforeA := counters(t, l.B), counters(t, l.A)
			res, err := OutOfWindow(tcpconn.Ctx(t), InjectOptions{Netns: l.A, Flow: p.flow, Count: tc.count, Mode: tc.mode, Out: tcpconn.Log(t),
				Ready: func() {
					if err := p.RoundTrip(100, 2); err != nil {
						t.Error(err)
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			key := map[string]string{ModeFuture: "TcpExtBeyondWindow", ModeOld: "TcpExtTCPDSACKOldSent", ModeInWindowOOO: "TcpExtTCPOFOQueue"}[tc.mode]
			waitCounter(t, l.B, beforeB, key, int64(tc.count))
			time.Sleep(20 * time.Millisecond)
			dB0 := counters(t, l.B).Sub(beforeB)
			// Data sent now must cover the out-of-order segments so that
			// they are superseded by the real bytes.
			if err := p.RoundTrip(4000, 3); err != nil {
				t.Fatalf("connection broken after oow %s: %v", tc.mode, err)
			}
			dB, dA := counters(t, l.B).Sub(beforeB), counters(t, l.A).Sub(beforeA)
			t.Logf("receiver delta right after injection: %s", dB0.NonZero(watched...))
			t.Logf("receiver delta: %s", dB.NonZero(watched...))
			t.Logf("sender delta: %s", dA.NonZero(watched...))
			t.Logf("replies seen by injector: %d", res.Replies)
			if len(res.Segments) != tc.count {
				t.Fatalf("injected %d segments, want %d", len(res.Segments), tc.count)
			}
			n := int64(tc.count)
			_, haveBW := beforeB["TcpExtBeyondWindow"]
			switch tc.mode {
			case ModeFuture:
				// Dropped as TCP_INVALID_SEQUENCE; each answered by a dup ACK.
				if haveBW && dB0["TcpExtBeyondWindow"] != n {
					t.Errorf("TcpExtBeyondWindow +%d, want %d", dB0["TcpExtBeyondWindow"], n)
				}
				if dB0["TcpExtTCPOFOQueue"] != 0 || dB0["TcpInErrs"] != 0 {
					t.Errorf("TCPOFOQueue +%d, TcpInErrs +%d: want 0", dB0["TcpExtTCPOFOQueue"], dB0["TcpInErrs"])
				}
				if dB0["TcpOutSegs"] < n || res.Replies < tc.count {
					t.Errorf("receiver sent %d segments, injector saw %d replies: want >= %d dup ACKs", dB0["TcpOutSegs"], res.Replies, n)
				}
			case ModeOld:
				// Dropped as TCP_OLD_SEQUENCE; each answered by a D-SACK.
				if dB0["TcpExtDelayedACKLost"] != n || dB0["TcpExtTCPDSACKOldSent"] != n {
					t.Errorf("DelayedACKLost +%d, TCPDSACKOldSent +%d: want %d", dB0["TcpExtDelayedACKLost"], dB0["TcpExtTCPDSACKOldSent"], n)
				}
				if dB0["TcpExtTCPOFOQueue"] != 0 || dB0["TcpExtBeyondWindow"] != 0 {
					t.Errorf("TCPOFOQueue +%d, BeyondWindow +%d: want 0", dB0["TcpExtTCPOFOQueue"], dB0["TcpExtBeyondWindow"])
				}
			case ModeInWindowOOO:
				// Accepted into the out-of-order queue: not an error.
				if dB0["TcpExtTCPOFOQueue"] != n {
					t.Errorf("TCPOFOQueue +%d, want %d", dB0["TcpExtTCPOFOQueue"], n)
				}
				if dB0["TcpExtBeyondWindow"] != 0 || dB0["TcpExtTCPOFODrop"] != 0 || dB0["TcpInErrs"] != 0 {
					t.Errorf("BeyondWindow +%d, TCPOFODrop +%d, TcpInErrs +%d: want 0", dB0["TcpExtBeyondWindow"], dB0["TcpExtTCPOFODrop"], dB0["TcpInErrs"])
				}
			}
		})
	}
}
