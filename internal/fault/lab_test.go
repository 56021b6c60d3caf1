package fault

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Test addresses (RFC 2544 benchmarking range, ULA).
var (
	addrA4 = netip.MustParseAddr("198.18.200.1")
	addrB4 = netip.MustParseAddr("198.18.200.2")
	addrA6 = netip.MustParseAddr("fd00:4e57:c8::1")
	addrB6 = netip.MustParseAddr("fd00:4e57:c8::2")
)

const (
	macA = "02:4e:57:c8:00:01"
	macB = "02:4e:57:c8:00:02"
	ifA  = "nwf0" // veth end in namespace A (client, sender)
	ifB  = "nwf1" // veth end in namespace B (server, receiver)
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root, and CI is set: refusing to skip")
		}
		t.Skip("needs root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("needs %s in PATH", tool)
			}
			t.Skipf("needs %s in PATH", tool)
		}
	}
}

var (
	nsSeq     atomic.Int64
	sweepOnce sync.Once
)

// sweepStale removes nwf-<pid>-<n> namespaces of test processes that are
// gone (killed before their cleanup ran).
func sweepStale() {
	ents, _ := os.ReadDir(NetnsDir)
	for _, e := range ents {
		parts := strings.Split(e.Name(), "-")
		if len(parts) != 3 || parts[0] != "nwf" {
			continue
		}
		pid, err := strconv.Atoi(parts[1])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// lab is two fresh namespaces A and B joined by a veth pair, with
// 198.18.200.1/24 + fd00:4e57:c8::1/64 in A and .2 / ::2 in B.
type lab struct {
	A, B string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	requireRoot(t)
	sweepOnce.Do(sweepStale)
	n := nsSeq.Add(2)
	l := &lab{A: fmt.Sprintf("nwf-%d-%d", os.Getpid(), n-1), B: fmt.Sprintf("nwf-%d-%d", os.Getpid(), n)}
	t.Cleanup(func() {
		for _, ns := range []string{l.A, l.B} {
			if _, err := os.Stat(NetnsDir + "/" + ns); err == nil {
				if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
					t.Errorf("ip netns del %s: %v: %s", ns, err, out)
				}
			}
		}
	})
	ipCmd(t, "netns", "add", l.A)
	ipCmd(t, "netns", "add", l.B)
	ipCmd(t, "-n", l.A, "link", "add", ifA, "address", macA, "type", "veth", "peer", "name", ifB, "address", macB, "netns", l.B)
	for _, s := range []struct {
		ns, dev string
		a4, a6  netip.Addr
		p4, p6  netip.Addr
		peerMAC string
	}{{l.A, ifA, addrA4, addrA6, addrB4, addrB6, macB}, {l.B, ifB, addrB4, addrB6, addrA4, addrA6, macA}} {
		ipCmd(t, "-n", s.ns, "addr", "add", s.a4.String()+"/24", "dev", s.dev)
		ipCmd(t, "-n", s.ns, "addr", "add", s.a6.String()+"/64", "dev", s.dev, "nodad")
		// Static neighbours: the first IPv6 neighbour solicitation after a
		// veth comes up is lost here, which costs a 1 s retry.
		ipCmd(t, "-n", s.ns, "neigh", "replace", s.p4.String(), "lladdr", s.peerMAC, "dev", s.dev, "nud", "permanent")
		ipCmd(t, "-n", s.ns, "neigh", "replace", s.p6.String(), "lladdr", s.peerMAC, "dev", s.dev, "nud", "permanent")
		ipCmd(t, "-n", s.ns, "link", "set", "lo", "up")
		ipCmd(t, "-n", s.ns, "link", "set", s.dev, "up")
	}
	return l
}

// tcpPair is a connection from A (client) to B (server).
type tcpPair struct {
	client, server *net.TCPConn
	flow           Flow // client -> server
}

func (l *lab) connect(t *testing.T, v6 bool) *tcpPair {
	t.Helper()
	srv := netip.AddrPortFrom(addrB4, 0)
	if v6 {
		srv = netip.AddrPortFrom(addrB6, 0)
	}
	var ln *net.TCPListener
	if err := Do(l.B, func() (err error) {
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(srv))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	var c *net.TCPConn
	if err := Do(l.A, func() (err error) {
		d := net.Dialer{Timeout: 3 * time.Second}
		cc, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		c = cc.(*net.TCPConn)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	p := &tcpPair{client: c, server: s}
	la, ra := c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
	p.flow = Flow{Src: netip.AddrPortFrom(la.Addr().Unmap(), la.Port()), Dst: netip.AddrPortFrom(ra.Addr().Unmap(), ra.Port())}
	t.Cleanup(func() { c.Close(); s.Close() })
	return p
}

// roundTrip sends msg from client to server and back and checks both.
func (p *tcpPair) roundTrip(msg []byte) error {
	dl := time.Now().Add(5 * time.Second)
	p.client.SetDeadline(dl)
	p.server.SetDeadline(dl)
	defer p.client.SetDeadline(time.Time{})
	defer p.server.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(p.server, buf); err != nil {
			errc <- fmt.Errorf("server read: %w", err)
			return
		}
		if !bytes.Equal(buf, msg) {
			errc <- fmt.Errorf("server got corrupted data")
			return
		}
		_, err := p.server.Write(buf)
		errc <- err
	}()
	if _, err := p.client.Write(msg); err != nil {
		return fmt.Errorf("client write: %w", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(p.client, buf); err != nil {
		return fmt.Errorf("client read: %w", err)
	}
	if err := <-errc; err != nil {
		return err
	}
	if !bytes.Equal(buf, msg) {
		return fmt.Errorf("client got corrupted echo")
	}
	return nil
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func counters(t *testing.T, ns string) Counters {
	t.Helper()
	c, err := ReadCounters(ns)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitCounter polls until counter name in ns has grown by want since
// before (or 2 s passed) and returns the growth.
func waitCounter(t *testing.T, ns string, before Counters, name string, want int64) int64 {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		d := counters(t, ns)[name] - before[name]
		if d >= want || time.Now().After(deadline) {
			return d
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nftTables lists the inet/ip/ip6 tables in ns.
func nftTables(t *testing.T, ns string) string {
	t.Helper()
	out, err := runNft(ns, "", "list", "tables")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
