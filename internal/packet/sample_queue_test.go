package packet_test

// --sample on a device with a qdisc (issue 17): there a sent segment waits
// between the device queue and the driver in a shared map, not on the
// sending CPU, and the transmit hook leaves at once only while that map is
// known to be empty (packet_tx.h, nw_pkt_txpend_n). tcpdump is the oracle.

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/packet"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// TestSampleQueuedDevice: a tbf qdisc on the sending veth, -t -i
// --sample=10, echo and HTTP traffic from A. At A, each data segment A
// sent that the hash picks has a send record with all three layer times
// (its mac time holds the qdisc wait), each GET A sent has a send record
// (picked or not; unpicked: untimed, every layer time missing), and no
// other unpicked segment has one.
func TestSampleQueuedDevice(t *testing.T) {
	nstest.RequireRoot(t)
	const n = 10
	p := nstest.NewPair(t)
	noOffload(t, p)
	p.TBF(t, true, "200mbit", "64kb", "50ms")
	wit := witness.StartLinks(t, p.A, p.B)
	_, echo := peer.Serve(t, p.B, "-l", addr(p.B4), "--echo")
	_, web := peer.Serve(t, p.B, "-l", addr(p.B4), "--http")
	echoAP, webAP := netip.MustParseAddrPort(echo), netip.MustParseAddrPort(web)
	run := nwtest.Start(t, "-t", "-i", "--sample", fmt.Sprint(n))
	capA := oracle.StartTcpdump(t, p.A, p.IfA, "tcp")
	out := peer.Run(t, p.A, 30*time.Second, "rr", "-r", echo, "-c", "2", "--size", "700", "--duration", "2s")
	const gets = 300
	peer.Run(t, p.A, 30*time.Second, "http-get", "-r", web, "-n", fmt.Sprint(gets))
	time.Sleep(300 * time.Millisecond)
	segs := capA.Stop()
	run.Stop()
	pk, stats := packets(run)
	// packets no BPF program ran for (README, "Events no BPF program
	// sees"): each may cost a record or a stamp; 0 in most runs
	nobpf := int(wit.Missed(t))

	type key struct {
		seq, ack uint32
		len      int
	}
	picked := map[key]bool{} // data segments A sent that the hash picks
	var m int
	for _, s := range segs {
		if s.PayloadLen == 0 || s.Src.Addr() != p.A4 || (s.Dst != echoAP && s.Dst != webAP) {
			continue
		}
		m++
		if packet.Picked(s.Seq, s.Src.Port(), s.Dst.Port(), n) {
			picked[key{s.Seq, s.Ack, s.PayloadLen}] = true
		}
	}
	got := map[key]bool{}
	var getRecs, incomplete, stray, timedUnpicked int
	for _, x := range pk {
		if x.rx || x.src.Addr() != p.A4 || (x.dst != echoAP && x.dst != webAP) {
			continue
		}
		k := key{x.seq, x.ack, x.len}
		isGet := strings.HasPrefix(x.raw.Str("http_info"), "GET ")
		if isGet {
			getRecs++
		}
		if !picked[k] {
			if !isGet {
				stray++
				t.Errorf("send record of a segment the hash did not pick, not a GET: %v", x.raw)
			}
			// untimed, also when it waited behind a picked one in the qdisc
			if x.mac >= 0 || x.ip >= 0 || x.tcp >= 0 {
				timedUnpicked++
				t.Errorf("unpicked GET with a layer time: %v", x.raw)
			}
			continue
		}
		got[k] = true
		if x.mac < 0 || x.ip < 0 || x.tcp < 0 {
			incomplete++
			t.Logf("picked, incomplete: %v", x.raw)
		}
	}
	var miss int
	for k := range picked {
		if !got[k] {
			miss++
		}
	}
	t.Logf("tcpdump: %d data segments sent by A, %d picked; %d picked send records (%d incomplete, %d missing); %d GET records of %d (%d unpicked with a layer time); stray %d; lost %d, stale %v, pkt_sample_waits %v; %s",
		m, len(picked), len(got), incomplete, miss, getRecs, gets, timedUnpicked, stray, lost(stats), stats.Num("pkt_tx_stale"), stats.Num("pkt_sample_waits"), strings.Join(out, " "))
	if m < 1000 || len(picked) < 50 {
		t.Fatalf("only %d data segments (%d picked)", m, len(picked))
	}
	// rr stops by closing: a message in flight may miss; few either way.
	if miss > lost(stats)+4+nobpf {
		t.Errorf("%d picked segments sent through the qdisc without a record (lost %d, packets no BPF program ran for %d)", miss, lost(stats), nobpf)
	}
	if incomplete > nobpf {
		t.Errorf("%d picked send records miss a layer time (packets no BPF program ran for: %d)", incomplete, nobpf)
	}
	if getRecs < gets-lost(stats)-nobpf {
		t.Errorf("%d GET send records, want %d (lost %d, packets no BPF program ran for %d)", getRecs, gets, lost(stats), nobpf)
	}
}
