package packet_test

// Real traffic in namespaces over veth, recorded by the real netwatcher
// binary and compared with tcpdump. Needs root (skipped otherwise, failed
// under CI).

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// noOffload turns segmentation offloads off on both veths, so that one skb
// is one wire segment everywhere: TCP builds MSS-sized skbs (no TSO/GSO) and
// the receiver does not merge them (no GRO). With offloads on, tcpdump and
// netwatcher would both see ~64 KB super-segments, but tcpdump on the sending
// veth sees them before a possible software split; comparing per segment
// needs them off.
func noOffload(t *testing.T, p *nstest.Pair) {
	t.Helper()
	for _, side := range []bool{true, false} {
		ns, ifc := p.Side(side)
		for _, o := range []string{"tso", "gso", "gro"} {
			if err := fault.SetOffload(ns.Name, ifc, o, false); err != nil {
				t.Fatalf("offload %s off on %s: %v", o, ifc, err)
			}
		}
	}
}

type pkt struct {
	sock     string
	seq, ack uint32
	len      int
	rx       bool
	src, dst netip.AddrPort
	mac, ip  float64 // ns, -1 when missing
	tcp      float64
	raw      nwtest.Ev
}

func packets(run *nwtest.Run) (out []pkt, stats nwtest.Ev) {
	for _, e := range run.Events() {
		switch e.Str("type") {
		case "stats":
			stats = e
		case "packet":
			src, _ := netip.ParseAddrPort(e.Str("src"))
			dst, _ := netip.ParseAddrPort(e.Str("dst"))
			out = append(out, pkt{
				sock: e.Str("sock"), seq: uint32(e.Num("seq")), ack: uint32(e.Num("ack")),
				len: int(e.Num("len")), rx: e.Num("rx") == 1, src: src, dst: dst,
				mac: e.Num("mac_time_ns"), ip: e.Num("ip_time_ns"), tcp: e.Num("tcp_time_ns"), raw: e,
			})
		}
	}
	return out, stats
}

func lost(stats nwtest.Ev) int {
	if stats == nil {
		return 0
	}
	return int(stats.Num("lost_ring_full") + stats.Num("lost_queue_full"))
}

func addr(a netip.Addr) string { return netip.AddrPortFrom(a, 0).String() }

type segKey struct {
	seq, ack uint32
	len      int
}

// TestMatchesTcpdump: every data segment tcpdump sees on the sending and on
// the receiving veth is in netwatcher's output with the same seq/ack/len,
// IPv4 and IPv6, with and without -t (the two use different record points).
func TestMatchesTcpdump(t *testing.T) {
	nstest.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		v6    bool
		flags []string
	}{
		{"v4-t", false, []string{"-t"}},
		{"v6-t", true, []string{"-t"}},
		{"v4", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := nstest.NewPair(t)
			noOffload(t, p)
			la, lb := p.A4, p.B4
			if tc.v6 {
				la, lb = p.A6, p.B6
			}
			srv, saddr := peer.Serve(t, p.B, "-l", addr(lb), "--sink")
			// Other tests on this host make traffic too: select this flow in
			// the kernel, one instance per side (-s: the server's socket,
			// -d: the client's), so that only its records use the ring.
			sport := fmt.Sprint(netip.MustParseAddrPort(saddr).Port())
			wit := witness.StartLinks(t, p.A, p.B)
			runRx := nwtest.Start(t, append([]string{"-s", sport}, tc.flags...)...)
			runTx := nwtest.Start(t, append([]string{"-d", sport}, tc.flags...)...)
			capB := oracle.StartTcpdump(t, p.B, p.IfB, "tcp")
			capA := oracle.StartTcpdump(t, p.A, p.IfA, "tcp")
			const total = 20 << 20
			out := peer.Run(t, p.A, 60*time.Second, "bulk", "-r", saddr, "--bytes", fmt.Sprint(total))
			srv.Expect("RECEIVED", 10*time.Second)
			time.Sleep(300 * time.Millisecond)
			segA, segB := capA.Stop(), capB.Stop()
			runRx.Stop()
			runTx.Stop()
			pkRx, statsRx := packets(runRx)
			pkTx, statsTx := packets(runTx)
			pk := append(pkRx, pkTx...)
			// packets no BPF program ran for (README, "Events no BPF
			// program sees"): each may cost a record; 0 in most runs
			nobpf := int(wit.Missed(t))

			// Sent records are per skb TCP handed to IP: TCP always builds
			// GSO skbs (even with gso off on the device, it then segments in
			// software after the device queue), so tcpdump on the sending
			// veth sees MSS pieces of them. Compare sent data by byte range:
			// every captured segment lies inside one record with its ack.
			sent := map[segKey]bool{}
			recv := map[segKey]bool{}
			for _, x := range pk {
				if x.src.Addr() == la && !x.rx {
					sent[segKey{x.seq, x.ack, x.len}] = true
				}
				if x.src.Addr() == lb && x.rx {
					recv[segKey{x.seq, x.ack, x.len}] = true
				}
				if x.len <= 0 {
					t.Errorf("record without payload: %v", x.raw)
				}
			}
			check := func(what string, segs []oracle.Segment, got map[segKey]bool, byRange bool, stats nwtest.Ev) {
				var want, miss int
				var ex []string
				for _, s := range segs {
					if s.PayloadLen == 0 || s.Src.Addr() != la {
						continue
					}
					want++
					if !got[segKey{s.Seq, s.Ack, s.PayloadLen}] && !(byRange && covered(got, s)) {
						miss++
						if len(ex) < 5 {
							ex = append(ex, s.String())
						}
					}
				}
				pct := 100 * float64(want-miss) / float64(max(want, 1))
				t.Logf("%s: tcpdump saw %d data segments, %d in netwatcher (%.2f%%), lost counters %d; %s",
					what, want, want-miss, pct, lost(stats), strings.Join(out, " "))
				if want < total/1500 {
					t.Errorf("%s: tcpdump saw only %d data segments", what, want)
				}
				if pct < 99 || miss > lost(stats)+nobpf {
					t.Errorf("%s: %d of %d segments missing (lost counters %d, packets no BPF program ran for %d), e.g. %v", what, miss, want, lost(stats), nobpf, ex)
				}
			}
			check("sent (veth A)", segA, sent, true, statsTx)
			check("received (veth B)", segB, recv, false, statsRx)
		})
	}
}

// covered reports whether segment s lies inside one of the records (same
// ack). Records are few per connection; a linear scan is fine for a test.
func covered(recs map[segKey]bool, s oracle.Segment) bool {
	for r := range recs {
		if r.ack != s.Ack {
			continue
		}
		if off := s.Seq - r.seq; int64(off)+int64(s.PayloadLen) <= int64(r.len) {
			return true
		}
	}
	return false
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return -1
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// TestLayerTimes: with -t every record of an established request/response
// flow has all three layer times, none negative; the namespaces are created
// after netwatcher started (the per-netns hooks must follow).
func TestLayerTimes(t *testing.T) {
	nstest.RequireRoot(t)
	run := nwtest.Start(t, "-t")
	p := nstest.NewPair(t)
	wit := witness.StartLinks(t, p.A, p.B)
	time.Sleep(time.Second) // namespace poll interval is 500 ms
	_, saddr := peer.Serve(t, p.B, "-l", addr(p.B4), "--echo")
	peer.Run(t, p.A, 30*time.Second, "rr", "-r", saddr, "-c", "2", "--size", "3000", "--duration", "2s")
	time.Sleep(200 * time.Millisecond)
	run.Stop()
	pk, _ := packets(run)
	// packets no BPF program ran for (README, "Events no BPF program
	// sees"): each may cost a stamp; 0 in most runs
	nobpf := int(wit.Missed(t))
	var n, bad int
	var lay [2][3][]float64
	for _, x := range pk {
		if x.src.Addr() != p.A4 && x.src.Addr() != p.B4 {
			continue
		}
		n++
		if x.mac < 0 || x.ip < 0 || x.tcp < 0 {
			bad++
			if bad < 5 {
				t.Logf("incomplete: %v", x.raw)
			}
			continue
		}
		r := 0
		if x.rx {
			r = 1
		}
		lay[r][0] = append(lay[r][0], x.mac)
		lay[r][1] = append(lay[r][1], x.ip)
		lay[r][2] = append(lay[r][2], x.tcp)
	}
	t.Logf("%d records; medians ns send mac/ip/tcp %.0f/%.0f/%.0f receive %.0f/%.0f/%.0f", n,
		median(lay[0][0]), median(lay[0][1]), median(lay[0][2]), median(lay[1][0]), median(lay[1][1]), median(lay[1][2]))
	if n < 100 {
		t.Fatalf("only %d packet records of the flow", n)
	}
	if bad > nobpf {
		t.Errorf("%d of %d records miss a layer time (packets no BPF program ran for: %d)", bad, n, nobpf)
	}
}

// TestTBFQueueing: a tbf qdisc on the sending veth delays packets between
// the device queue and the driver: send-side mac_time grows by about the
// queueing delay, ip_time does not.
func TestTBFQueueing(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	noOffload(t, p)
	run := nwtest.Start(t, "-t")
	srv, saddr := peer.Serve(t, p.B, "-l", addr(p.B4), "--sink")
	const bytes = 300 << 10
	flow := func() {
		peer.Run(t, p.A, 30*time.Second, "bulk", "-r", saddr, "--bytes", fmt.Sprint(bytes))
		srv.Expect("RECEIVED", 20*time.Second)
	}
	flow()
	time.Sleep(200 * time.Millisecond)
	cut := len(run.Events())
	p.TBF(t, true, "8mbit", "4kb", "100ms")
	start := time.Now()
	flow()
	elapsed := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	run.Stop()
	all := run.Events()
	sel := func(evs []nwtest.Ev) (mac, ip, tcp []float64) {
		for _, e := range evs {
			if e.Str("type") != "packet" || e.Num("rx") != 0 || !strings.HasPrefix(e.Str("src"), p.A4.String()+":") {
				continue
			}
			if v := e.Num("mac_time_ns"); v >= 0 {
				mac = append(mac, v)
			}
			if v := e.Num("ip_time_ns"); v >= 0 {
				ip = append(ip, v)
			}
			if v := e.Num("tcp_time_ns"); v >= 0 {
				tcp = append(tcp, v)
			}
		}
		return
	}
	m0, i0, t0 := sel(all[:cut])
	m1, i1, t1 := sel(all[cut:])
	// 300 KB at 8 Mbit/s take ~300 ms; TCP keeps the tbf queue (limit:
	// 100 ms at 8 Mbit/s = 100 KB) mostly full, so packets wait tens of ms.
	t.Logf("without tbf: n=%d median mac %.0f ip %.0f tcp %.0f ns; with tbf (%v): n=%d median mac %.0f ip %.0f tcp %.0f ns",
		len(m0), median(m0), median(i0), median(t0), elapsed, len(m1), median(m1), median(i1), median(t1))
	if len(m0) < 5 || len(m1) < 5 {
		t.Fatalf("too few send records with mac_time: %d, %d", len(m0), len(m1))
	}
	// Tolerances leave room for a loaded 2-core machine (race builds,
	// parallel tests): the queueing delay is tens of ms, the rest µs.
	if mb, mt := median(m0), median(m1); mb > 5e6 || mt-mb < 10e6 || mt > 300e6 {
		t.Errorf("mac_time median %.0f ns -> %.0f ns, want to grow by 10..300 ms", mb, mt)
	}
	if ib, it := median(i0), median(i1); ib > 5e6 || it > 5e6 {
		t.Errorf("ip_time median %.0f ns -> %.0f ns, want both < 5 ms (tbf sits after the device queue)", ib, it)
	}
}

// TestPortFilter: -d / -s select connections in the kernel: records of
// other ports are never produced (not only not printed).
func TestPortFilter(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	_, s1 := peer.Serve(t, p.B, "-l", addr(p.B4), "--sink")
	_, s2 := peer.Serve(t, p.B, "-l", addr(p.B4), "--sink")
	port := func(s string) uint16 { return netip.MustParseAddrPort(s).Port() }
	for _, tc := range []struct {
		flag string
		want func(x pkt) bool
	}{
		{"-d", func(x pkt) bool { return x.dst.Port() == port(s1) }},
		{"-s", func(x pkt) bool { return x.src.Port() == port(s1) }},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			run := nwtest.Start(t, tc.flag, fmt.Sprint(port(s1)))
			peer.Run(t, p.A, 30*time.Second, "bulk", "-r", s1, "--bytes", "200000")
			peer.Run(t, p.A, 30*time.Second, "bulk", "-r", s2, "--bytes", "2000000")
			time.Sleep(300 * time.Millisecond)
			run.Stop()
			pk, stats := packets(run)
			var good int
			for _, x := range pk {
				if !tc.want(x) {
					t.Errorf("record of an unselected connection: %v", x.raw)
					continue
				}
				good++
			}
			if good == 0 {
				t.Fatal("no record of the selected connection")
			}
			// Kernel filtering: the ring carried about what was printed,
			// not the ~10x more segments of the other connection.
			if ev := int(stats.Num("events")); ev > len(pk)+100 {
				t.Errorf("ring carried %d events for %d printed records: filtered in user space?", ev, len(pk))
			}
		})
	}
}

// TestLoopback: loopback (IPv4 and IPv6) in a namespace: every payload byte
// is in exactly the sent and the received records, with all layer times.
func TestLoopback(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NewNS(t)
	wit := witness.StartLinks(t, ns)
	run := nwtest.Start(t, "-t")
	const total = 4 << 20
	srv4, s4 := peer.Serve(t, ns, "-l", "127.0.0.1:0", "--sink")
	srv6, s6 := peer.Serve(t, ns, "-l", "[::1]:0", "--sink")
	for _, s := range []struct {
		p    *peer.Proc
		addr string
	}{{srv4, s4}, {srv6, s6}} {
		peer.Run(t, ns, 30*time.Second, "bulk", "-r", s.addr, "--bytes", fmt.Sprint(total))
		s.p.Expect("RECEIVED", 10*time.Second)
	}
	time.Sleep(200 * time.Millisecond)
	run.Stop()
	pk, stats := packets(run)
	// packets no BPF program ran for (README, "Events no BPF program
	// sees"): each may cost a record (at most 64 KiB of payload on
	// loopback) or a stamp; 0 in most runs
	nobpf := int(wit.Missed(t))
	// Short connections: their records are often read before their open
	// event; every one must still get its connection's addresses.
	if n := stats.Num("packets_without_addrs"); n != 0 {
		t.Errorf("%v packet lines without addresses: %v", n, stats)
	}
	for _, s := range []string{s4, s6} {
		srv := netip.MustParseAddrPort(s)
		var sent, recv, n, incomplete, again int
		// A retransmitted segment is recorded again (it was sent and
		// received again): count its bytes once, by sequence number.
		seen := map[struct {
			rx  bool
			seq uint32
		}]bool{}
		for _, x := range pk {
			if (!x.rx && x.dst == srv) || (x.rx && x.src == srv) {
				k := struct {
					rx  bool
					seq uint32
				}{x.rx, x.seq}
				if seen[k] {
					again++
					continue
				}
				seen[k] = true
			}
			switch {
			case !x.rx && x.dst == srv:
				sent += x.len
			case x.rx && x.src == srv:
				recv += x.len
			default:
				continue
			}
			n++
			if x.mac < 0 || x.ip < 0 || x.tcp < 0 {
				incomplete++
			}
		}
		t.Logf("%s: %d records (+%d retransmitted), sent %d received %d bytes, %d without every layer time", s, n, again, sent, recv, incomplete)
		if short := 2*total - sent - recv; sent > total || recv > total || short > nobpf<<16 {
			t.Errorf("%s: sent %d received %d bytes in records, want %d each (packets no BPF program ran for: %d)", s, sent, recv, total, nobpf)
		} else if short > 0 {
			t.Logf("NOTE: %s: %d bytes without a record: no BPF program ran for them", s, short)
		}
		if incomplete*100 > n {
			t.Errorf("%s: %d of %d records miss a layer time", s, incomplete, n)
		}
	}
}
