// Package tcpconn makes TCP connections between the two namespaces of an
// nstest.Pair from inside the test process, and puts traffic on them: the
// part of the end-to-end bench (package lab) that does not need the fault
// injector, so that internal/fault's own tests can use it too.
package tcpconn

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// Conn is a TCP connection from namespace A (client) to B (server), with
// both sockets created inside their namespaces by this test process.
type Conn struct {
	Client, Server *net.TCPConn
	ClientAddr     netip.AddrPort // the client's address (IPv4 unmapped)
	ServerAddr     netip.AddrPort // the server's address (IPv4 unmapped)
}

// Dial connects A -> B of pair over IPv4 or IPv6, to server port port and
// from client port cliPort (0: any, for either). It fails the test if the
// connection cannot be made; cleanup closes both sockets.
func Dial(t testing.TB, pair *nstest.Pair, v6 bool, port, cliPort uint16) *Conn {
	t.Helper()
	srv := netip.AddrPortFrom(pair.B4, port)
	if v6 {
		srv = netip.AddrPortFrom(pair.B6, port)
	}
	var ln *net.TCPListener
	if err := pair.B.Do(func() (err error) {
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
	if err := pair.A.Do(func() error {
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
	return &Conn{Client: c, Server: s, ClientAddr: unmap(c.LocalAddr()), ServerAddr: unmap(c.RemoteAddr())}
}

// RoundTrip sends n bytes (a pattern that starts at seed) from client to
// server and back, and checks that both sides got them intact.
func (c *Conn) RoundTrip(n int, seed byte) error {
	msg := make([]byte, n)
	for i := range msg {
		msg[i] = seed + byte(i*7)
	}
	dl := time.Now().Add(5 * time.Second)
	c.Client.SetDeadline(dl)
	c.Server.SetDeadline(dl)
	defer c.Client.SetDeadline(time.Time{})
	defer c.Server.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.Server, buf); err != nil {
			errc <- fmt.Errorf("server read: %w", err)
			return
		}
		if !bytes.Equal(buf, msg) {
			errc <- fmt.Errorf("server got corrupted data")
			return
		}
		_, err := c.Server.Write(buf)
		errc <- err
	}()
	if _, err := c.Client.Write(msg); err != nil {
		return fmt.Errorf("client write: %w", err)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c.Client, buf); err != nil {
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

// Bulk sends from client to server until the returned function is called;
// that function then half-closes, waits, fails the test unless the server
// received every byte, and returns how many were sent.
func (c *Conn) Bulk(t testing.TB) (finish func() int64) {
	var got, sent int64
	var serr, cerr error
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.Server.SetReadDeadline(time.Now().Add(30 * time.Second))
		got, serr = io.Copy(io.Discard, c.Server)
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		c.Client.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for {
			select {
			case <-stop:
				cerr = c.Client.CloseWrite()
				return
			default:
			}
			n, err := c.Client.Write(buf)
			sent += int64(n)
			if err != nil {
				cerr = err
				return
			}
		}
	}()
	return func() int64 {
		close(stop)
		wg.Wait()
		if cerr != nil || serr != nil {
			t.Fatalf("bulk transfer: client %v, server %v", cerr, serr)
		}
		if got != sent {
			t.Fatalf("bulk transfer: sent %d bytes, server got %d", sent, got)
		}
		return sent
	}
}

// Ctx is a context for one fault injection (or another step of a test that
// must not hang): cancelled after 30 s, or when the test ends.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Log is a writer into the test's log, one t.Log per write (e.g. the Out
// of the fault injector's options).
func Log(t testing.TB) io.Writer { return logWriter{t} }

type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// Family names an address family for subtests: "v4" or "v6".
func Family(v6 bool) string {
	if v6 {
		return "v6"
	}
	return "v4"
}
