package dns_test

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
)

// server runs dnsmasq in p.B on B4 and B6, port 53, serving a local zone
// nwtest (a name outside the records below is NXDOMAIN: --local), and
// returns its pid. Killed at cleanup (the namespace's commands are).
func server(t *testing.T, p *nstest.Pair) int {
	t.Helper()
	big := strings.Repeat("x", 200)
	cmd := p.B.Cmd("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--user=root", "--group=root", "--pid-file=", "--bind-interfaces",
		"--listen-address="+p.B4.String(), "--listen-address="+p.B6.String(), "--port=53",
		"--local=/nwtest/", "--host-record=h.nwtest,10.1.2.3,fd00::123", "--txt-record=t.nwtest,hello",
		"--mx-host=nwtest,mail.nwtest,10", "--txt-record=big.nwtest,"+big+","+big+","+big)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		out, err := p.A.Cmd("dig", "+short", "+tries=1", "+time=1", "@"+p.B4.String(), "h.nwtest", "A").Output()
		if err == nil && strings.TrimSpace(string(out)) == "10.1.2.3" {
			break
		}
		if i == 50 {
			t.Fatalf("dnsmasq does not answer: %v %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cmd.Process.Pid
}

// digResult is what dig says of one query.
type digResult struct {
	pid         int
	name, qtype string
	server      netip.Addr
	tcp         bool
	status      string
	id          int
	answers     int
	queryTimeMs int
	clientPort  int
}

var (
	reHeader  = regexp.MustCompile(`status: ([A-Z]+), id: (\d+)`)
	reAnswers = regexp.MustCompile(`ANSWER: (\d+),`)
	reTime    = regexp.MustCompile(`Query time: (\d+) msec`)
)

func dig(t *testing.T, p *nstest.Pair, server netip.Addr, name, qtype string, tcp bool) digResult {
	t.Helper()
	args := []string{"+tries=1", "+time=5", "@" + server.String(), name, qtype}
	if tcp {
		args = append(args, "+tcp")
	}
	cmd := p.A.Cmd("dig", args...)
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("dig %v: %v\n%s", args, err, out.String())
	}
	s := out.String()
	h, a, qt := reHeader.FindStringSubmatch(s), reAnswers.FindStringSubmatch(s), reTime.FindStringSubmatch(s)
	if h == nil || a == nil || qt == nil {
		t.Fatalf("dig output not understood:\n%s", s)
	}
	r := digResult{pid: cmd.Process.Pid, name: name + ".", qtype: qtype, server: server, tcp: tcp, status: h[1]}
	r.id, _ = strconv.Atoi(h[2])
	r.answers, _ = strconv.Atoi(a[1])
	r.queryTimeMs, _ = strconv.Atoi(qt[1])
	return r
}

// udpKey: a DNS datagram on the wire.
type udpKey struct {
	src, dst netip.AddrPort
	id       int
}

var reUDP = regexp.MustCompile(`^(\d+)\.(\d{6}) IP6? (\S+)\.(\d+) > (\S+)\.(\d+): (\d+)[ +*%-]`)

// udpCapture reads the DNS datagrams of a capture through tcpdump's own
// decoder (its text: time, addresses, the DNS id): the first time each
// (src, dst, id) was seen.
func udpCapture(t *testing.T, path string) map[udpKey]time.Time {
	t.Helper()
	out, err := exec.Command("tcpdump", "-r", path, "-n", "-tt", "udp").Output()
	if err != nil {
		t.Fatalf("tcpdump -r: %v", err)
	}
	m := map[udpKey]time.Time{}
	for _, l := range strings.Split(string(out), "\n") {
		f := reUDP.FindStringSubmatch(l)
		if f == nil {
			continue
		}
		sec, _ := strconv.ParseInt(f[1], 10, 64)
		us, _ := strconv.ParseInt(f[2], 10, 64)
		sa, _ := netip.ParseAddr(f[3])
		sp, _ := strconv.Atoi(f[4])
		da, _ := netip.ParseAddr(f[5])
		dp, _ := strconv.Atoi(f[6])
		id, _ := strconv.Atoi(f[7])
		k := udpKey{netip.AddrPortFrom(sa, uint16(sp)), netip.AddrPortFrom(da, uint16(dp)), id}
		if _, ok := m[k]; !ok {
			m[k] = time.Unix(sec, us*1000)
		}
	}
	return m
}

func proto(tcp bool) string {
	if tcp {
		return "tcp"
	}
	return "udp"
}

// TestDNSAgainstDig: dig in one namespace asks dnsmasq in another, over a
// veth, 20 queries (A, AAAA, TXT, MX and one NXDOMAIN; UDP and TCP; to the
// server's IPv4 and IPv6 address). netwatcher -N (host-wide) must report
// exactly one answered pair per query at each end, with dig's id, qname,
// qtype, status and answer count; the client's latency at most dig's
// "Query time" (whole ms, truncated) + 1 ms, the server's no more than the
// client's; the per-process counters at exit exact (each dig's pid: 1
// query; dnsmasq's: all of them, NXDOMAIN 4), dns.log one line per pair.
func TestDNSAgainstDig(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "dnsmasq", "dig")
	p := nstest.NewPair(t)
	dnsmasqPid := server(t, p)
	nsA, nsB := float64(p.A.Inode(t)), float64(p.B.Inode(t))
	nw := nwtest.Start(t, "-N")

	type want struct{ name, qtype, status string }
	queries := []want{{"h.nwtest", "A", "NOERROR"}, {"h.nwtest", "AAAA", "NOERROR"}, {"t.nwtest", "TXT", "NOERROR"},
		{"nwtest", "MX", "NOERROR"}, {"nope.nwtest", "A", "NXDOMAIN"}}
	capture := oracle.StartTcpdump(t, p.A, p.IfA, "port 53")
	var digs []digResult
	for _, srv := range []netip.Addr{p.B4, p.B6} {
		for _, tcp := range []bool{false, true} {
			for _, q := range queries {
				r := dig(t, p, srv, q.name, q.qtype, tcp)
				if r.status != q.status {
					t.Fatalf("dig %s %s: status %s, want %s", q.name, q.qtype, r.status, q.status)
				}
				digs = append(digs, r)
			}
		}
	}
	ours := func(e nwtest.Ev) bool {
		return e.Str("type") == "dns" && (e.Num("netns") == nsA || e.Num("netns") == nsB)
	}
	nw.WaitFor(15*time.Second, "all pairs", func(nwtest.Ev) bool { return len(nw.Find(ours)) >= 2*len(digs) })
	time.Sleep(200 * time.Millisecond) // anything extra would show now
	nw.Stop()
	segs := capture.Stop()

	evs := nw.Find(ours)
	if len(evs) != 2*len(digs) {
		t.Errorf("%d dns records in the test's namespaces, want %d", len(evs), 2*len(digs))
	}
	maxDig, maxWire := math.Inf(-1), 0.0
	udp := udpCapture(t, capture.Path)
	for _, d := range digs {
		var client, server []nwtest.Ev
		for _, e := range evs {
			if int(e.Num("id")) != d.id || e.Str("proto") != proto(d.tcp) {
				continue
			}
			if e.Str("side") == "client" {
				client = append(client, e)
			} else {
				server = append(server, e)
			}
		}
		what := fmt.Sprintf("%s %s %s @%s id %d", proto(d.tcp), d.qtype, d.name, d.server, d.id)
		if len(client) != 1 || len(server) != 1 {
			t.Errorf("%s: %d client and %d server records, want 1 each", what, len(client), len(server))
			continue
		}
		c, s := client[0], server[0]
		for _, e := range []nwtest.Ev{c, s} {
			if e.Str("event") != "answer" || e.Str("qname") != d.name || e.Str("qtype") != d.qtype ||
				e.Str("rcode") != d.status || int(e.Num("answers")) != d.answers || e.Num("tc") != 0 {
				t.Errorf("%s: %v", what, e)
			}
		}
		// src is the local end: the client's address at the client side
		cs, _ := netip.ParseAddrPort(c.Str("src"))
		cd, _ := netip.ParseAddrPort(c.Str("dst"))
		ss, _ := netip.ParseAddrPort(s.Str("src"))
		sd, _ := netip.ParseAddrPort(s.Str("dst"))
		if c.Num("netns") != nsA || s.Num("netns") != nsB || cd != netip.AddrPortFrom(d.server, 53) || ss != cd || sd != cs {
			t.Errorf("%s: client %s -> %s (netns %v), server %s -> %s (netns %v)", what, cs, cd, c.Num("netns"), ss, sd, s.Num("netns"))
		}
		if int(c.Num("pid")) != d.pid {
			t.Errorf("%s: client pid %v, dig's %d", what, c.Num("pid"), d.pid)
		}
		if s.Str("comm") != "dnsmasq" || (!d.tcp && int(s.Num("pid")) != dnsmasqPid) {
			// over TCP dnsmasq answers from a child it forks per connection
			t.Errorf("%s: server pid %v comm %q, dnsmasq's %d", what, s.Num("pid"), s.Str("comm"), dnsmasqPid)
		}
		// The server's time is inside the client's. The wire is the
		// oracle: the capture on the client's veth, from the query to
		// the response (the client's stamps are just before and just
		// after the veth). dig's "Query time" too, whole ms, truncated
		// (+1 ms): over UDP the client's latency is within it (+1 ms of
		// slack for a loaded machine); over TCP dig's clock starts when
		// its network thread reports the send done, which can come much
		// later than the send (seen: 3.3 ms at both ends, dig 0 ms,
		// dnsmasq forking per connection): not a bound there.
		lc, ls := c.Num("latency_ns"), s.Num("latency_ns")
		if lc <= 0 || ls <= 0 || ls > lc {
			t.Errorf("%s: latency client %vns server %vns", what, lc, ls)
		}
		if !d.tcp {
			if lc > float64(d.queryTimeMs+2)*1e6 {
				t.Errorf("%s: latency client %vns, dig %d ms", what, lc, d.queryTimeMs)
			}
			maxDig = max(maxDig, lc-float64(d.queryTimeMs+1)*1e6)
		}
		var qt, rt time.Time
		if d.tcp {
			for i := range segs {
				g := &segs[i]
				if g.PayloadLen > 0 && g.Src == cs && g.Dst == cd && qt.IsZero() {
					qt = g.TS
				}
				if g.PayloadLen > 0 && g.Src == cd && g.Dst == cs && rt.IsZero() {
					rt = g.TS
				}
			}
		} else {
			qt, rt = udp[udpKey{cs, cd, d.id}], udp[udpKey{cd, cs, d.id}]
		}
		if qt.IsZero() || rt.IsZero() {
			t.Errorf("%s: query or response not in the capture", what)
			continue
		}
		wire := float64(rt.Sub(qt).Nanoseconds())
		if wire > lc+100e3 || lc > wire+1e6 {
			t.Errorf("%s: latency client %vns, on the wire %vns", what, lc, wire)
		}
		maxWire = max(maxWire, math.Abs(lc-wire))
	}
	t.Logf("client latency: |latency - wire| at most %.3f ms; UDP: latency - (dig's Query time + 1 ms) at most %.3f ms", maxWire/1e6, maxDig/1e6)

	// Counters at exit: each dig asked once; dnsmasq answered all.
	var dnsmasqQueries, dnsmasqNX float64
	counted := map[int]bool{}
	for _, e := range nw.Find(func(e nwtest.Ev) bool { return e.Str("type") == "dns_counters" && e.Str("event") == "exit" }) {
		pid := int(e.Num("pid"))
		rc, _ := e["rcodes"].(map[string]any)
		if e.Str("comm") == "dnsmasq" && e.Str("side") == "server" {
			dnsmasqQueries += e.Num("queries")
			if e.Num("queries") != e.Num("answered") || e.Num("unanswered")+e.Num("unmatched") != 0 {
				t.Errorf("dnsmasq counters %v", e)
			}
			if n, ok := rc["NXDOMAIN"].(float64); ok {
				dnsmasqNX += n
			}
		}
		for _, d := range digs {
			if d.pid != pid {
				continue
			}
			counted[pid] = true
			want := map[string]any{d.status: 1.0}
			if e.Str("side") != "client" || e.Num("queries") != 1 || e.Num("answered") != 1 || e.Num("unanswered") != 0 ||
				e.Num("unmatched") != 0 || fmt.Sprint(rc) != fmt.Sprint(want) {
				t.Errorf("dig %d counters %v, want 1 query %s", pid, e, d.status)
			}
		}
	}
	if len(counted) != len(digs) || dnsmasqQueries != float64(len(digs)) || dnsmasqNX != 4 {
		t.Errorf("counters for %d of %d digs; dnsmasq %v queries, %v NXDOMAIN (want %d, 4)", len(counted), len(digs), dnsmasqQueries, dnsmasqNX, len(digs))
	}

	// dns.log: 0600, one line per pair (the test's namespaces), its format
	st, err := os.Lstat(filepath.Join(nw.DataDir, "dns.log"))
	if err != nil || st.Mode().Perm() != 0o600 || !st.Mode().IsRegular() {
		t.Fatalf("dns.log: %v %v", st, err)
	}
	var lines int
	reLine := regexp.MustCompile(`^dns\{netns="(\d+)",sock="0x[0-9a-f]+",src="[^"]+",dst="[^"]+",pid="\d+",comm="[^"]+",event="answer",side="(client|server)",proto="(udp|tcp)",id="\d+",qname="[a-z.]+",qtype="[A-Z]+",rcode="[A-Z]+",answers="\d+",tc="0",latency="\d+\.\d{3}",conn_id="[-0-9]+"\}$`)
	for _, l := range strings.Split(nw.File("dns.log"), "\n") {
		if !strings.Contains(l, fmt.Sprintf(`netns="%d"`, int(nsA))) && !strings.Contains(l, fmt.Sprintf(`netns="%d"`, int(nsB))) {
			continue
		}
		if strings.HasPrefix(l, "dns{") {
			lines++
			if !reLine.MatchString(l) {
				t.Errorf("dns.log line %q", l)
			}
		}
	}
	if lines != 2*len(digs) {
		t.Errorf("dns.log: %d lines of the test's namespaces, want %d", lines, 2*len(digs))
	}
}

// TestDNSTruncatedFilteredWithSeedFlags: with -d 53 (remote port 53: the
// client ends only) and the seed flags -tixre, a TXT answer too big for a
// 512-byte UDP response (dig +noedns) comes back with TC set, and dig asks
// again over TCP: one UDP pair with tc 1 and one TCP pair with the answer
// (one TXT record of three strings: a response longer than the 512 bytes
// the kernel copies, its header and question in them); no server-side
// record. A query to an address where nothing listens is reported
// unanswered at exit, and counted so.
func TestDNSTruncatedFilteredWithSeedFlags(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "dnsmasq", "dig")
	p := nstest.NewPair(t)
	server(t, p)
	nsA, nsB := float64(p.A.Inode(t)), float64(p.B.Inode(t))
	nw := nwtest.Start(t, "-N", "-d", "53", "-tixre")

	cmd := p.A.Cmd("dig", "+noedns", "+tries=1", "+time=5", "@"+p.B4.String(), "big.nwtest", "TXT")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "Truncated, retrying in TCP mode") || !strings.Contains(string(out), "ANSWER: 1,") {
		t.Fatalf("dig: %v\n%s", err, out)
	}
	pid := float64(cmd.Process.Pid)
	ours := func(e nwtest.Ev) bool {
		return e.Str("type") == "dns" && (e.Num("netns") == nsA || e.Num("netns") == nsB)
	}
	nw.WaitFor(15*time.Second, "both pairs", func(nwtest.Ev) bool { return len(nw.Find(ours)) >= 2 })
	// A query nobody answers (an address of B's where nothing listens:
	// the port unreachable ends dig): reported unanswered at exit.
	silent := p.B4.Next()
	p.B.Run(t, "ip", "addr", "add", silent.String()+"/24", "dev", p.IfB)
	lost := p.A.Cmd("dig", "+tries=1", "+time=1", "@"+silent.String(), "h.nwtest", "A")
	lost.Run() // fails: no server
	time.Sleep(200 * time.Millisecond)
	nw.Stop()
	evs := nw.Find(ours)
	if len(evs) != 3 {
		t.Fatalf("%d records, want 3: %v", len(evs), evs)
	}
	if u := evs[2]; u.Str("event") != "unanswered" || u.Str("side") != "client" || u.Num("pid") != float64(lost.Process.Pid) ||
		u.Str("dst") != netip.AddrPortFrom(silent, 53).String() || u.Str("qname") != "h.nwtest." || u.Has("rcode") || u["latency_ns"] != nil {
		t.Errorf("unanswered %v", u)
	}
	for _, e := range nw.Find(func(e nwtest.Ev) bool { return e.Str("type") == "dns_counters" && e.Str("event") == "exit" }) {
		if e.Num("pid") == float64(lost.Process.Pid) && (e.Num("queries") != 1 || e.Num("unanswered") != 1 || e.Num("answered") != 0) {
			t.Errorf("counters of the unanswered dig: %v", e)
		}
	}
	evs = evs[:2]
	for _, e := range evs {
		tc := e.Str("proto") == "udp"
		if e.Str("side") != "client" || e.Num("netns") != nsA || e.Str("event") != "answer" || e.Num("pid") != pid ||
			e.Str("qname") != "big.nwtest." || e.Str("qtype") != "TXT" || e.Str("rcode") != "NOERROR" ||
			(e.Num("tc") == 1) != tc || (tc && e.Num("answers") > 1) || (!tc && e.Num("answers") != 1) {
			t.Errorf("record %v", e)
		}
	}
	if evs[0].Str("proto") != "udp" || evs[1].Str("proto") != "tcp" {
		t.Errorf("UDP then TCP expected: %v", evs)
	}
}
