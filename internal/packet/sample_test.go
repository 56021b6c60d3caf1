package packet_test

// --sample=N (issue 17): records for 1 in N data segments, picked by a hash
// of each segment's sequence number and ports that every boundary computes
// again. Real traffic in namespaces, the real binary, tcpdump as the oracle.

import (
	"fmt"
	"math"
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

// picked applies packet.Picked to a record: the ports are those of the
// segment's TCP header (a received segment was sent by the remote end).
func picked(x pkt, n uint32) bool {
	if x.rx {
		return packet.Picked(x.seq, x.dst.Port(), x.src.Port(), n)
	}
	return packet.Picked(x.seq, x.src.Port(), x.dst.Port(), n)
}

type sampKey struct {
	rx       bool
	seq, ack uint32
	len      int
}

// TestSampleMatchesHash: with --sample=10 the records are exactly the data
// segments tcpdump saw whose (seq, ports) the hash picks, both directions,
// no more (nothing unpicked goes through the ring) and no fewer; their
// number is M/10 within binomial noise.
func TestSampleMatchesHash(t *testing.T) {
	nstest.RequireRoot(t)
	const n = 10
	p := nstest.NewPair(t)
	noOffload(t, p)
	wit := witness.StartLinks(t, p.A, p.B)
	_, saddr := peer.Serve(t, p.B, "-l", addr(p.B4), "--echo")
	sport := fmt.Sprint(netip.MustParseAddrPort(saddr).Port())
	run := nwtest.Start(t, "-d", sport, "-t", "--sample", fmt.Sprint(n))
	capA := oracle.StartTcpdump(t, p.A, p.IfA, "tcp")
	// 700-byte requests and echoes (below the MSS, TCP_NODELAY: Go's
	// default): one segment each.
	out := peer.Run(t, p.A, 30*time.Second, "rr", "-r", saddr, "-c", "2", "--size", "700", "--duration", "2s")
	time.Sleep(300 * time.Millisecond)
	segs := capA.Stop()
	run.Stop()
	pk, stats := packets(run)
	// packets no BPF program ran for (README, "Events no BPF program
	// sees"): each may cost a record or a stamp; 0 in most runs
	nobpf := int(wit.Missed(t))

	want := map[sampKey]bool{}
	var m int
	for _, s := range segs {
		if s.PayloadLen == 0 {
			continue
		}
		m++
		if packet.Picked(s.Seq, s.Src.Port(), s.Dst.Port(), n) {
			// recorded at A: sent by A, or received from B
			want[sampKey{s.Src.Addr() == p.B4, s.Seq, s.Ack, s.PayloadLen}] = true
		}
	}
	got := map[sampKey]bool{}
	var incomplete int
	for _, x := range pk {
		k := sampKey{x.rx, x.seq, x.ack, x.len}
		got[k] = true
		if !want[k] {
			t.Errorf("record of a segment the hash did not pick (or tcpdump did not see): %v", x.raw)
		}
		if x.mac < 0 || x.ip < 0 || x.tcp < 0 {
			incomplete++
		}
	}
	var miss int
	for k := range want {
		if !got[k] {
			miss++
		}
	}
	// The hash is deterministic; as a test of its spread, treat each
	// segment as picked with probability 1/n: 4 standard deviations of
	// Binomial(m, 1/n) (false alarm ~1e-4).
	exp := float64(m) / n
	tol := 4 * math.Sqrt(float64(m)*(1.0/n)*(1-1.0/n))
	t.Logf("tcpdump: %d data segments, %d picked by the hash (expected %.0f ± %.0f); %d records, %d missing, %d incomplete; ring events %v, lost %d; %s",
		m, len(want), exp, tol, len(got), miss, incomplete, stats.Num("events"), lost(stats), strings.Join(out, " "))
	if m < 2000 {
		t.Fatalf("only %d data segments", m)
	}
	if d := math.Abs(float64(len(want)) - exp); d > tol {
		t.Errorf("hash picked %d of %d segments, want %.0f ± %.0f", len(want), m, exp, tol)
	}
	// rr stops by closing: a message still in flight then reaches a closed
	// socket (tcpdump sees it, no receive record): at most one per
	// direction of each of the 2 connections.
	if miss > lost(stats)+4+nobpf {
		t.Errorf("%d picked segments without a record (lost counters %d, packets no BPF program ran for %d)", miss, lost(stats), nobpf)
	}
	if incomplete > nobpf {
		t.Errorf("%d of %d sampled records miss a layer time (packets no BPF program ran for: %d)", incomplete, len(pk), nobpf)
	}
	// Unpicked segments never reach the ring: it carried the records and
	// the connection's few other records, not m.
	if ev := int(stats.Num("events")); ev > len(pk)+100 {
		t.Errorf("ring carried %d events for %d records", ev, len(pk))
	}
}

// TestSampleLoopbackComplete: on loopback (IPv4 and IPv6; request/response
// and bulk super-segments), every record --sample=10 makes has all its
// layer times, is one the hash picks, and each picked request/response
// segment has both its send and its receive record (every boundary on both
// ends decided alike).
func TestSampleLoopbackComplete(t *testing.T) {
	nstest.RequireRoot(t)
	const n = 10
	ns := nstest.NewNS(t)
	wit := witness.StartLinks(t, ns)
	run := nwtest.Start(t, "-t", "--sample", fmt.Sprint(n))
	var servers []netip.AddrPort
	var ops int
	for _, l := range []string{"127.0.0.1:0", "[::1]:0"} {
		_, s := peer.Serve(t, ns, "-l", l, "--echo")
		servers = append(servers, netip.MustParseAddrPort(s))
		out := peer.Run(t, ns, 30*time.Second, "rr", "-r", s, "-c", "2", "--size", "3000", "--duration", "1500ms")
		for _, line := range out {
			var o int
			if _, err := fmt.Sscanf(line, "rr ops=%d", &o); err == nil {
				ops += o
			}
		}
		peer.Run(t, ns, 30*time.Second, "bulk", "-r", s, "--bytes", fmt.Sprint(4<<20))
	}
	time.Sleep(300 * time.Millisecond)
	run.Stop()
	pk, stats := packets(run)
	// packets no BPF program ran for (README, "Events no BPF program
	// sees"): each may cost a record or a stamp; 0 in most runs
	nobpf := int(wit.Missed(t))
	ours := func(x pkt) bool {
		for _, s := range servers {
			if x.src == s || x.dst == s {
				return true
			}
		}
		return false
	}
	type seg struct {
		seq, ack uint32
		len      int
		from     netip.AddrPort
	}
	sent, recv := map[seg]bool{}, map[seg]bool{}
	var nrec, incomplete, notPicked int
	for _, x := range pk {
		if !ours(x) {
			continue
		}
		nrec++
		if x.mac < 0 || x.ip < 0 || x.tcp < 0 {
			incomplete++
			if incomplete < 5 {
				t.Logf("incomplete: %v", x.raw)
			}
		}
		if !picked(x, n) {
			notPicked++
			t.Errorf("record the hash does not pick: %v", x.raw)
		}
		if x.raw.Num("sample") != n {
			t.Errorf("record without \"sample\":%d: %v", n, x.raw)
		}
		if x.len != 3000 {
			// bulk: a super-segment over the 64 KiB loopback MTU is one
			// send record and, split by software GSO, several receive
			// records, each picked (or not) by its own seq
			continue
		}
		if x.rx {
			recv[seg{x.seq, x.ack, x.len, x.dst}] = true
		} else {
			sent[seg{x.seq, x.ack, x.len, x.src}] = true
		}
	}
	var unpaired int
	for s := range sent {
		if !recv[s] {
			unpaired++
			if unpaired < 10 {
				t.Logf("sent, not received: %+v", s)
			}
		}
	}
	for s := range recv {
		if !sent[s] {
			unpaired++
			if unpaired < 10 {
				t.Logf("received, not sent: %+v", s)
			}
		}
	}
	// rr: each op is a request and an echo of 3000 bytes (one loopback
	// segment each); about 1 in n of those 2*ops segments is picked.
	exp := 2 * float64(ops) / n
	tol := 4 * math.Sqrt(2*float64(ops)*(1.0/n)*(1-1.0/n))
	t.Logf("%d records (%d segments sent, %d received), %d incomplete, %d unpaired; rr ops %d: ~%.0f ± %.0f picked; lost %d",
		nrec, len(sent), len(recv), incomplete, unpaired, ops, exp, tol, lost(stats))
	if ops < 1000 {
		t.Fatalf("only %d round trips", ops)
	}
	if d := float64(len(sent)) - exp; d > tol || -d > tol {
		t.Errorf("%d segments sampled, want %.0f ± %.0f", len(sent), exp, tol)
	}
	// This VM runs no BPF program at all for events handled while a
	// thread of its PID 1 is current, in bursts of 1-15 ms on one CPU
	// (README, "Events no BPF program sees"): a boundary that fell in one
	// leaves its stamp missing (seen twice on this VM, 1 record in
	// ~44,000 each time). The BPF witness counts the packets of the
	// namespace no BPF program ran for. The other allowance is what the
	// tool itself counted: a socket whose stamp queue could not be made
	// (pkt_queue_alloc_failed: the socket storage is allocated atomically
	// and can fail when free memory is low; seen once in CI, 1 record in
	// 41,498) records its segments without that stamp.
	noQueue := max(int(stats.Num("pkt_queue_alloc_failed")), 0) // -1: not in the stats
	if incomplete > nobpf+noQueue {
		t.Errorf("%d of %d sampled records miss a layer time (packets no BPF program ran for: %d; stamp queues not made: %d)",
			incomplete, nrec, nobpf, noQueue)
	} else if incomplete > 0 {
		t.Logf("NOTE: %d of %d sampled records miss a layer time (packets no BPF program ran for: %d; stamp queues not made: %d)",
			incomplete, nrec, nobpf, noQueue)
	}
	// rr stops by closing its connections: a message still in flight
	// then reaches a closed socket (no receive record). At most one per
	// direction of each of the 2x2 connections.
	if unpaired > lost(stats)+8+nobpf {
		t.Errorf("%d sampled segments recorded on one end only (lost %d, packets no BPF program ran for %d)", unpaired, lost(stats), nobpf)
	}
}

// TestSampleKeepsHTTPStarts: -i with --sample=10 still records every
// segment that may start an HTTP line (every GET and every response), so
// pairing stays complete (every exchange matched on both ends); the
// segments the hash picked have all layer times, the unpicked HTTP starts
// none: each is one record made at TCP entry / IP output, which never waits
// for a later hook. The exit stats' pkt_sample_waits (segments that entered
// a place the queue, transmit and copy hooks search: a tx slot, a socket's
// receive queue) is bounded by the picked records: when unpicked HTTP
// starts waited too (before issue 17's fix), it was about all 4*gets.
func TestSampleKeepsHTTPStarts(t *testing.T) {
	nstest.RequireRoot(t)
	const n, gets = 10, 200
	ns := nstest.NewNS(t)
	wit := witness.StartLinks(t, ns)
	run := nwtest.Start(t, "-t", "-i", "--sample", fmt.Sprint(n))
	_, s := peer.Serve(t, ns, "-l", "127.0.0.1:0", "--http")
	srv := netip.MustParseAddrPort(s)
	peer.Run(t, ns, 30*time.Second, "http-get", "-r", s, "-n", fmt.Sprint(gets))
	time.Sleep(300 * time.Millisecond)
	run.Stop()
	pk, stats := packets(run)
	nobpf := int(wit.Missed(t)) // packets no BPF program ran for
	var req, resp, pickedN, pickedAll, incomplete, other, timedUnpicked int
	for _, x := range pk {
		if picked(x, n) {
			pickedAll++ // any connection the run traced: each may wait
		}
		if x.src != srv && x.dst != srv {
			continue
		}
		h := x.raw.Str("http_info")
		switch {
		case strings.HasPrefix(h, "GET "):
			req++
		case strings.HasPrefix(h, "HTTP/1.1 "):
			resp++
		case !picked(x, n):
			other++
			t.Errorf("unpicked record that starts no HTTP line: %v", x.raw)
		}
		if picked(x, n) {
			pickedN++
			if x.mac < 0 || x.ip < 0 || x.tcp < 0 {
				incomplete++
				t.Logf("picked, incomplete: %v", x.raw)
			}
			continue
		}
		// untimed: every layer null (JSON), none stamped
		for _, k := range []string{"mac_time_ns", "ip_time_ns", "tcp_time_ns"} {
			if !x.raw.Has(k) || x.raw[k] != nil {
				timedUnpicked++
				t.Errorf("unpicked HTTP start with %s = %v: %v", k, x.raw[k], x.raw)
				break
			}
		}
	}
	var matched int
	for _, e := range run.Events() {
		if e.Str("type") == "http" && (e.Str("src") == s || e.Str("dst") == s) && e.Num("status") == 200 {
			matched++
		}
	}
	waits := int(stats.Num("pkt_sample_waits"))
	t.Logf("GET records %d, response records %d (want %d each: sent and received), picked %d (%d incomplete, %d in the whole run), unpicked with a layer time %d; matched exchanges %d (want %d: both ends); pkt_sample_waits %d; lost %d",
		req, resp, 2*gets, pickedN, incomplete, pickedAll, timedUnpicked, matched, 2*gets, waits, lost(stats))
	if req < 2*gets-lost(stats)-nobpf || resp < 2*gets-lost(stats)-nobpf {
		t.Errorf("HTTP start segments recorded: %d GET + %d responses, want %d each (lost %d, packets no BPF program ran for %d)", req, resp, 2*gets, lost(stats), nobpf)
	}
	if matched < 2*gets-lost(stats)-nobpf {
		t.Errorf("%d request/response pairs matched, want %d (lost %d, packets no BPF program ran for %d)", matched, 2*gets, lost(stats), nobpf)
	}
	if incomplete > nobpf {
		t.Errorf("%d picked records miss a layer time (packets no BPF program ran for: %d)", incomplete, nobpf)
	}
	if !stats.Has("pkt_sample_waits") {
		t.Fatalf("exit stats without pkt_sample_waits: %v", stats)
	}
	// Each picked segment waits once (its tx slot or its place in the
	// receive queue); an unpicked HTTP start waits only behind a waiting
	// one of its socket (none in this sequential exchange). Slack: picked
	// segments whose record was lost, or that never reached a record.
	if limit := pickedAll + pickedAll/10 + lost(stats) + nobpf + 20; waits > limit {
		t.Errorf("pkt_sample_waits %d > %d: segments the hash did not pick waited for the later hooks (picked records %d)", waits, limit, pickedAll)
	}
}
