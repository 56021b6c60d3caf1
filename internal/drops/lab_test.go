package drops_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
)

const wait = 10 * time.Second

// tcpConn is a connection from namespace A (client) to B (server), made
// by this test process (sockets created inside the namespaces).
type tcpConn struct {
	client, server *net.TCPConn
	cli, srv       netip.AddrPort // client's and server's addresses
}

// dialPair connects A -> B on the given server port, from the given client
// port (0: any).
func dialPair(t *testing.T, p *nstest.Pair, v6 bool, port, cliPort uint16) *tcpConn {
	t.Helper()
	srv := netip.AddrPortFrom(p.B4, port)
	if v6 {
		srv = netip.AddrPortFrom(p.B6, port)
	}
	var ln *net.TCPListener
	if err := p.B.Do(func() (err error) {
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
	if err := p.A.Do(func() error {
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{Port: int(cliPort)}}
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
	t.Cleanup(func() { c.Close(); s.Close() })
	unmap := func(a net.Addr) netip.AddrPort {
		ap := a.(*net.TCPAddr).AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return &tcpConn{client: c, server: s, cli: unmap(c.LocalAddr()), srv: unmap(c.RemoteAddr())}
}

// flow is the client -> server direction, for the fault injector.
func (c *tcpConn) flow() fault.Flow { return fault.Flow{Src: c.cli, Dst: c.srv} }

// roundTrip sends n bytes client -> server and back.
func (c *tcpConn) roundTrip(n int, seed byte) error {
	msg := make([]byte, n)
	for i := range msg {
		msg[i] = seed + byte(i*7)
	}
	dl := time.Now().Add(5 * time.Second)
	c.client.SetDeadline(dl)
	c.server.SetDeadline(dl)
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.server, buf); err != nil {
			errc <- fmt.Errorf("server read: %w", err)
			return
		}
		if !bytes.Equal(buf, msg) {
			errc <- fmt.Errorf("server got corrupted data")
			return
		}
		_, err := c.server.Write(buf)
		errc <- err
	}()
	if _, err := c.client.Write(msg); err != nil {
		return fmt.Errorf("client write: %w", err)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c.client, buf); err != nil {
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

// sockOf waits for netwatcher's connection record of the socket with this
// local and remote address in namespace ns and returns its sock field.
func sockOf(t *testing.T, r *nwtest.Run, ns *nstest.NS, local, remote netip.AddrPort) string {
	t.Helper()
	inode := float64(ns.Inode(t))
	e := r.WaitFor(wait, "connection "+local.String(), func(e nwtest.Ev) bool {
		return e.Str("type") == "connection" && e.Num("netns") == inode &&
			e.Str("src") == local.String() && e.Str("dst") == remote.String()
	})
	return e.Str("sock")
}

// errorsOf returns the error records attributed to sock.
func errorsOf(r *nwtest.Run, sock string) []nwtest.Ev {
	return r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "error" && e.Str("sock") == sock })
}

// waitErrors waits until at least n error records of sock exist (or the
// deadline passes) and then a little longer, so extra records show up.
func waitErrors(r *nwtest.Run, sock string, n int) []nwtest.Ev {
	deadline := time.Now().Add(wait)
	for len(errorsOf(r, sock)) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return errorsOf(r, sock)
}

// errLogLines returns the err.log lines of sock.
func errLogLines(r *nwtest.Run, sock string) []string {
	var out []string
	for _, l := range strings.Split(r.File("err.log"), "\n") {
		if strings.HasPrefix(l, `error{sock="`+sock+`"`) {
			out = append(out, l)
		}
	}
	return out
}

// randPort is a port for a test's server or client. Each test traces only
// its own ports (-s): netwatcher sees the whole host, and the traffic of
// tests running in parallel must not flood its ring.
func randPort() uint16 { return uint16(20000 + rand.IntN(20000)) }

// checkNoLoss fails the test if netwatcher reported lost events: exact
// counts of records cannot be checked then.
func checkNoLoss(t *testing.T, r *nwtest.Run) {
	t.Helper()
	if s, lost := lostEvents(r); lost {
		t.Errorf("netwatcher lost events: %v", s)
	}
}

// lostEvents reports whether netwatcher's final stats record counts lost
// events (call after Stop).
func lostEvents(r *nwtest.Run) (nwtest.Ev, bool) {
	for _, e := range r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "stats" }) {
		if e.Num("lost_ring_full") != 0 || e.Num("lost_queue_full") != 0 {
			return e, true
		}
	}
	return nil, false
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func family(v6 bool) string {
	if v6 {
		return "v6"
	}
	return "v4"
}

func reasons(evs []nwtest.Ev) map[string]int {
	m := map[string]int{}
	for _, e := range evs {
		m[e.Str("reason")]++
	}
	return m
}
