package conn_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
)

const wait = 10 * time.Second

func randPort() int { return 20000 + rand.IntN(20000) }

// conn is one side of a connection as the test drove it.
type side struct {
	local, remote string
	pid           int
	server        bool
}

func isConn(what string, s side) func(nwtest.Ev) bool {
	return func(e nwtest.Ev) bool {
		return e.Str("type") == "connection" && e.Str("event") == what &&
			e.Str("src") == s.local && e.Str("dst") == s.remote
	}
}

// checkSide verifies pid/comm/is_server of the last event about s.
func checkSide(t *testing.T, r *nwtest.Run, s side) nwtest.Ev {
	t.Helper()
	open := r.WaitFor(wait, "open "+s.local, func(e nwtest.Ev) bool {
		return isConn("open", s)(e) || isConn("exists", s)(e)
	})
	// The accepted side's owner may be refined once accept() returns.
	deadline := time.Now().Add(wait)
	for {
		last := open
		for _, e := range r.Find(func(e nwtest.Ev) bool { return isConn("owner", s)(e) }) {
			last = e
		}
		if int(last.Num("pid")) == s.pid || time.Now().After(deadline) {
			if int(last.Num("pid")) != s.pid {
				t.Errorf("%s: pid %v, want %d (%v)", s.local, last.Num("pid"), s.pid, last)
			}
			if last.Str("comm") != "nwpeer" {
				t.Errorf("%s: comm %q, want nwpeer", s.local, last.Str("comm"))
			}
			want := 0.0
			if s.server {
				want = 1
			}
			if last.Num("is_server") != want {
				t.Errorf("%s: is_server %v, want %v", s.local, last.Num("is_server"), want)
			}
			return open
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dial runs a server in srvNS and a holding client in cliNS; it returns the
// two sides and a function that closes the client.
func dial(t *testing.T, srvNS, cliNS *nstest.NS, srvAddr netip.Addr, port int, send int) (cli, srv side, closeFn func()) {
	t.Helper()
	sp, addr := peer.Serve(t, srvNS, "-l", netip.AddrPortFrom(srvAddr, uint16(port)).String(), "--echo")
	cp := peer.Start(t, cliNS, "connect", "-r", addr, "--send", strconv.Itoa(send), "--hold", "--stdin-exit")
	f := strings.Fields(cp.Expect("CONNECTED", wait))
	cli = side{local: f[1], remote: f[2], pid: cp.Pid}
	srv = side{local: f[2], remote: f[1], pid: sp.Pid, server: true}
	if cli.pid == srv.pid {
		t.Fatal("server and client share a pid")
	}
	return cli, srv, func() {
		cp.CloseStdin()
		cp.Expect("CLOSED", wait)
	}
}

func connectsHas(t *testing.T, r *nwtest.Run, s side) bool {
	t.Helper()
	needle := fmt.Sprintf(`pid="%d",`, s.pid)
	for _, l := range strings.Split(r.File("connects.log"), "\n") {
		if strings.Contains(l, `src="`+s.local+`",dst="`+s.remote+`"`) {
			if !strings.HasPrefix(l, "connection{"+needle) {
				t.Errorf("connects.log line has wrong pid (want %d): %s", s.pid, l)
			}
			srv := `is_server="0"`
			if s.server {
				srv = `is_server="1"`
			}
			if !strings.Contains(l, srv) || !strings.HasSuffix(l, "}") {
				t.Errorf("connects.log line malformed or wrong is_server: %s", l)
			}
			return true
		}
	}
	return false
}

// waitConnects waits until connects.log does (or does not) list s.
func waitConnects(t *testing.T, r *nwtest.Run, s side, want bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for connectsHas(t, r, s) != want {
		if time.Now().After(deadline) {
			t.Fatalf("connects.log listing %s: want %v\n%s", s.local, want, r.File("connects.log"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// topology gives the server's and the client's namespace and the server
// address: one namespace over loopback, or two joined by a veth pair.
func topology(t *testing.T, loopback, v6 bool) (srvNS, cliNS *nstest.NS, addr netip.Addr) {
	t.Helper()
	if loopback {
		ns := nstest.NewNS(t)
		addr = netip.MustParseAddr("127.0.0.1")
		if v6 {
			addr = netip.IPv6Loopback()
		}
		return ns, ns, addr
	}
	p := nstest.NewPair(t)
	if v6 {
		return p.B, p.A, p.B6
	}
	return p.B, p.A, p.B4
}

func TestLifecycle(t *testing.T) {
	nstest.RequireRoot(t)
	for _, tc := range []struct {
		name     string
		loopback bool
		v6       bool
		all      bool
	}{
		{"veth-v4", false, false, false},
		{"veth-v6", false, true, true},
		{"lo-v4", true, false, true},
		{"lo-v6", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvNS, cliNS, addr := topology(t, tc.loopback, tc.v6)
			args := []string{}
			if tc.all {
				args = append(args, "-a")
			}
			r := nwtest.Start(t, args...)
			cli, srv, closeCli := dial(t, srvNS, cliNS, addr, randPort(), 1000)
			ev := checkSide(t, r, cli)
			checkSide(t, r, srv)
			if uint64(ev.Num("netns")) != cliNS.Inode(t) {
				t.Errorf("netns %v, want %d", ev.Num("netns"), cliNS.Inode(t))
			}
			waitConnects(t, r, cli, true)
			waitConnects(t, r, srv, true)
			closeCli()
			r.WaitFor(wait, "close client", isConn("close", cli))
			r.WaitFor(wait, "close server", isConn("close", srv))
			// without -a a closed connection leaves the table; with -a it stays
			waitConnects(t, r, cli, tc.all)
			waitConnects(t, r, srv, tc.all)
			r.Stop()
			if connectsHas(t, r, cli) != tc.all {
				t.Errorf("final connects.log: client listed=%v want %v", !tc.all, tc.all)
			}
		})
	}
}

func TestPortFilters(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	want, other := randPort(), randPort()+20000
	for _, tc := range []struct {
		flag    string
		keepCli bool // -d: remote port = server port -> client side kept
		keepSrv bool // -s: local port = server port -> server side kept
	}{
		{"-d", true, false},
		{"-s", false, true},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			r := nwtest.Start(t, tc.flag, strconv.Itoa(want))
			cliO, srvO, closeO := dial(t, p.B, p.A, p.B4, other, 10)
			cli, srv, closeW := dial(t, p.B, p.A, p.B4, want, 10)
			if tc.keepCli {
				checkSide(t, r, cli)
			}
			if tc.keepSrv {
				checkSide(t, r, srv)
			}
			closeO()
			closeW()
			time.Sleep(300 * time.Millisecond)
			r.Stop()
			for _, s := range []side{cliO, srvO} {
				if n := len(r.Find(isConn("open", s))); n != 0 {
					t.Errorf("filtered connection %s->%s reported", s.local, s.remote)
				}
			}
			if !tc.keepCli && len(r.Find(isConn("open", cli))) != 0 {
				t.Errorf("client side reported despite %s", tc.flag)
			}
			if !tc.keepSrv && len(r.Find(isConn("open", srv))) != 0 {
				t.Errorf("server side reported despite %s", tc.flag)
			}
			// In the kernel: the filtered connections produced no ring
			// events at all (user space filters nothing).
			st := r.WaitFor(wait, "stats", func(e nwtest.Ev) bool { return e.Str("type") == "stats" })
			printed := len(r.Find(func(e nwtest.Ev) bool {
				switch e.Str("type") {
				case "connection":
					return e.Str("event") != "sample" && e.Str("event") != "exists"
				case "packet", "error", "retrans", "retrans_segment":
					return true
				}
				return false
			}))
			if int(st.Num("events")-st.Num("lost_queue_full")) != printed {
				t.Errorf("ring events %v (queue-dropped %v) != printed ring-born events %d: filtering is not in the kernel",
					st.Num("events"), st.Num("lost_queue_full"), printed)
			}
		})
	}
}

func TestPreexistingConnection(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	cli, srv, closeCli := dial(t, p.B, p.A, p.B6, randPort(), 100)
	r := nwtest.Start(t)
	for _, s := range []side{cli, srv} {
		r.WaitFor(wait, "exists "+s.local, isConn("exists", s))
		checkSide(t, r, s)
		waitConnects(t, r, s, true)
	}
	closeCli()
	// adopted connections are tracked to their close like new ones
	r.WaitFor(wait, "close of pre-existing", isConn("close", cli))
	r.Stop()
}

func TestNamespaceCreatedAfterStart(t *testing.T) {
	nstest.RequireRoot(t)
	r := nwtest.Start(t)
	time.Sleep(200 * time.Millisecond)
	p := nstest.NewPair(t)
	cli, srv, closeCli := dial(t, p.B, p.A, p.B4, randPort(), 10)
	ev := checkSide(t, r, srv)
	if uint64(ev.Num("netns")) != p.B.Inode(t) {
		t.Errorf("netns %v, want %d", ev.Num("netns"), p.B.Inode(t))
	}
	checkSide(t, r, cli)
	closeCli()
	r.Stop()
}

// TestExtraAgreesWithSS compares -x values with ss -tin (tcp_info) for the
// same idle socket: nothing changes between the two samples, so they must
// agree exactly (srtt within 1 µs rounding).
func TestExtraAgreesWithSS(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	r := nwtest.Start(t, "-x")
	cli, srv, closeCli := dial(t, p.B, p.A, p.B4, randPort(), 200000)
	time.Sleep(300 * time.Millisecond) // let delayed ACKs settle: the connection is idle now
	for _, s := range []struct {
		side
		ns *nstest.NS
	}{{cli, p.A}, {srv, p.B}} {
		after := time.Now()
		ev := r.WaitFor(3*time.Second, "sample", func(e nwtest.Ev) bool {
			return isConn("sample", s.side)(e) && e.Num("ts_ns") > 0 && time.Now().After(after.Add(1100*time.Millisecond))
		})
		// take the newest sample
		evs := r.Find(isConn("sample", s.side))
		ev = evs[len(evs)-1]
		infos := oracle.SS(t, s.ns)
		ss, ok := oracle.Lookup(infos, netip.MustParseAddrPort(s.local), netip.MustParseAddrPort(s.remote))
		if !ok {
			t.Fatalf("ss does not list %s", s.local)
		}
		ssthresh := float64(ss.Ssthresh)
		if ssthresh == 0 {
			ssthresh = math.MaxInt32 // ss omits an infinite ssthresh
		}
		check := func(name string, got, want, tol float64) {
			if math.Abs(got-want) > tol {
				t.Errorf("%s %s: netwatcher %v, ss %v", s.local, name, got, want)
			}
		}
		check("srtt_us", ev.Num("srtt_us"), float64(ss.RTT), 1)
		check("cwnd", ev.Num("cwnd"), float64(ss.Cwnd), 0)
		check("ssthresh", ev.Num("ssthresh"), ssthresh, 0)
		check("tx_bytes", ev.Num("tx_bytes"), float64(ss.BytesAcked), 0)
		check("rx_bytes", ev.Num("rx_bytes"), float64(ss.BytesReceived), 0)
		check("total_retrans", ev.Num("total_retrans"), float64(ss.RetransTotal), 0)
		check("sndbuf", ev.Num("sndbuf"), float64(ss.Skmem.Sndbuf), 0)
		check("rwnd", ev.Num("rwnd"), float64(ss.SndWnd), 0)
		if ev.Num("duration_us") <= 0 {
			t.Errorf("duration_us %v", ev.Num("duration_us"))
		}
	}
	// connects.log carries the -x fields too
	l := r.File("connects.log")
	for _, k := range []string{"backlog=", "maxbacklog=", "rwnd=", "cwnd=", "ssthresh=", "sndbuf=", "wmem_queued=", "rx_bytes=", "tx_bytes=", "srtt=", "duration=", "total_retrans="} {
		if !strings.Contains(l, k) {
			t.Errorf("connects.log lacks %s:\n%s", k, l)
		}
	}
	closeCli()
	r.Stop()
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

// TestPreexistingGoServer: Go (1.24+) listens with MPTCP by default; the
// accepted connection of a plain-TCP client is TCP, the listener is not.
// A connection such a server accepted before start must still be the
// server side.
func TestPreexistingGoServer(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NewNS(t)
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	cp := peer.Start(t, ns, "connect", "-r", ln.Addr().String(), "--hold", "--stdin-exit")
	f := strings.Fields(cp.Expect("CONNECTED", wait))
	c := <-accepted
	defer c.Close()
	r := nwtest.Start(t)
	srv := side{local: f[2], remote: f[1], pid: os.Getpid(), server: true}
	ev := r.WaitFor(wait, "exists "+srv.local, isConn("exists", srv))
	if ev.Num("is_server") != 1 || int(ev.Num("pid")) != os.Getpid() {
		t.Errorf("pre-existing connection of a Go (MPTCP-listening) server: %v", ev)
	}
	cp.CloseStdin()
	r.Stop()
}

// TestQuiet: with -q (and neither -a nor -i) the kernel sends no
// connection records at all: connects.log lists both sides of a new
// connection with their owners from the once-a-second walk, and drops them
// once a walk no longer finds them.
func TestQuiet(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	port := randPort()
	r := nwtest.Start(t, "-q", "--no-packets", "-s", strconv.Itoa(port))
	_, srv, closeCli := dial(t, p.B, p.A, p.B4, port, 100)
	waitConnects(t, r, srv, true)
	if n := len(r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "connection" })); n != 0 {
		t.Errorf("-q printed %d connection lines", n)
	}
	closeCli()
	waitConnects(t, r, srv, false)
	r.Stop()
	var stats nwtest.Ev
	for _, e := range r.Events() {
		if e.Str("type") == "stats" {
			stats = e
		}
	}
	if ev := stats.Num("events"); ev != 0 {
		t.Errorf("ring carried %v events for one connection under -q, want 0: %v", ev, stats)
	}
}

// TestHashTableEndToEnd runs the binary with the connection table variant
// of kernels without BPF atomics (< 5.12), forced on this one: owners on
// both sides, close, pre-existing connections (adopted from user space),
// -x values.
func TestHashTableEndToEnd(t *testing.T) {
	nstest.RequireRoot(t)
	t.Setenv("NW_CONN_TABLE", "hash")
	t.Run("lifecycle", TestLifecycle)
	t.Run("preexisting", TestPreexistingConnection)
	t.Run("extra", TestExtraAgreesWithSS)
}
