package netfilter_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/netfilter"
	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
)

func requireNF(t *testing.T) {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "nft")
	if !netfilter.ByLinks() {
		t.Skip("no netfilter BPF links (6.4+) on this kernel: these tests time the links' hooks")
	}
}

// nftTable loads an inet table named nwt_nf into ns with one input chain
// holding rules (each a rule's text), replacing any earlier one.
func nftTable(t *testing.T, ns *nstest.NS, rules []string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("table inet nwt_nf\ndelete table inet nwt_nf\ntable inet nwt_nf {\n chain in {\n  type filter hook input priority 0; policy accept;\n")
	for _, r := range rules {
		b.WriteString("  " + r + "\n")
	}
	b.WriteString(" }\n}\n")
	script := filepath.Join(t.TempDir(), "nf.nft")
	if err := os.WriteFile(script, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "nft", "-f", script)
}

// nftCounter reads the packets counter of the rule with comment c.
func nftCounter(t *testing.T, ns *nstest.NS, c string) uint64 {
	t.Helper()
	re := regexp.MustCompile(`counter packets (\d+) bytes \d+ .*comment "` + c + `"`)
	m := re.FindStringSubmatch(ns.Run(t, "nft", "list", "table", "inet", "nwt_nf"))
	if m == nil {
		t.Fatalf("nft counter %q not found", c)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// udpSink opens a UDP socket in ns on port that reads and discards.
func udpSink(t *testing.T, ns *nstest.NS, port uint16) {
	t.Helper()
	var conns []*net.UDPConn
	err := ns.Do(func() error {
		for _, nw := range []string{"udp4", "udp6"} {
			c, err := net.ListenUDP(nw, &net.UDPAddr{Port: int(port)})
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		t.Cleanup(func() { c.Close() })
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
}

// sendUDP sends n datagrams of 100 bytes from ns to dst, paced a little so
// that each is handled on its own.
func sendUDP(t *testing.T, ns *nstest.NS, dst netip.AddrPort, n int) {
	t.Helper()
	err := ns.Do(func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 100)
		for i := 0; i < n; i++ {
			if _, err := c.Write(buf); err != nil {
				return err
			}
			if i%20 == 19 {
				time.Sleep(time.Millisecond)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// nfRecords returns the netfilter records of namespace inode to dst.
func nfRecords(r *nwtest.Run, inode uint64, dst netip.AddrPort) []nwtest.Ev {
	return r.Find(func(e nwtest.Ev) bool {
		return e.Str("type") == "netfilter" && e.Num("netns") == float64(inode) && e.Str("dst") == dst.String()
	})
}

// waitRecords waits until want records of inode to dst exist (or 15 s
// passed), then a little longer so that extra records show.
func waitRecords(t *testing.T, r *nwtest.Run, inode uint64, dst netip.AddrPort, want int) []nwtest.Ev {
	deadline := time.Now().Add(15 * time.Second)
	for len(nfRecords(r, inode, dst)) < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	return nfRecords(r, inode, dst)
}

// hookNs is the time of hook in a record (-1: not crossed).
func hookNs(e nwtest.Ev, hook string) float64 {
	h, _ := e["hooks"].(map[string]any)
	v, ok := h[hook].(float64)
	if !ok {
		return -1
	}
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// The oracle: an nft input chain of 1, then 300, then 2,000 non-matching
// rules on the receiver's path. The median LOCAL_IN time of a datagram
// grows with the rule count, by a clear factor at each step (nftables
// evaluates a chain's rules one by one for every packet), for IPv4 and
// IPv6; PRE_ROUTING, where no chain hooks, does not follow it.
func TestLocalInTimeGrowsWithRules(t *testing.T) {
	requireNF(t)
	p := nstest.NewPair(t)
	r := nwtest.Start(t, "-n", "-D", p.B4.String(), "-D", p.B6.String())
	port := lab.RandPort()
	udpSink(t, p.B, port)
	inode := p.B.Inode(t)
	const n = 150
	steps := []int{1, 300, 2000}
	med := map[string][]float64{}
	for _, rules := range steps {
		rs := make([]string, rules)
		for i := range rs {
			rs[i] = fmt.Sprintf("udp dport %d counter", 1+i) // never our port (>= 20000)
		}
		nftTable(t, p.B, rs)
		for _, dst := range []netip.AddrPort{netip.AddrPortFrom(p.B4, port), netip.AddrPortFrom(p.B6, port)} {
			before := len(nfRecords(r, inode, dst))
			sendUDP(t, p.A, dst, n)
			evs := waitRecords(t, r, inode, dst, before+n)[before:]
			var in, pre []float64
			for _, e := range evs {
				if e.Str("verdict") != "accept" || hookNs(e, "LOCAL_IN") < 0 || hookNs(e, "PRE_ROUTING") < 0 {
					continue
				}
				in = append(in, hookNs(e, "LOCAL_IN"))
				pre = append(pre, hookNs(e, "PRE_ROUTING"))
			}
			if len(in) < n*9/10 {
				t.Fatalf("%d rules, %s: %d records with PRE_ROUTING and LOCAL_IN, sent %d", rules, dst, len(in), n)
			}
			fam := "ipv4"
			if dst.Addr().Is6() {
				fam = "ipv6"
			}
			med[fam] = append(med[fam], median(in))
			t.Logf("%s, %4d rules: %d records, median LOCAL_IN %.0f ns, PRE_ROUTING %.0f ns", fam, rules, len(in), median(in), median(pre))
			if rules == steps[len(steps)-1] && median(pre)*3 > median(in) {
				t.Errorf("%s: PRE_ROUTING median %.0f ns is not small next to LOCAL_IN's %.0f ns with %d input rules", fam, median(pre), median(in), rules)
			}
		}
	}
	for fam, m := range med {
		for i := 1; i < len(m); i++ {
			if m[i] < 1.5*m[i-1] {
				t.Errorf("%s: median LOCAL_IN %.0f ns with %d rules is not 1.5x the %.0f ns with %d", fam, m[i], steps[i], m[i-1], steps[i-1])
			}
		}
		if m[len(m)-1] < 5*m[0] {
			t.Errorf("%s: median LOCAL_IN %.0f ns with %d rules is not 5x the %.0f ns with %d", fam, m[len(m)-1], steps[len(m)-1], m[0], steps[0])
		}
	}
}

// A drop rule in the input chain: one record per dropped datagram, verdict
// drop in LOCAL_IN with the kernel's NETFILTER_DROP, as many as the rule's
// own counter; IPv4 and IPv6; with the tp_btf drop hook and its raw_tp twin.
func TestDropRuleRecords(t *testing.T) {
	requireNF(t)
	for _, avoid := range []string{"", "tp_btf"} {
		t.Run("avoid="+avoid, func(t *testing.T) {
			t.Setenv(kernel.AvoidEnv, avoid)
			p := nstest.NewPair(t)
			r := nwtest.Start(t, "-n", "-v", "-D", p.B4.String(), "-D", p.B6.String())
			prog := "nw_nf_kfree_btf"
			if avoid != "" {
				prog = "nw_nf_kfree_raw"
			}
			port := lab.RandPort()
			nftTable(t, p.B, []string{
				fmt.Sprintf(`meta nfproto ipv4 udp dport %d counter drop comment "v4"`, port),
				fmt.Sprintf(`meta nfproto ipv6 udp dport %d counter drop comment "v6"`, port),
			})
			inode := p.B.Inode(t)
			const n = 20
			for _, dst := range []netip.AddrPort{netip.AddrPortFrom(p.B4, port), netip.AddrPortFrom(p.B6, port)} {
				sendUDP(t, p.A, dst, n)
				evs := waitRecords(t, r, inode, dst, n)
				c := "v4"
				if dst.Addr().Is6() {
					c = "v6"
				}
				got := nftCounter(t, p.B, c)
				t.Logf("%s: sent %d, nft counted %d, %d records", dst, n, got, len(evs))
				if got != n || uint64(len(evs)) != got {
					t.Errorf("%s: %d records, nft counted %d, want both %d", dst, len(evs), got, n)
				}
				for _, e := range evs {
					if e.Str("verdict") != "drop" || e.Str("drop_hook") != "LOCAL_IN" || e.Str("reason") != "NETFILTER_DROP" ||
						e.Str("proto") != "udp" || hookNs(e, "PRE_ROUTING") < 0 || hookNs(e, "LOCAL_IN") < 0 {
						t.Errorf("record: %v", e)
						break
					}
				}
			}
			r.Stop()
			if !strings.Contains(r.Stderr(), "prog="+prog) {
				t.Errorf("drop hook %s not attached", prog)
			}
			// the summary at exit counts the drops in LOCAL_IN, per family
			for _, fam := range []string{"ipv4", "ipv6"} {
				s := r.Find(func(e nwtest.Ev) bool {
					return e.Str("type") == "netfilter_summary" && e.Str("event") == "exit" && e.Str("family") == fam && e.Str("hook") == "LOCAL_IN"
				})
				if len(s) != 1 || s[0].Num("drops") < n {
					t.Errorf("%s LOCAL_IN exit summary: %v, want drops >= %d", fam, s, n)
				}
			}
			if log := r.File("netfilter.log"); !strings.Contains(log, `verdict="drop",hooks="PRE_ROUTING:`) || !strings.Contains(log, `drop_hook="LOCAL_IN",reason="NETFILTER_DROP"`) {
				t.Errorf("netfilter.log has no drop line:\n%.2000s", log)
			}
		})
	}
}

// -d keeps UDP/TCP packets with that port either way round, and nothing
// else: datagrams to another port and pings make no record. The
// namespaces are made after netwatcher started: their hooks are attached
// when they appear.
func TestPortFilter(t *testing.T) {
	requireNF(t)
	port, other := lab.RandPort(), lab.RandPort()
	for other == port {
		other = lab.RandPort()
	}
	r := nwtest.Start(t, "-n", "-d", strconv.Itoa(int(port)))
	p := nstest.NewPair(t)
	udpSink(t, p.B, port)
	udpSink(t, p.B, other)
	inode := p.B.Inode(t)
	want := netip.AddrPortFrom(p.B4, port)
	// the new namespaces are hooked by the next scan (every 500 ms)
	deadline := time.Now().Add(5 * time.Second)
	for len(nfRecords(r, inode, want)) == 0 && time.Now().Before(deadline) {
		sendUDP(t, p.A, want, 1)
		time.Sleep(100 * time.Millisecond)
	}
	base := len(nfRecords(r, inode, want))
	if base == 0 {
		t.Fatal("the namespaces made after start were not hooked within 5 s")
	}
	sendUDP(t, p.A, netip.AddrPortFrom(p.B4, other), 10)
	p.A.Run(t, "ping", "-c", "2", "-i", "0.2", p.B4.String())
	sendUDP(t, p.A, want, 10)
	evs := waitRecords(t, r, inode, want, base+10)
	if len(evs) != base+10 {
		t.Errorf("%d records to %s, want %d", len(evs), want, base+10)
	}
	for _, e := range r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "netfilter" }) {
		s, _ := netip.ParseAddrPort(e.Str("src"))
		d, _ := netip.ParseAddrPort(e.Str("dst"))
		if s.Port() != port && d.Port() != port {
			t.Errorf("record outside -d %d: %v", port, e)
			break
		}
	}
}

// With the seed flags (-tixre -a): TCP segments of a tracked connection
// carry its conn_id and owner (sent: the socket at LOCAL_OUT; received:
// the socket early demux found before LOCAL_IN), and the packet records
// with layer times are still there.
func TestTCPWithSeedFlags(t *testing.T) {
	requireNF(t)
	p := nstest.NewPair(t)
	r := nwtest.Start(t, "-n", "-tixre", "-a", "-D", p.A4.String(), "-D", p.B4.String())
	port := lab.RandPort()
	var ln net.Listener
	if err := p.B.Do(func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:n])
		}
	}()
	dst := netip.AddrPortFrom(p.B4, port)
	if err := p.A.Do(func() error {
		c, err := net.Dial("tcp4", dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 64)
		for i := 0; i < 10; i++ {
			if _, err := c.Write([]byte("ping ping ping")); err != nil {
				return err
			}
			if _, err := c.Read(buf); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	inA, inB := float64(p.A.Inode(t)), float64(p.B.Inode(t))
	pid := float64(os.Getpid())
	named := func(ns float64, first, last string) func(nwtest.Ev) bool {
		return func(e nwtest.Ev) bool {
			return e.Str("type") == "netfilter" && e.Num("netns") == ns && e.Str("proto") == "tcp" &&
				hookNs(e, first) >= 0 && hookNs(e, last) >= 0 && e["conn_id"] != nil && e.Num("pid") == pid
		}
	}
	r.WaitFor(10*time.Second, "a sent segment at LOCAL_OUT+POST_ROUTING named by its connection", named(inA, "LOCAL_OUT", "POST_ROUTING"))
	r.WaitFor(10*time.Second, "a received segment at PRE_ROUTING+LOCAL_IN named by its connection", named(inB, "PRE_ROUTING", "LOCAL_IN"))
	r.WaitFor(10*time.Second, "a packet record with layer times", func(e nwtest.Ev) bool {
		return e.Str("type") == "packet" && e.Has("ip_time_ns")
	})
	r.Stop()
	if strings.Contains(r.Stderr(), "feature unavailable") {
		t.Errorf("a concern failed:\n%s", r.Stderr())
	}
}

// A forwarded packet: A -> R -> C, R forwarding. R's record of each
// datagram has PRE_ROUTING, FORWARD and POST_ROUTING in one record; an
// nft forward chain of 1,000 non-matching rules in R makes FORWARD the
// slow hook.
func TestForwardedPacket(t *testing.T) {
	requireNF(t)
	p := nstest.NewPair(t) // A = p.A, R = p.B
	c := nstest.NewNS(t)
	ifR, ifC := fmt.Sprintf("nwfr%d", p.N), fmt.Sprintf("nwfc%d", p.N)
	(*nstest.NS)(nil).Run(t, "ip", "link", "add", "name", ifR, "netns", p.B.Name, "type", "veth", "peer", "name", ifC, "netns", c.Name)
	rAddr := netip.AddrFrom4([4]byte{100, 64 + byte(p.N>>8), byte(p.N), 1})
	cAddr := netip.AddrFrom4([4]byte{100, 64 + byte(p.N>>8), byte(p.N), 2})
	p.B.Run(t, "ip", "link", "set", ifR, "up")
	c.Run(t, "ip", "link", "set", ifC, "up")
	p.B.Run(t, "ip", "addr", "add", rAddr.String()+"/24", "dev", ifR)
	c.Run(t, "ip", "addr", "add", cAddr.String()+"/24", "dev", ifC)
	c.Run(t, "ip", "route", "add", "default", "via", rAddr.String())
	p.A.Run(t, "ip", "route", "add", cAddr.String()+"/32", "via", p.B4.String())
	p.B.Sysctl(t, "net.ipv4.ip_forward", "1")
	rules := make([]string, 1000)
	for i := range rules {
		rules[i] = fmt.Sprintf("udp dport %d counter", 1+i)
	}
	var b strings.Builder
	b.WriteString("table inet nwt_nf {\n chain forwarded {\n  type filter hook forward priority 0; policy accept;\n")
	for _, r := range rules {
		b.WriteString("  " + r + "\n")
	}
	b.WriteString(" }\n}\n")
	script := filepath.Join(t.TempDir(), "fwd.nft")
	if err := os.WriteFile(script, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	p.B.Run(t, "nft", "-f", script)

	r := nwtest.Start(t, "-n", "-D", cAddr.String())
	port := lab.RandPort()
	udpSink(t, c, port)
	dst := netip.AddrPortFrom(cAddr, port)
	const n = 50
	sendUDP(t, p.A, dst, n)
	evs := waitRecords(t, r, p.B.Inode(t), dst, n)
	var fwd, pre, post []float64
	for _, e := range evs {
		if e.Str("verdict") != "accept" || hookNs(e, "LOCAL_IN") >= 0 {
			t.Errorf("forwarded record: %v", e)
			break
		}
		fwd, pre, post = append(fwd, hookNs(e, "FORWARD")), append(pre, hookNs(e, "PRE_ROUTING")), append(post, hookNs(e, "POST_ROUTING"))
	}
	t.Logf("%d records in R; medians: PRE_ROUTING %.0f ns, FORWARD %.0f ns, POST_ROUTING %.0f ns", len(evs), median(pre), median(fwd), median(post))
	if len(evs) != n || slices.Min(pre) < 0 || slices.Min(fwd) < 0 || slices.Min(post) < 0 {
		t.Fatalf("%d records with all three hooks, want %d", len(evs), n)
	}
	if median(fwd) < 5*median(pre) || median(fwd) < 5*median(post) {
		t.Errorf("FORWARD (1,000 rules) median %.0f ns is not 5x PRE_ROUTING's %.0f or POST_ROUTING's %.0f", median(fwd), median(pre), median(post))
	}
	// C received them: its own records, PRE_ROUTING + LOCAL_IN
	if got := waitRecords(t, r, c.Inode(t), dst, n); len(got) != n {
		t.Errorf("%d records in C, want %d", len(got), n)
	}
}

// --no-packets: the summaries only, counted in the kernel: with -D the
// pair's address, the exit summaries count exactly the datagrams sent,
// once at each of the four hooks they cross; no per-packet record.
func TestSummariesOnly(t *testing.T) {
	requireNF(t)
	p := nstest.NewPair(t)
	r := nwtest.Start(t, "-n", "--no-packets", "--interval", "200ms", "-D", p.B4.String())
	port := lab.RandPort()
	udpSink(t, p.B, port)
	const n = 30
	sendUDP(t, p.A, netip.AddrPortFrom(p.B4, port), n)
	intervals := func() (sum float64) {
		for _, e := range r.Find(func(e nwtest.Ev) bool {
			return e.Str("type") == "netfilter_summary" && e.Str("event") == "interval" && e.Str("hook") == "LOCAL_IN" && e.Str("family") == "ipv4"
		}) {
			sum += e.Num("count")
		}
		return sum
	}
	for deadline := time.Now().Add(10 * time.Second); intervals() < n && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // more intervals: nothing more
	r.Stop()
	if recs := r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "netfilter" }); len(recs) > 0 {
		t.Errorf("%d per-packet records with --no-packets: %v", len(recs), recs[0])
	}
	for _, hook := range []string{"LOCAL_OUT", "POST_ROUTING", "PRE_ROUTING", "LOCAL_IN"} {
		s := r.Find(func(e nwtest.Ev) bool {
			return e.Str("type") == "netfilter_summary" && e.Str("event") == "exit" && e.Str("family") == "ipv4" && e.Str("hook") == hook
		})
		if len(s) != 1 || s[0].Num("count") != n || s[0].Num("drops") != 0 {
			t.Errorf("%s exit summary %v, want count %d", hook, s, n)
		}
	}
	if interval := intervals(); interval != n {
		t.Errorf("LOCAL_IN interval summaries count %v, want %d", interval, n)
	}
}

// Two netwatchers with -n at once: the kernel refuses a second BPF link at
// a priority a hook already has (EBUSY); the second takes the next one
// toward 0, and both see every datagram.
func TestTwoInstances(t *testing.T) {
	requireNF(t)
	p := nstest.NewPair(t)
	r1 := nwtest.Start(t, "-n", "-D", p.B4.String())
	r2 := nwtest.Start(t, "-n", "-D", p.B4.String())
	port := lab.RandPort()
	udpSink(t, p.B, port)
	dst := netip.AddrPortFrom(p.B4, port)
	const n = 10
	sendUDP(t, p.A, dst, n)
	inode := p.B.Inode(t)
	for i, r := range []*nwtest.Run{r1, r2} {
		if evs := waitRecords(t, r, inode, dst, n); len(evs) != n {
			t.Errorf("instance %d: %d records, want %d", i+1, len(evs), n)
		}
		r.Stop()
		if strings.Contains(r.Stderr(), "level=WARN") {
			t.Errorf("instance %d warned:\n%s", i+1, r.Stderr())
		}
	}
}
