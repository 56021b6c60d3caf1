package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
)

const wait = 10 * time.Second

// fields splits an event line and checks its verb and field count.
func fields(t *testing.T, line, verb string, n int) []string {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != n || f[0] != verb {
		t.Fatalf("line %q: want %s with %d fields", line, verb, n)
	}
	return f
}

// kv parses "name k=v k=v" summary lines.
func kv(t *testing.T, line, name string) map[string]string {
	t.Helper()
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != name {
		t.Fatalf("line %q: want %s summary", line, name)
	}
	m := map[string]string{}
	for _, x := range f[1:] {
		k, v, ok := strings.Cut(x, "=")
		if !ok {
			t.Fatalf("line %q: bad field %q", line, x)
		}
		m[k] = v
	}
	return m
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "/s"), 64)
	if err != nil {
		t.Fatalf("number %q: %v", s, err)
	}
	return v
}

func TestConnectEcho(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		t.Run(host, func(t *testing.T) {
			srv, addr := peer.Serve(t, nil, "-l", host+":0", "--echo")
			if !strings.HasPrefix(addr, host+":") {
				t.Fatalf("READY %q for %s", addr, host)
			}
			cli := peer.Start(t, nil, "connect", "-r", addr, "-n", "3", "--send", "300000")
			lines, err := cli.Wait(wait)
			if err != nil {
				t.Fatalf("connect: %v: %s", err, cli.Stderr())
			}
			if len(lines) != 3 {
				t.Fatalf("connect printed %q", lines)
			}
			for _, l := range lines {
				f := fields(t, l, "CONNECTED", 4)
				if f[2] != addr || f[3] != strconv.Itoa(cli.Pid) {
					t.Errorf("%q: want remote %s pid %d", l, addr, cli.Pid)
				}
				a := fields(t, srv.Expect("ACCEPTED", wait), "ACCEPTED", 4)
				if a[1] != f[2] || a[2] != f[1] || a[3] != strconv.Itoa(srv.Pid) {
					t.Errorf("ACCEPTED %v does not mirror %v (server pid %d)", a, f, srv.Pid)
				}
			}
		})
	}
}

func TestHold(t *testing.T) {
	_, addr := peer.Serve(t, nil, "-l", "127.0.0.1:0")
	cli := peer.Start(t, nil, "connect", "-r", addr, "-n", "2", "--hold")
	var ports []string
	for i := 0; i < 2; i++ {
		f := fields(t, cli.Expect("CONNECTED", wait), "CONNECTED", 4)
		ports = append(ports, f[1])
	}
	// Both must still be established while held.
	time.Sleep(100 * time.Millisecond)
	for _, lp := range ports {
		if !established(t, lp) {
			t.Errorf("%s not established while held", lp)
		}
	}
	cli.CloseStdin()
	rest, err := cli.Wait(wait)
	if err != nil || len(rest) != 1 || rest[0] != "CLOSED" {
		t.Fatalf("after stdin EOF: %q %v", rest, err)
	}
}

// established reports whether a TCP socket with this local address is
// ESTABLISHED, from /proc/net/tcp (IPv4 loopback only).
func established(t *testing.T, local string) bool {
	t.Helper()
	ap := netip.MustParseAddrPort(local)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	ip := ap.Addr().As4()
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port())
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 3 && f[1] == want && f[3] == "01" {
			return true
		}
	}
	return false
}

func TestChurnRR(t *testing.T) {
	_, addr := peer.Serve(t, nil, "-l", "[::1]:0", "--echo")
	lines := peer.Run(t, nil, wait, "churn", "-r", addr, "-n", "300", "-c", "4")
	m := kv(t, lines[len(lines)-1], "churn")
	if m["conns"] != "300" || m["errors"] != "0" || num(t, m["rate"]) <= 0 {
		t.Errorf("churn: %q", lines)
	}
	lines = peer.Run(t, nil, wait, "rr", "-r", addr, "-c", "4", "--size", "512", "--duration", "300ms")
	m = kv(t, lines[len(lines)-1], "rr")
	if num(t, m["ops"]) < 10 || num(t, m["secs"]) < 0.29 || num(t, m["secs"]) > 2 {
		t.Errorf("rr: %q", lines)
	}
}

func TestBulkSink(t *testing.T) {
	srv, addr := peer.Serve(t, nil, "-l", "127.0.0.1:0", "--sink")
	lines := peer.Run(t, nil, wait, "bulk", "-r", addr, "--bytes", "5000000")
	m := kv(t, lines[len(lines)-1], "bulk")
	if m["bytes"] != "5000000" || num(t, m["mbit"]) <= 0 {
		t.Errorf("bulk: %q", lines)
	}
	f := fields(t, srv.Expect("RECEIVED", wait), "RECEIVED", 4)
	if f[3] != "5000000" {
		t.Errorf("server received %s bytes", f[3])
	}
}

func TestHTTP(t *testing.T) {
	srv, addr := peer.Serve(t, nil, "-l", "127.0.0.1:0", "--http")
	lines := peer.Run(t, nil, wait, "http-get", "-r", addr, "-n", "3", "--path", "/")
	want := []string{"CONNECTED", "HTTP HTTP/1.1 200 OK", "HTTP HTTP/1.1 200 OK", "HTTP HTTP/1.1 200 OK"}
	if len(lines) != len(want) || !strings.HasPrefix(lines[0], want[0]) || statusLines(lines[1:]) != strings.Join(want[1:], "|") {
		t.Errorf("http-get: %q, want %q (one keep-alive connection)", lines, want)
	}
	lines = peer.Run(t, nil, wait, "http-get", "-r", addr, "--path", "/missing")
	if len(lines) != 2 || statusLines(lines[1:]) != "HTTP HTTP/1.1 404 Not Found" {
		t.Errorf("http-get /missing: %q", lines)
	}
	// --close: a connection per request
	lines = peer.Run(t, nil, wait, "http-get", "-r", addr, "-n", "2", "--close")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "CONNECTED") || !strings.HasPrefix(lines[2], "CONNECTED") {
		t.Errorf("http-get --close: %q", lines)
	}
	for i := 0; i < 4; i++ {
		srv.Expect("ACCEPTED", wait)
	}
	srv.Signal(syscall.SIGTERM)
	if rest, err := srv.Wait(wait); err != nil || len(rest) != 0 {
		t.Errorf("server after SIGTERM: %q %v", rest, err)
	}
}

func TestExit(t *testing.T) {
	start := time.Now()
	p := peer.Start(t, nil, "serve", "-l", "127.0.0.1:0", "--duration", "300ms")
	if _, err := p.Wait(wait); err != nil {
		t.Errorf("--duration: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("--duration 300ms took %v", el)
	}
	p = peer.Start(t, nil, "serve", "-l", "127.0.0.1:0", "--stdin-exit")
	p.Expect("READY", wait)
	p.CloseStdin()
	if _, err := p.Wait(wait); err != nil {
		t.Errorf("--stdin-exit: %v", err)
	}
	p = peer.Start(t, nil, "serve", "-l", "127.0.0.1:0", "--echo")
	p.Expect("READY", wait)
	p.Signal(syscall.SIGINT)
	if _, err := p.Wait(wait); err != nil {
		t.Errorf("SIGINT: %v", err)
	}
	for _, args := range [][]string{{}, {"nope"}, {"serve"}, {"serve", "-l", ":0", "--echo", "--http"}, {"connect", "-r", "x", "stray"}, {"rr", "--bogus"},
		{"rr", "-r", "127.0.0.1:1", "--blackout", "1s"}, {"rr", "-r", "127.0.0.1:1", "--blackout", "1s:0s"}, {"rr", "-r", "127.0.0.1:1", "--blackout", "x:1s"}} {
		p := peer.Start(t, nil, args...)
		_, err := p.Wait(wait)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: %v, want exit code 2", args, err)
		}
	}
	// A refused connection is a plain failure.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	p = peer.Start(t, nil, "connect", "-r", closed)
	_, err = p.Wait(wait)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("connect to closed port: %v, want exit code 1", err)
	}
}

// TestBlackout: rr --blackout makes both ends retransmit for real (the
// retransmissions leave the host: the kernel counts them in
// TcpRetransSegs and its timeouts in TCPTimeouts, read with nstat in a
// namespace of the test's own), and the exchange carries on afterwards.
func TestBlackout(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "nstat")
	ns := nstest.NewNS(t)
	_, addr := peer.Serve(t, ns, "-l", "127.0.0.1:0", "--echo")
	mib := func() map[string]float64 {
		out := ns.Run(t, "nstat", "-a", "-z", "-s") // absolute, zeros too, no history file
		m := map[string]float64{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 2 {
				m[f[0]], _ = strconv.ParseFloat(f[1], 64)
			}
		}
		return m
	}
	before := mib()
	start := time.Now()
	lines := peer.Run(t, ns, wait, "rr", "-r", addr, "--duration", "2500ms", "--blackout", "300ms:1s")
	after := mib()
	m := kv(t, lines[len(lines)-1], "rr")
	retrans := after["TcpRetransSegs"] - before["TcpRetransSegs"]
	timeouts := after["TcpExtTCPTimeouts"] - before["TcpExtTCPTimeouts"]
	// 1 s without ACKs: RTOs at about 0.2, 0.6 s from the first lost
	// segment, on both ends (a request and its echo are both unacked)
	if retrans < 2 || timeouts < 2 {
		t.Errorf("blackout: %v retransmitted segments, %v timeouts, want >= 2 of each", retrans, timeouts)
	}
	if num(t, m["ops"]) < 10 || time.Since(start) > 10*time.Second {
		t.Errorf("rr after the blackout: %q", lines)
	}
	// without --blackout, a loopback rr retransmits nothing
	before = mib()
	peer.Run(t, ns, wait, "rr", "-r", addr, "--duration", "300ms")
	if d := mib()["TcpRetransSegs"] - before["TcpRetransSegs"]; d != 0 {
		t.Errorf("rr without --blackout: %v retransmitted segments", d)
	}
}

// TestInNamespaces runs both ends in a veth pair and checks that what nwpeer
// prints (pid, addresses) matches the kernel's view.
func TestInNamespaces(t *testing.T) {
	p := nstest.NewPair(t)
	srv, addr := peer.Serve(t, p.B, "-l", net.JoinHostPort(p.B6.String(), "0"), "--echo")
	cli := peer.Start(t, p.A, "connect", "-r", addr, "--send", "1000", "--hold", "--lport", "40000")
	c := fields(t, cli.Expect("CONNECTED", wait), "CONNECTED", 4)
	a := fields(t, srv.Expect("ACCEPTED", wait), "ACCEPTED", 4)
	if want := net.JoinHostPort(p.A6.String(), "40000"); c[1] != want || a[2] != want {
		t.Errorf("client address %s / %s, want %s", c[1], a[2], want)
	}
	for _, x := range []struct {
		pid int
		ns  *nstest.NS
	}{{cli.Pid, p.A}, {srv.Pid, p.B}} {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", x.pid), &st); err != nil {
			t.Fatal(err)
		}
		if st.Ino != x.ns.Inode(t) {
			t.Errorf("pid %d is in netns %d, want %s (%d)", x.pid, st.Ino, x.ns.Name, x.ns.Inode(t))
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", x.pid))
		if strings.TrimSpace(string(comm)) != "nwpeer" {
			t.Errorf("pid %d comm %q", x.pid, comm)
		}
	}
	if c[3] != strconv.Itoa(cli.Pid) || a[3] != strconv.Itoa(srv.Pid) {
		t.Errorf("pids: %v %v, want %d %d", c, a, cli.Pid, srv.Pid)
	}
	cli.CloseStdin()
	if rest, err := cli.Wait(wait); err != nil || len(rest) != 1 || rest[0] != "CLOSED" {
		t.Errorf("after stdin EOF: %q %v; stderr: %s", rest, err, cli.Stderr())
	}
}

// TestHandoff: serve --handoff listens in one process and serves from a
// child (re-executed nwpeer, listener inherited): the child accepts and
// holds the connections, the parent only the listener, and the child ends
// with the parent however the parent ends.
func TestHandoff(t *testing.T) {
	for _, stop := range []string{"SIGTERM", "stdin", "SIGKILL"} {
		t.Run(stop, func(t *testing.T) {
			srv, addr := peer.Serve(t, nil, "-l", "127.0.0.1:0", "--handoff", "--echo", "--stdin-exit")
			child, err := strconv.Atoi(fields(t, srv.Expect("CHILD", wait), "CHILD", 2)[1])
			if err != nil || child == srv.Pid {
				t.Fatalf("child pid %d (%v), parent %d", child, err, srv.Pid)
			}
			if ppid := procStatus(t, child, "PPid"); ppid != strconv.Itoa(srv.Pid) {
				t.Errorf("child %d has parent %s, want %d", child, ppid, srv.Pid)
			}
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child))
			if strings.TrimSpace(string(comm)) != "nwpeer" {
				t.Errorf("child comm %q", comm)
			}
			cli := peer.Start(t, nil, "connect", "-r", addr, "--send", "100000", "--hold")
			c := fields(t, cli.Expect("CONNECTED", wait), "CONNECTED", 4)
			a := fields(t, srv.Expect("ACCEPTED", wait), "ACCEPTED", 4)
			if a[1] != c[2] || a[2] != c[1] || a[3] != strconv.Itoa(child) {
				t.Errorf("ACCEPTED %v: want %s %s pid %d (the child)", a, c[2], c[1], child)
			}
			// The listener is in both processes, the accepted socket only
			// in the child.
			lis := sockInode(t, addr, "0.0.0.0:0")
			acc := sockInode(t, c[2], c[1])
			if !holds(t, srv.Pid, lis) || !holds(t, child, lis) {
				t.Errorf("listener inode %d: parent holds it %v, child %v", lis, holds(t, srv.Pid, lis), holds(t, child, lis))
			}
			if holds(t, srv.Pid, acc) || !holds(t, child, acc) {
				t.Errorf("accepted inode %d: parent holds it %v, child %v", acc, holds(t, srv.Pid, acc), holds(t, child, acc))
			}
			switch stop {
			case "SIGTERM":
				srv.Signal(syscall.SIGTERM)
			case "stdin":
				srv.CloseStdin()
			case "SIGKILL":
				srv.Signal(syscall.SIGKILL)
			}
			rest, err := srv.Wait(wait) // stdout EOF: the child has exited too
			if stop == "SIGKILL" {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Errorf("parent after SIGKILL: %v", err)
				}
			} else if err != nil || len(rest) != 0 {
				t.Errorf("parent after %s: %q %v; stderr: %s", stop, rest, err, srv.Stderr())
			}
			deadline := time.Now().Add(wait)
			for alive(child) {
				if time.Now().After(deadline) {
					t.Fatalf("child %d still alive after the parent's %s", child, stop)
				}
				time.Sleep(10 * time.Millisecond)
			}
			cli.CloseStdin()
			if _, err := cli.Wait(wait); err != nil {
				t.Errorf("client: %v; stderr: %s", err, cli.Stderr())
			}
		})
	}
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"serve", "--listen-fd", "3", "-l", "127.0.0.1:0"}, {"serve", "--handoff", "--listen-fd", "3"}, {"serve", "--handoff"}, {"serve", "--handoff", "-l", ":0", "--echo", "--sink"}} {
			p := peer.Start(t, nil, args...)
			_, err := p.Wait(wait)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("%q: %v, want exit code 2", args, err)
			}
		}
		p := peer.Start(t, nil, "serve", "-h")
		if _, err := p.Wait(wait); err != nil {
			t.Fatalf("serve -h: %v", err)
		}
		if h := p.Stderr(); !strings.Contains(h, "-handoff") || !strings.Contains(h, "-echo") || strings.Contains(h, "listen-fd") {
			t.Errorf("serve -h lists --handoff, not --listen-fd:\n%s", h)
		}
	})
}

// procStatus returns a field of /proc/PID/status.
func procStatus(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// sockInode returns the inode of the IPv4 TCP socket local -> remote, from
// /proc/net/tcp.
func sockInode(t *testing.T, local, remote string) uint64 {
	t.Helper()
	hex := func(s string) string {
		ap := netip.MustParseAddrPort(s)
		ip := ap.Addr().As4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port())
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 9 && f[1] == hex(local) && f[2] == hex(remote) {
			ino, err := strconv.ParseUint(f[9], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return ino
		}
	}
	t.Fatalf("no socket %s -> %s in /proc/net/tcp", local, remote)
	return 0
}

// holds reports whether pid has the socket with this inode open.
func holds(t *testing.T, pid int, ino uint64) bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("socket:[%d]", ino)
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == want {
			return true
		}
	}
	return false
}

// statusLines drops the latency (last field) of HTTP lines and joins them.
func statusLines(lines []string) string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if j := strings.LastIndexByte(l, ' '); strings.HasPrefix(l, "HTTP ") && j > 0 {
			if _, err := strconv.ParseInt(l[j+1:], 10, 64); err == nil {
				l = l[:j]
			}
		}
		out[i] = l
	}
	return strings.Join(out, "|")
}
