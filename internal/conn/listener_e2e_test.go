package conn_test

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
)

// listenIn makes a TCP listener in ns with the given backlog on addr:0
// (raw syscalls: the exact backlog, plain TCP, this process as owner) and
// returns its fd and address.
func listenIn(t *testing.T, ns *nstest.NS, addr netip.Addr, backlog int) (int, netip.AddrPort) {
	t.Helper()
	var fd int
	var ap netip.AddrPort
	if err := ns.Do(func() error {
		var sa unix.Sockaddr
		fam := unix.AF_INET
		if addr.Is4() {
			sa = &unix.SockaddrInet4{Addr: addr.As4()}
		} else {
			sa, fam = &unix.SockaddrInet6{Addr: addr.As16()}, unix.AF_INET6
		}
		s, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		fd = s
		if err := unix.Bind(s, sa); err != nil {
			return err
		}
		if err := unix.Listen(s, backlog); err != nil {
			return err
		}
		got, err := unix.Getsockname(s)
		if err != nil {
			return err
		}
		switch got := got.(type) {
		case *unix.SockaddrInet4:
			ap = netip.AddrPortFrom(netip.AddrFrom4(got.Addr), uint16(got.Port))
		case *unix.SockaddrInet6:
			ap = netip.AddrPortFrom(netip.AddrFrom16(got.Addr), uint16(got.Port))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, ap
}

// connectMany starts n non-blocking connects to ap from ns and returns
// their fds (the handshakes go on in the kernel).
func connectMany(t *testing.T, ns *nstest.NS, ap netip.AddrPort, n int) []int {
	t.Helper()
	var fds []int
	if err := ns.Do(func() error {
		for range n {
			s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return err
			}
			fds = append(fds, s)
			err = unix.Connect(s, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())})
			if err != nil && err != unix.EINPROGRESS {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return fds
}

func isListener(ns float64, local string, what string) func(nwtest.Ev) bool {
	return func(e nwtest.Ev) bool {
		return e.Str("type") == "listener" && e.Num("netns") == ns && e.Str("local") == local && e.Str("event") == what
	}
}

// lastListener is the newest "sample" record of the listener on local.
func lastListener(r *nwtest.Run, ns float64, local string) nwtest.Ev {
	evs := r.Find(isListener(ns, local, "sample"))
	if len(evs) == 0 {
		return nil
	}
	return evs[len(evs)-1]
}

// -x listener lines against the kernel's own numbers: a listener with
// backlog 1 that never accepts gets N connects with SYN cookies off; its
// drops equal the namespace's TcpExtListenDrops delta (the only listener
// that gets connections there), its backlog/maxbacklog equal ss's
// Recv-Q/Send-Q, its owner is this process. A listener older than
// netwatcher is there too (start-up walk), and a listener closed during
// the run leaves the lines (a "closed" record, gone from connects.log).
func TestListenerLines(t *testing.T) {
	for _, table := range []string{"sets", "hash"} {
		t.Run(table, func(t *testing.T) {
			t.Setenv("NW_CONN_TABLE", table)
			testListenerLines(t)
		})
	}
}

func testListenerLines(t *testing.T) {
	nstest.RequireRoot(t)
	const n = 20
	ns := nstest.NewNS(t)
	ns.Sysctl(t, "net.ipv4.tcp_syncookies", "0")
	inode := float64(ns.Inode(t))
	_, old := listenIn(t, ns, netip.MustParseAddr("127.0.0.1"), 3) // before netwatcher
	r := nwtest.Start(t, "-x", "--no-packets")
	_, lis := listenIn(t, ns, netip.MustParseAddr("127.0.0.1"), 1)
	gfd, gone := listenIn(t, ns, netip.MustParseAddr("::1"), 7)

	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	pid := float64(os.Getpid())
	for _, c := range []struct {
		ap    netip.AddrPort
		max   float64
		owner string
	}{{old, 3, "preexisting"}, {lis, 1, "syscall"}, {gone, 7, "syscall"}} {
		e := r.WaitFor(wait, "listener "+c.ap.String(), isListener(inode, c.ap.String(), "sample"))
		if e.Num("pid") != pid || e.Str("comm") != strings.TrimSpace(string(comm)) || e.Str("owner") != c.owner ||
			e.Num("maxbacklog") != c.max || e.Num("backlog") != 0 || e.Num("drops") != 0 {
			t.Errorf("%s: %v; want pid %v comm %q owner %s maxbacklog %v, backlog and drops 0", c.ap, e, pid, comm, c.owner, c.max)
		}
	}

	// the connects: 2 fill the accept queue (full above its limit), the
	// rest are dropped at the SYN, and again at its first retransmission
	before := oracle.Nstat(t, ns)
	fds := connectMany(t, ns, lis, n)
	time.Sleep(1500 * time.Millisecond)
	for _, fd := range fds {
		unix.Close(fd)
	}
	drops, overflows, ss := listenOracle(t, ns, before, lis)
	e := waitListener(r, inode, lis, func(e nwtest.Ev) bool {
		return e.Num("drops") == float64(drops) && e.Num("backlog") == float64(ss.RecvQ)
	})
	t.Logf("%d connects: TcpExtListenDrops +%d, TcpExtListenOverflows +%d, ss Recv-Q %d Send-Q %d skmem d %d; netwatcher: %v",
		n, drops, overflows, ss.RecvQ, ss.SendQ, ss.Skmem.Drops, e)
	if drops < n-2 || e.Num("drops") != float64(drops) {
		t.Errorf("drops %v, TcpExtListenDrops +%d: want equal and >= %d", e.Num("drops"), drops, n-2)
	}
	if e.Num("drops") != float64(ss.Skmem.Drops) {
		t.Errorf("drops %v, ss skmem d (sk_drops) %d", e.Num("drops"), ss.Skmem.Drops)
	}
	if e.Num("backlog") != float64(ss.RecvQ) || e.Num("maxbacklog") != float64(ss.SendQ) || ss.RecvQ == 0 {
		t.Errorf("backlog %v/%v, ss Recv-Q/Send-Q %d/%d", e.Num("backlog"), e.Num("maxbacklog"), ss.RecvQ, ss.SendQ)
	}
	if e.Num("pid") != pid || e.Str("owner") != "syscall" {
		t.Errorf("owner: %v, want pid %v", e, pid)
	}

	// the closed listener: a "closed" record, then no more lines
	unix.Close(gfd)
	r.WaitFor(wait, "closed "+gone.String(), isListener(inode, gone.String(), "closed"))
	time.Sleep(1500 * time.Millisecond) // one more refresh of connects.log
	log := r.File("connects.log")
	wantLine := fmt.Sprintf(`listener{pid="%d",comm="%s",sock="%s",local="%s",netns="%d",backlog="%d",maxbacklog="%d",drops="%d"}`,
		os.Getpid(), strings.TrimSpace(string(comm)), e.Str("sock"), lis, uint64(inode), ss.RecvQ, ss.SendQ, drops)
	if !strings.Contains(log, wantLine) {
		t.Errorf("connects.log lacks\n%s\n%s", wantLine, log)
	}
	if strings.Contains(log, `local="`+gone.String()+`"`) {
		t.Errorf("connects.log still has the closed listener %s:\n%s", gone, log)
	}
	if !strings.Contains(log, `local="`+old.String()+`"`) {
		t.Errorf("connects.log lacks the pre-existing listener %s:\n%s", old, log)
	}
	r.Stop()
	closed := r.Find(isListener(inode, gone.String(), "closed"))
	if len(closed) != 1 {
		t.Fatalf("closed listener %s: %d closed records, want 1", gone, len(closed))
	}
	for _, e := range r.Find(isListener(inode, gone.String(), "sample")) {
		if e.Num("ts_ns") > closed[0].Num("ts_ns") {
			t.Errorf("closed listener %s still sampled: %v", gone, e)
		}
	}
}

// An accept-queue overflow on the handshake's last ACK counts twice in the
// listener's sk_drops: tcp_listendrop() (TcpExtListenDrops and
// TcpExtListenOverflows +1 each) and the discard of that ACK for the
// listener in tcp_v4_rcv; the RSTs that end the pending requests are
// discarded for it too. So drops is checked against the socket's own
// counter as ss shows it (skmem d), and against the MIB counters as a
// lower bound. B completed connections fill the queue to its limit, then
// B more handshakes are held before their last ACK (an nft rule); once it
// is gone the SYN-ACK retransmission brings the ACKs back: the first fills
// the queue above its limit, every later one overflows.
func TestListenerAckOverflow(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "nft")
	const backlog = 4
	ns := nstest.NewNS(t)
	ns.Sysctl(t, "net.ipv4.tcp_syncookies", "0")
	inode := float64(ns.Inode(t))
	r := nwtest.Start(t, "-x", "--no-packets")
	_, lis := listenIn(t, ns, netip.MustParseAddr("127.0.0.1"), backlog)
	r.WaitFor(wait, "listener "+lis.String(), isListener(inode, lis.String(), "sample"))
	fds := connectMany(t, ns, lis, backlog)
	time.Sleep(100 * time.Millisecond)
	script := fmt.Sprintf("table inet nwt_listen {\n chain in {\n  type filter hook input priority 0; policy accept;\n  tcp dport %d tcp flags & (syn | ack) == ack drop\n }\n}\n", lis.Port())
	path := t.TempDir() + "/ack.nft"
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "nft", "-f", path)
	before := oracle.Nstat(t, ns)
	fds = append(fds, connectMany(t, ns, lis, backlog)...)
	time.Sleep(200 * time.Millisecond)
	ns.Run(t, "nft", "delete", "table", "inet", "nwt_listen")
	time.Sleep(1500 * time.Millisecond) // the SYN-ACK retransmission (1 s) brings the ACKs
	for _, fd := range fds {
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1}) // RST
		unix.Close(fd)
	}
	time.Sleep(300 * time.Millisecond)
	drops, overflows, ss := listenOracle(t, ns, before, lis)
	e := waitListener(r, inode, lis, func(e nwtest.Ev) bool { return e.Num("drops") == float64(ss.Skmem.Drops) })
	t.Logf("TcpExtListenDrops +%d, TcpExtListenOverflows +%d, ss skmem d %d; netwatcher: %v", drops, overflows, ss.Skmem.Drops, e)
	if e.Num("drops") != float64(ss.Skmem.Drops) {
		t.Errorf("drops %v, ss skmem d %d", e.Num("drops"), ss.Skmem.Drops)
	}
	if overflows == 0 || e.Num("drops") < float64(drops+overflows) {
		t.Errorf("drops %v, want >= TcpExtListenDrops + TcpExtListenOverflows = %d + %d (> 0)", e.Num("drops"), drops, overflows)
	}
}

// listenOracle is the kernel's view of listener lis since before: the
// namespace's ListenDrops and ListenOverflows deltas and ss's line for it.
func listenOracle(t *testing.T, ns *nstest.NS, before map[string]uint64, lis netip.AddrPort) (drops, overflows uint64, ss oracle.TCPInfo) {
	t.Helper()
	after := oracle.Nstat(t, ns)
	drops = oracle.Delta(before, after, "TcpExtListenDrops")
	overflows = oracle.Delta(before, after, "TcpExtListenOverflows")
	for _, s := range oracle.SS(t, ns, "-l") {
		if s.Local == lis {
			return drops, overflows, s
		}
	}
	t.Fatalf("ss -l in the namespace shows no %s", lis)
	return
}

// waitListener returns netwatcher's last record of listener lis once done
// holds for it, or the last one after wait.
func waitListener(r *nwtest.Run, inode float64, lis netip.AddrPort, done func(nwtest.Ev) bool) nwtest.Ev {
	deadline := time.Now().Add(wait)
	for {
		e := lastListener(r, inode, lis.String())
		if done(e) || time.Now().After(deadline) {
			return e
		}
		time.Sleep(50 * time.Millisecond)
	}
}
