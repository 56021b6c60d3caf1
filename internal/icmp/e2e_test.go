package icmp_test

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

const wait = 20 * time.Second

// icmpOf: the icmp records of namespace ns matching pred.
func icmpOf(r *nwtest.Run, ns uint64, pred func(nwtest.Ev) bool) []nwtest.Ev {
	return r.Find(func(e nwtest.Ev) bool {
		return e.Str("type") == "icmp" && uint64(e.Num("netns")) == ns && pred(e)
	})
}

// waitN waits until pred holds for n icmp records of ns (or more).
func waitN(t *testing.T, r *nwtest.Run, ns uint64, n int, what string, pred func(nwtest.Ev) bool) []nwtest.Ev {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := icmpOf(r, ns, pred)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d records, want %d; stderr:\n%s", what, len(got), n, r.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var pingLine = regexp.MustCompile(`icmp_seq=(\d+) ttl=\d+ time=([0-9.]+) ms`)

// pingTimes: ping's printed round trip per seq, in ns (µs resolution).
func pingTimes(t *testing.T, out string) map[int]float64 {
	m := map[int]float64{}
	for _, l := range pingLine.FindAllStringSubmatch(out, -1) {
		seq, _ := strconv.Atoi(l[1])
		ms, err := strconv.ParseFloat(l[2], 64)
		if err != nil {
			t.Fatalf("ping line %q: %v", l[0], err)
		}
		m[seq] = ms * 1e6
	}
	return m
}

// bySeq indexes records by their echo seq; a second record of one seq fails.
func bySeq(t *testing.T, what string, evs []nwtest.Ev) map[int]nwtest.Ev {
	t.Helper()
	m := map[int]nwtest.Ev{}
	for _, e := range evs {
		s := int(e.Num("seq"))
		if _, dup := m[s]; dup {
			t.Fatalf("%s: two records of seq %d: %v", what, s, evs)
		}
		m[s] = e
	}
	return m
}

// complete reports whether the record has every one of want.
func complete(e nwtest.Ev, want ...string) bool {
	for _, k := range want {
		if !e.Has(k) || e[k] == nil {
			return false
		}
	}
	return true
}

// times returns the record's layer times (ns), failing when one of want is
// missing (null) or negative.
func times(t *testing.T, what string, e nwtest.Ev, want ...string) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, k := range want {
		if !e.Has(k) || e[k] == nil {
			t.Fatalf("%s: %s missing: %v", what, k, e)
		}
		v := e.Num(k)
		if v < 0 {
			t.Fatalf("%s: %s = %v: %v", what, k, v, e)
		}
		m[k] = v
	}
	return m
}

// TestEchoPairedWithLayerTimes: ping -c 50 between two namespaces, IPv4
// then IPv6. On the pinging side, 50 requests sent and 50 replies received
// with ping's pid/comm and socket; on the answering side, 50 requests
// received and 50 replies sent by the kernel; every layer time the
// boundaries allow is there and non-negative. Oracles: the answering
// side's round trip (request link -> reply driver) is exactly the sum of
// its five layer times; the pinging side's round trip (request driver ->
// reply link) contains them (>=), and with the pinging side's own layer
// times around it (request IP -> driver, reply link -> copy) is within
// what ping -U printed for the same seq (its clock runs from before
// sendmsg to after recvmsg).
func TestEchoPairedWithLayerTimes(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ping")
	p := nstest.NewPair(t)
	r := nwtest.Start(t, "-I", "--no-packets")
	nsA, nsB := p.A.Inode(t), p.B.Inode(t)
	const n = 50
	for _, tc := range []struct {
		name string
		dst  netip.Addr
		src  netip.Addr
	}{{"v4", p.B4, p.A4}, {"v6", p.B6, p.A6}} {
		t.Run(tc.name, func(t *testing.T) {
			wit := witness.StartLinks(t, p.A, p.B)
			// -U: ping's clock runs from before sendmsg to after
			// recvmsg (its default, the kernel's receive stamp, is
			// taken when veth queues the reply, before the link hook)
			cmd := p.A.Cmd("ping", "-n", "-U", "-c", strconv.Itoa(n), "-i", "0.01", tc.dst.String())
			var out strings.Builder
			cmd.Stdout = &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("ping: %v: %s", err, out.String())
			}
			pid := float64(cmd.Process.Pid)
			pt := pingTimes(t, out.String())
			if len(pt) != n {
				t.Fatalf("ping printed %d replies, want %d:\n%s", len(pt), n, out.String())
			}
			mine := func(kind string, rx float64, ns uint64) func(nwtest.Ev) bool {
				return func(e nwtest.Ev) bool {
					local, remote := tc.src.String(), tc.dst.String()
					if ns == nsB {
						local, remote = remote, local
					}
					return e.Str("kind") == kind && e.Num("rx") == rx && e.Str("src") == local && e.Str("dst") == remote
				}
			}
			// packets of the pair no BPF program ran for (README,
			// "Events no BPF program sees"): each may spoil the records
			// of one echo; 0 in most runs
			nobpf := int(wit.Missed(t))
			// the pinging side's last record comes last
			waitN(t, r, nsA, n-nobpf, "replies received", mine("echo_reply", 1, nsA))
			if nobpf > 0 {
				time.Sleep(300 * time.Millisecond) // the rest, if any
			}
			spoiled := 0
			spoil := func(seq int, why string) bool {
				if spoiled < nobpf {
					spoiled++
					t.Logf("NOTE: seq %d: %s: no BPF program ran for %d packets of the pair", seq, why, nobpf)
					return true
				}
				return false
			}
			reqA := bySeq(t, "requests sent", icmpOf(r, nsA, mine("echo_request", 0, nsA)))
			repA := bySeq(t, "replies received", icmpOf(r, nsA, mine("echo_reply", 1, nsA)))
			reqB := bySeq(t, "requests received", icmpOf(r, nsB, mine("echo_request", 1, nsB)))
			repB := bySeq(t, "replies sent", icmpOf(r, nsB, mine("echo_reply", 0, nsB)))
			var minSlack = 1e18
			for seq := 1; seq <= n; seq++ {
				rq, rp, brq, brp := reqA[seq], repA[seq], reqB[seq], repB[seq]
				if rq == nil || rp == nil || brq == nil || brp == nil {
					if spoil(seq, "a record missing") {
						continue
					}
					t.Fatalf("seq %d: request sent %v, reply received %v, request received %v, reply sent %v", seq, rq, rp, brq, brp)
				}
				id := rq.Num("id")
				for _, e := range []nwtest.Ev{rp, brq, brp} {
					if e.Num("id") != id {
						t.Fatalf("seq %d: id %v, the request's %v: %v", seq, e.Num("id"), id, e)
					}
				}
				// owners: ping on the pinging side, the kernel on the other
				for _, e := range []nwtest.Ev{rq, rp} {
					if e.Num("pid") != pid || e.Str("comm") != "ping" || e.Str("owner") != "process" || e.Str("sock") == "" {
						t.Fatalf("seq %d: owner of %v, want ping pid %v with its socket", seq, e, pid)
					}
				}
				for _, e := range []nwtest.Ev{brq, brp} {
					if e.Str("owner") != "kernel" || e.Has("pid") && e["pid"] != nil {
						t.Fatalf("seq %d: %v, want the kernel as owner", seq, e)
					}
				}
				if !complete(rq, "ip_time_ns", "mac_time_ns") || !complete(rp, "mac_time_ns", "ip_time_ns", "icmp_time_ns", "rtt_ns") ||
					!complete(brq, "mac_time_ns", "ip_time_ns", "icmp_time_ns") || !complete(brp, "ip_time_ns", "mac_time_ns", "rtt_ns") {
					if spoil(seq, "a layer time missing") {
						continue
					}
				}
				sent := times(t, "request sent", rq, "ip_time_ns", "mac_time_ns")
				if rq["icmp_time_ns"] != nil {
					t.Fatalf("seq %d: request sent has an icmp_time (the send entry is not observed): %v", seq, rq)
				}
				got := times(t, "reply received", rp, "mac_time_ns", "ip_time_ns", "icmp_time_ns")
				rx := times(t, "request received", brq, "mac_time_ns", "ip_time_ns", "icmp_time_ns")
				tx := times(t, "reply sent", brp, "ip_time_ns", "mac_time_ns", "rtt_ns")
				sum := rx["mac_time_ns"] + rx["ip_time_ns"] + rx["icmp_time_ns"] + tx["ip_time_ns"] + tx["mac_time_ns"]
				if tx["rtt_ns"] != sum {
					t.Fatalf("seq %d: answering side's round trip %v ns != its layer times' sum %v ns", seq, tx["rtt_ns"], sum)
				}
				rtt := times(t, "reply received", rp, "rtt_ns")["rtt_ns"]
				if rtt < sum {
					t.Fatalf("seq %d: round trip %v ns < the answering kernel's layer times %v ns", seq, rtt, sum)
				}
				// the pinging kernel's whole path, contiguous stamps: the
				// request's IP entry -> driver, the round trip, the
				// reply's link -> copy to ping; ping's time contains
				// it (ping prints µs: allow its rounding)
				path := sent["ip_time_ns"] + sent["mac_time_ns"] + rtt + got["mac_time_ns"] + got["ip_time_ns"] + got["icmp_time_ns"]
				if path > pt[seq]+1000 {
					t.Fatalf("seq %d: the kernel's path %v ns (round trip %v ns) > ping's %v ns", seq, path, rtt, pt[seq])
				}
				minSlack = min(minSlack, pt[seq]-path)
			}
			t.Logf("%d echoes paired on both sides (%d spoiled: no BPF program ran); e.g. seq 1: kernel rtt %v ns, answering kernel %v ns, ping %v ns; smallest ping - kernel path %v ns",
				n-spoiled, spoiled, repA[1].Num("rtt_ns"), repB[1].Num("rtt_ns"), pt[1], minSlack)
		})
	}
	// icmp.log has the same records
	log := r.File("icmp.log")
	if !strings.Contains(log, `type="echo_reply"`) || !strings.Contains(log, fmt.Sprintf(`netns="%d"`, nsB)) {
		t.Fatalf("icmp.log lacks the echo lines:\n%.2000s", log)
	}
	r.Stop()
}

// udpTo sends one datagram from a bound socket in ns to dst and returns
// the socket's address.
func udpTo(t *testing.T, ns *nstest.NS, src, dst netip.AddrPort) netip.AddrPort {
	t.Helper()
	var local netip.AddrPort
	if err := ns.Do(func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(src))
		if err != nil {
			return err
		}
		defer c.Close()
		local = c.LocalAddr().(*net.UDPAddr).AddrPort()
		_, err = c.WriteToUDPAddrPort([]byte("x"), dst)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
}

// TestPortUnreachableNamesTheFlow: a UDP datagram to a closed port, v4 and
// v6: the answering kernel sends a port unreachable (owner kernel), the
// sender receives it; both records name the UDP flow it quotes (the
// sending socket's address and port -> the closed port).
func TestPortUnreachableNamesTheFlow(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	r := nwtest.Start(t, "-I", "--no-packets")
	nsA, nsB := p.A.Inode(t), p.B.Inode(t)
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
	}{{"v4", p.A4, p.B4}, {"v6", p.A6, p.B6}} {
		t.Run(tc.name, func(t *testing.T) {
			from := udpTo(t, p.A, netip.AddrPortFrom(tc.src, 0), netip.AddrPortFrom(tc.dst, 9))
			flow := func(rx float64) func(nwtest.Ev) bool {
				return func(e nwtest.Ev) bool {
					return e.Str("kind") == "port_unreachable" && e.Num("rx") == rx && e.Str("inner_src") == from.String()
				}
			}
			got := waitN(t, r, nsA, 1, "port unreachable received", flow(1))
			sent := icmpOf(r, nsB, flow(0))
			if len(got) != 1 || len(sent) != 1 {
				t.Fatalf("port unreachable: %d received, %d sent, want 1 each", len(got), len(sent))
			}
			for _, e := range []nwtest.Ev{got[0], sent[0]} {
				if e.Str("inner_proto") != "udp" || e.Str("inner_dst") != netip.AddrPortFrom(tc.dst, 9).String() {
					t.Fatalf("quoted flow: %v, want udp %v -> %v", e, from, netip.AddrPortFrom(tc.dst, 9))
				}
				times(t, "port unreachable", e, "mac_time_ns", "ip_time_ns")
			}
			if s := sent[0]; s.Str("owner") != "kernel" || s.Str("src") != tc.dst.String() || s.Str("dst") != tc.src.String() {
				t.Fatalf("sent: %v, want the kernel of %v to %v", s, tc.dst, tc.src)
			}
			if g := got[0]; g.Str("src") != tc.src.String() || g.Str("dst") != tc.dst.String() {
				t.Fatalf("received: %v, want at %v from %v", g, tc.src, tc.dst)
			}
		})
	}
	r.Stop()
}

// router builds A - R - B: R forwards between two veth links (IPv4
// 198.19.250.0/24 and 198.19.251.0/24, IPv6 fd00:4e58:fa::/64 and
// fd00:4e58:fb::/64); the R - B link has MTU 1280. It returns A, R, B and
// B's addresses.
func router(t *testing.T) (a, rt, b *nstest.NS, b4, b6 netip.Addr) {
	a, rt, b = nstest.NewNS(t), nstest.NewNS(t), nstest.NewNS(t)
	suffix := a.Name[len(a.Name)-4:]
	ifAR, ifRA, ifRB, ifBR := "ira"+suffix, "iar"+suffix, "irb"+suffix, "ibr"+suffix
	root := (*nstest.NS)(nil)
	root.Run(t, "ip", "link", "add", "name", ifAR, "netns", a.Name, "type", "veth", "peer", "name", ifRA, "netns", rt.Name)
	root.Run(t, "ip", "link", "add", "name", ifRB, "netns", rt.Name, "type", "veth", "peer", "name", ifBR, "netns", b.Name)
	for _, s := range []struct {
		ns     *nstest.NS
		ifname string
		a4, a6 string
	}{
		{a, ifAR, "198.19.250.1/24", "fd00:4e58:fa::1/64"},
		{rt, ifRA, "198.19.250.2/24", "fd00:4e58:fa::2/64"},
		{rt, ifRB, "198.19.251.1/24", "fd00:4e58:fb::1/64"},
		{b, ifBR, "198.19.251.2/24", "fd00:4e58:fb::2/64"},
	} {
		s.ns.Run(t, "ip", "link", "set", s.ifname, "up")
		s.ns.Run(t, "ip", "addr", "add", s.a4, "dev", s.ifname)
		s.ns.Run(t, "ip", "addr", "add", s.a6, "dev", s.ifname, "nodad")
	}
	rt.Run(t, "ip", "link", "set", ifRB, "mtu", "1280")
	b.Run(t, "ip", "link", "set", ifBR, "mtu", "1280")
	rt.Sysctl(t, "net.ipv4.ip_forward", "1")
	rt.Sysctl(t, "net.ipv6.conf.all.forwarding", "1")
	a.Run(t, "ip", "route", "add", "default", "via", "198.19.250.2")
	a.Run(t, "ip", "-6", "route", "add", "default", "via", "fd00:4e58:fa::2")
	b.Run(t, "ip", "route", "add", "default", "via", "198.19.251.1")
	b.Run(t, "ip", "-6", "route", "add", "default", "via", "fd00:4e58:fb::1")
	b4, b6 = netip.MustParseAddr("198.19.251.2"), netip.MustParseAddr("fd00:4e58:fb::2")
	// the path works (neighbours resolved before the run)
	for _, dst := range []netip.Addr{b4, b6} {
		var err error
		for try := 0; try < 5; try++ {
			if err = a.Cmd("ping", "-n", "-c1", "-W1", dst.String()).Run(); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("router path to %v: %v", dst, err)
		}
	}
	return a, rt, b, b4, b6
}

// TestErrorsThroughARouter: ping -t 1 through a router namespace: the
// router sends time exceeded, quoting the echo (id and seq of ping's
// request); ping -6 -M do -s 1300 over a 1280-byte link: the router sends
// packet too big, quoting it.
func TestErrorsThroughARouter(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ping")
	a, rt, _, b4, b6 := router(t)
	r := nwtest.Start(t, "-I", "--no-packets")
	nsA, nsR := a.Inode(t), rt.Inode(t)
	cases := []struct {
		name string
		kind string
		args []string
		dst  netip.Addr
	}{
		{"time_exceeded", "time_exceeded", []string{"-t", "1"}, b4},
		{"packet_too_big", "packet_too_big", []string{"-6", "-M", "do", "-s", "1300"}, b6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-n", "-c", "1", "-W", "1"}, tc.args...)
			args = append(args, tc.dst.String())
			_ = a.Cmd("ping", args...).Run() // fails: no reply
			quoting := func(rx float64) func(nwtest.Ev) bool {
				return func(e nwtest.Ev) bool {
					return e.Str("kind") == tc.kind && e.Num("rx") == rx && e.Str("inner_dst") == tc.dst.String()
				}
			}
			got := waitN(t, r, nsA, 1, tc.kind+" received", quoting(1))[0]
			sent := waitN(t, r, nsR, 1, tc.kind+" sent by the router", quoting(0))[0]
			req := icmpOf(r, nsA, func(e nwtest.Ev) bool {
				return e.Str("kind") == "echo_request" && e.Num("rx") == 0 && e.Str("dst") == tc.dst.String()
			})
			if len(req) != 1 {
				t.Fatalf("echo requests sent to %v: %v", tc.dst, req)
			}
			for _, e := range []nwtest.Ev{got, sent} {
				if !strings.HasPrefix(e.Str("inner_proto"), "icmp") || e.Num("inner_id") != req[0].Num("id") || e.Num("inner_seq") != req[0].Num("seq") {
					t.Fatalf("%s quotes %v, want the echo %v", tc.kind, e, req[0])
				}
			}
			if sent.Str("owner") != "kernel" {
				t.Fatalf("router's %s: owner %v", tc.kind, sent)
			}
		})
	}
	r.Stop()
}

// TestAddressFilter: -S keeps the records whose local address is in the
// network: with -S A's address, a ping from A to B is recorded in A (both
// directions) and not at all in B (local address B's).
func TestAddressFilter(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	r := nwtest.Start(t, "-I", "--no-packets", "-S", p.A4.String()+"/32")
	nsA, nsB := p.A.Inode(t), p.B.Inode(t)
	p.A.Run(t, "ping", "-n", "-c", "3", "-i", "0.01", p.B4.String())
	waitN(t, r, nsA, 3, "replies received in A", func(e nwtest.Ev) bool { return e.Str("kind") == "echo_reply" })
	if got := icmpOf(r, nsA, func(e nwtest.Ev) bool { return e.Str("kind") == "echo_request" }); len(got) != 3 {
		t.Fatalf("requests sent in A: %d, want 3", len(got))
	}
	time.Sleep(200 * time.Millisecond)
	if got := icmpOf(r, nsB, func(nwtest.Ev) bool { return true }); len(got) != 0 {
		t.Fatalf("-S %v let records of B through: %v", p.A4, got)
	}
	for _, e := range r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "icmp" }) {
		if e.Str("src") != p.A4.String() {
			t.Fatalf("-S %v: record with local address %v: %v", p.A4, e.Str("src"), e)
		}
	}
	r.Stop()
}

// TestUnansweredEchoIsRecordedLate: with echo replies off in B
// (icmp_echo_ignore_all), a request that nobody copies or answers waits in
// the kernel and is recorded by the sweep after PendingMax, its icmp_time
// missing; the exit stats count it as icmp_unfinished.
func TestUnansweredEchoIsRecordedLate(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	p.B.Sysctl(t, "net.ipv4.icmp_echo_ignore_all", "1")
	r := nwtest.Start(t, "-I", "--no-packets")
	nsB := p.B.Inode(t)
	_ = p.A.Cmd("ping", "-n", "-c", "2", "-i", "0.01", "-W", "1", p.B4.String()).Run()
	got := waitN(t, r, nsB, 2, "unanswered requests", func(e nwtest.Ev) bool {
		return e.Str("kind") == "echo_request" && e.Num("rx") == 1 && e.Str("dst") == p.A4.String()
	})
	for _, e := range got {
		times(t, "unanswered request", e, "mac_time_ns", "ip_time_ns")
		if e["icmp_time_ns"] != nil || e["owner"] != nil {
			t.Fatalf("unanswered request has an end or an owner: %v", e)
		}
	}
	r.Stop()
	st := r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "stats" })
	if len(st) != 1 || st[0].Num("icmp_unfinished") < 2 {
		t.Fatalf("stats: %v, want icmp_unfinished >= 2", st)
	}
}

// TestPortFilterOnQuotedFlow: -s applies to the local port of the flow an
// error quotes. With -s 40123 and a datagram from port 40123 to a closed
// port: the error received by the sender (the quoted packet's source port
// is its own) is recorded, the one the other side sends (its local port
// is 9) is not; echoes, which have no ports, are recorded on both sides.
func TestPortFilterOnQuotedFlow(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	r := nwtest.Start(t, "-I", "--no-packets", "-s", "40123")
	nsA, nsB := p.A.Inode(t), p.B.Inode(t)
	p.A.Run(t, "ping", "-n", "-c", "1", p.B4.String())
	udpTo(t, p.A, netip.AddrPortFrom(p.A4, 40123), netip.AddrPortFrom(p.B4, 9))
	waitN(t, r, nsA, 1, "port unreachable received", func(e nwtest.Ev) bool {
		return e.Str("kind") == "port_unreachable" && e.Str("inner_src") == netip.AddrPortFrom(p.A4, 40123).String()
	})
	for _, ns := range []uint64{nsA, nsB} {
		if got := icmpOf(r, ns, func(e nwtest.Ev) bool { return e.Str("kind") == "echo_reply" }); len(got) != 1 {
			t.Fatalf("netns %d: %d echo replies, want 1 (echoes have no ports)", ns, len(got))
		}
	}
	if got := icmpOf(r, nsB, func(e nwtest.Ev) bool { return e.Str("kind") == "port_unreachable" }); len(got) != 0 {
		t.Fatalf("-s 40123 let B's port unreachable (local port 9) through: %v", got)
	}
	r.Stop()
}
