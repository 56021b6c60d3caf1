package dropreason_test

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// dropsIn returns the drop records of namespace ns with reason and a
// destination port (0: any).
func dropsIn(r *nwtest.Run, ns *nstest.NS, t *testing.T, reason string, dport uint16) []nwtest.Ev {
	inode := float64(ns.Inode(t))
	return r.Find(func(e nwtest.Ev) bool {
		if e.Str("type") != "drop" || e.Num("netns") != inode || e.Str("reason") != reason {
			return false
		}
		if dport == 0 {
			return true
		}
		ap, err := netip.ParseAddrPort(e.Str("dst"))
		return err == nil && ap.Port() == dport
	})
}

// waitDrops waits until want records exist (or 10 s passed), then a little
// longer so that extra records show.
func waitDrops(t *testing.T, r *nwtest.Run, ns *nstest.NS, reason string, dport uint16, want int) []nwtest.Ev {
	deadline := time.Now().Add(10 * time.Second)
	for len(dropsIn(r, ns, t, reason, dport)) < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	return dropsIn(r, ns, t, reason, dport)
}

var locRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_.]*)\+0x[0-9a-f]+( \[[a-z0-9_]+\])?$`)

// isKernelText: name is a text symbol of /proc/kallsyms.
func isKernelText(t *testing.T, name string) bool {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && fs[2] == name && strings.ContainsAny(fs[1], "tTwW") {
			return true
		}
	}
	return false
}

// nftCount runs an nft table with one counted drop rule in ns and returns
// a function reading its counter.
func nftDrop(t *testing.T, ns *nstest.NS, rule string) func() uint64 {
	script := filepath.Join(t.TempDir(), "drop.nft")
	body := fmt.Sprintf("table inet nwt_dropr {\n chain in {\n  type filter hook input priority 0; policy accept;\n  %s counter drop\n }\n}\n", rule)
	if err := os.WriteFile(script, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "nft", "-f", script)
	re := regexp.MustCompile(`counter packets (\d+)`)
	return func() uint64 {
		m := re.FindStringSubmatch(ns.Run(t, "nft", "list", "table", "inet", "nwt_dropr"))
		if m == nil {
			t.Fatal("nft counter not found")
		}
		n, _ := strconv.ParseUint(m[1], 10, 64)
		return n
	}
}

// sendUDP sends n datagrams of size bytes from ns to dst.
func sendUDP(t *testing.T, ns *nstest.NS, dst netip.AddrPort, n, size int) {
	t.Helper()
	err := ns.Do(func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, size)
		for i := 0; i < n; i++ {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// (1) An nft rule drops N UDP datagrams at the receiver's input hook: N
// NETFILTER_DROP records for that flow, and the rule counted N. Also run
// with the raw_tp twin (NW_AVOID=tp_btf).
func TestNetfilterDrop(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "nft")
	for _, avoid := range []string{"", "tp_btf"} {
		t.Run("avoid="+avoid, func(t *testing.T) {
			t.Setenv(kernel.AvoidEnv, avoid)
			r := nwtest.Start(t, "-k", "-v", "--no-packets")
			prog := "nw_dropr_btf"
			if avoid != "" {
				prog = "nw_dropr_raw"
			}
			p := nstest.NewPair(t)
			port := lab.RandPort()
			counter := nftDrop(t, p.B, fmt.Sprintf("udp dport %d", port))
			// what the kernel handed to BPF programs of those drops
			wit := witness.Start(t, witness.NfDrops, uint32(p.B.Inode(t)))
			const n = 20
			sendUDP(t, p.A, netip.AddrPortFrom(p.B4, port), n, 100)
			evs := waitDrops(t, r, p.B, "NETFILTER_DROP", port, n)
			got := counter()
			wc := wit.Counts(t)
			wc.Usable(t)
			t.Logf("sent %d; nft counted %d; netwatcher: %d NETFILTER_DROP records; BPF witness %d", n, got, len(evs), wc.NfDrops)
			// netwatcher reports exactly what BPF was given; nft's count
			// less that is what no BPF program ran for (README, "Events
			// no BPF program sees"): 0 in most runs
			gap := witness.Shortfall(t, "NETFILTER_DROP drops", got, wc.NfDrops)
			if got != n || uint64(len(evs)) != wc.NfDrops {
				t.Errorf("%d records, BPF witness %d, nft counted %d (want %d)", len(evs), wc.NfDrops, got, n)
			}
			witness.Note(t, gap, "NETFILTER_DROP drops")
			for _, e := range evs {
				if e.Str("proto") != "udp" || e.Str("family") != "ipv4" ||
					e.Str("src") == "" || !strings.HasPrefix(e.Str("dst"), p.B4.String()+":") {
					t.Errorf("record %v: want udp %s -> %s:%d", e, p.A4, p.B4, port)
					break
				}
			}
			r.Stop()
			lab.CheckNoLoss(t, r)
			if !strings.Contains(r.Stderr(), "prog="+prog) {
				t.Errorf("%s not attached", prog)
			}
			if !strings.Contains(r.File("drop.log"), fmt.Sprintf(`dst="%s:%d",reason="NETFILTER_DROP",location="`, p.B4, port)) {
				t.Errorf("drop.log has no NETFILTER_DROP line for port %d", port)
			}
		})
	}
}

// (2) A UDP receiver with a tiny SO_RCVBUF that never reads, flooded:
// the records of its port with the receive-buffer reason equal the BPF
// witness's SOCKET_RCVBUFF drops exactly, and the namespace's
// UdpRcvbufErrors (Udp6RcvbufErrors for v6) delta less those is the only
// allowance (what no BPF program ran for).
func TestUDPRcvbuf(t *testing.T) {
	nstest.RequireRoot(t)
	r := nwtest.Start(t, "-k", "--no-packets")
	for _, v6 := range []bool{false, true} {
		t.Run(lab.Family(v6), func(t *testing.T) {
			ns := nstest.NewNS(t)
			addr, counter := netip.MustParseAddr("127.0.0.1"), "UdpRcvbufErrors"
			if v6 {
				addr, counter = netip.IPv6Loopback(), "Udp6RcvbufErrors"
			}
			var rc *net.UDPConn
			if err := ns.Do(func() (err error) {
				rc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
				if err != nil {
					return err
				}
				return rc.SetReadBuffer(1) // the kernel's minimum
			}); err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			dst := rc.LocalAddr().(*net.UDPAddr).AddrPort()
			// the drops handed to BPF programs
			wit := witness.Start(t, witness.Drops, uint32(ns.Inode(t)))
			before := oracle.Nstat(t, ns)
			const n = 200
			sendUDP(t, ns, dst, n, 1000)
			after := oracle.Nstat(t, ns)
			wc := wit.Counts(t)
			wc.Usable(t)
			seen := wc.Dropped("SOCKET_RCVBUFF")
			want := oracle.Delta(before, after, counter)
			evs := waitDrops(t, r, ns, "SOCKET_RCVBUFF", dst.Port(), int(seen))
			t.Logf("sent %d datagrams; %s +%d; netwatcher: %d SOCKET_RCVBUFF records; BPF witness %d", n, counter, want, len(evs), seen)
			// netwatcher reports exactly what BPF was given; the kernel's
			// count less that is what no BPF program ran for (README,
			// "Events no BPF program sees"): 0 in most runs
			gap := witness.Shortfall(t, "SOCKET_RCVBUFF drops", want, seen)
			if want == 0 || uint64(len(evs)) != seen {
				t.Errorf("%d records, BPF witness %d, %s +%d: want the witness's count, > 0", len(evs), seen, counter, want)
			}
			witness.Note(t, gap, "receive-buffer drops")
			for _, e := range evs {
				if e.Str("proto") != "udp" || e.Str("sock") == "" || e.Num("from_sock") != 0 {
					t.Errorf("record %v: want udp with the receiver's socket", e)
					break
				}
			}
		})
	}
	r.Stop()
	lab.CheckNoLoss(t, r)
}

// (3) Bad-checksum TCP segments: TCP_CSUM records equal to the BPF
// witness's TCP_CSUM drops (the receiver's TcpInCsumErrors less what no
// BPF program ran for), attributed to the connection, whose location is a real
// kernel function; with -A the first frame of the stack is that location.
func TestBadChecksumLocation(t *testing.T) {
	nstest.RequireRoot(t)
	port := lab.RandPort()
	r := nwtest.Start(t, "-k", "-A")
	p := nstest.NewPair(t)
	p.RxChecksumOff(t, true)
	c := lab.Dial(t, p, false, port, 0)
	if err := c.RoundTrip(1000, 1); err != nil {
		t.Fatal(err)
	}
	wit := witness.Start(t, witness.Drops, uint32(p.B.Inode(t)))
	before := oracle.Nstat(t, p.B)
	const n = 5
	if _, err := fault.BadCsum(lab.Ctx(t), c.Injection(t, n, "")); err != nil {
		t.Fatal(err)
	}
	// after the injected segments on the same link
	if err := c.RoundTrip(1000, 1); err != nil {
		t.Fatal(err)
	}
	csum := oracle.Delta(before, oracle.Nstat(t, p.B), "TcpInCsumErrors")
	wc := wit.Counts(t)
	wc.Usable(t)
	seen := wc.Dropped("TCP_CSUM")
	evs := waitDrops(t, r, p.B, "TCP_CSUM", port, int(seen))
	t.Logf("injected %d; TcpInCsumErrors +%d; netwatcher: %d TCP_CSUM records; BPF witness %d", n, csum, len(evs), seen)
	gap := witness.Shortfall(t, "TCP_CSUM drops", csum, seen)
	if csum != n || uint64(len(evs)) != seen || len(evs) == 0 {
		t.Fatalf("%d TCP_CSUM records, BPF witness %d, TcpInCsumErrors +%d, want the witness's count (> 0) and %d", len(evs), seen, csum, n)
	}
	witness.Note(t, gap, "bad-checksum segments")
	for _, e := range evs {
		m := locRE.FindStringSubmatch(e.Str("location"))
		if m == nil || !isKernelText(t, m[1]) {
			t.Errorf("location %q: not function+offset of a kernel function", e.Str("location"))
		}
		st, _ := e["stack"].([]any)
		if len(st) == 0 || st[0] != e.Str("location") {
			t.Errorf("stack %v: first frame is not the location %q", st, e.Str("location"))
		}
		if e.Num("conn_id") <= 0 || e.Str("src") != c.ClientAddr.String() || e.Str("dst") != c.ServerAddr.String() {
			t.Errorf("record %v: want the connection %s -> %s with its conn_id", e, c.ClientAddr, c.ServerAddr)
		}
	}
	t.Logf("location %s, stack %v", evs[0].Str("location"), evs[0]["stack"])
	r.Stop()
	lab.CheckNoLoss(t, r)
}

// (4) A listener that never accepts overflows its accept queue: its
// TCP_LISTEN_OVERFLOW records (and the per-listener summary at exit) equal
// the BPF witness's TCP_LISTEN_OVERFLOW drops, the namespace's
// TcpExtListenOverflows delta less what no BPF program ran for.
//
// Only an overflow on the handshake's last ACK is a kfree_skb drop: a SYN
// that finds the accept queue full is counted in ListenOverflows but
// consumed (consume_skb), not dropped. So the queue must fill between a
// SYN and its ACK. With backlog B (4 here; the SYN queue holds B requests
// too, and with backlog 1 only one request can wait, so no ACK can find
// the queue full) the accept queue is full above B: B connections are
// completed, then the ACKs are held back (an nft rule) while B more
// handshakes start; once the rule is gone, the server's SYN-ACK
// retransmission brings the ACKs back: the first fills the queue, every
// later one overflows.
func TestListenOverflow(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "nft")
	const backlog = 4
	r := nwtest.Start(t, "-k", "--no-packets")
	ns := nstest.NewNS(t)
	ns.Sysctl(t, "net.ipv4.tcp_syncookies", "0")
	var lfd int
	var port uint16
	if err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return err
		}
		if err := unix.Listen(fd, backlog); err != nil {
			return err
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return err
		}
		lfd, port = fd, uint16(sa.(*unix.SockaddrInet4).Port)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	// B completed connections: the queue is at its limit, not above
	var conns []net.Conn
	if err := ns.Do(func() error {
		for i := 0; i < backlog; i++ {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	nftDrop(t, ns, fmt.Sprintf("tcp dport %d tcp flags & (syn | ack) == ack", port))
	wit := witness.Start(t, witness.Drops, uint32(ns.Inode(t)))
	before := oracle.Nstat(t, ns)
	if err := ns.Do(func() error {
		d := net.Dialer{Timeout: time.Second}
		for i := 0; i < backlog; i++ {
			c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "nft", "delete", "table", "inet", "nwt_dropr")
	// the SYN-ACK retransmission (1 s) brings the ACKs back
	time.Sleep(1500 * time.Millisecond)
	for _, c := range conns {
		c.(*net.TCPConn).SetLinger(0) // RST: the server forgets the pending requests
		c.Close()
	}
	time.Sleep(300 * time.Millisecond)
	overflows := oracle.Delta(before, oracle.Nstat(t, ns), "TcpExtListenOverflows")
	wc := wit.Counts(t)
	wc.Usable(t)
	want := wc.Dropped("TCP_LISTEN_OVERFLOW")
	evs := waitDrops(t, r, ns, "TCP_LISTEN_OVERFLOW", port, int(want))
	t.Logf("%d connects; TcpExtListenOverflows +%d; netwatcher: %d TCP_LISTEN_OVERFLOW records; BPF witness %d", 2*backlog, overflows, len(evs), want)
	gap := witness.Shortfall(t, "listen overflows", overflows, want)
	witness.Note(t, gap, "listen overflows")
	if overflows == 0 || uint64(len(evs)) != want {
		t.Errorf("%d records, BPF witness %d, TcpExtListenOverflows +%d: want the witness's count, > 0", len(evs), want, overflows)
		inode := float64(ns.Inode(t))
		for _, e := range r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "drop" && e.Num("netns") == inode }) {
			t.Logf("drop in the namespace: %v", e)
		}
	}
	r.Stop()
	inode := float64(ns.Inode(t))
	sum := r.Find(func(e nwtest.Ev) bool {
		return e.Str("type") == "listen_overflow" && e.Num("netns") == inode && e.Num("port") == float64(port)
	})
	if len(sum) != 1 || uint64(sum[0].Num("drops")) != want {
		t.Errorf("listen_overflow summary %v: want one with drops = %d", sum, want)
	} else if sum[0].Num("pid") != float64(os.Getpid()) {
		t.Errorf("listen_overflow summary %v: want the listener's owner, pid %d", sum[0], os.Getpid())
	}
	lab.CheckNoLoss(t, r)
}
