package tcpstate_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
)

const wait = 10 * time.Second

// life is the transitions netwatcher reported for one socket, from its
// first record to the one that takes it to CLOSE.
type life struct {
	sock string
	evs  []nwtest.Ev
}

func (l life) path() string {
	var s []string
	for i, e := range l.evs {
		if i == 0 {
			s = append(s, e.Str("old"))
		}
		s = append(s, e.Str("new"))
	}
	return strings.Join(s, ">")
}

// lives splits the tcpstate records of netns into socket lives (a socket
// address is reused once a socket is freed: a life ends at CLOSE).
func lives(evs []nwtest.Ev, netns float64) []life {
	open := map[string]*life{}
	var out []life
	for _, e := range evs {
		if e.Str("type") != "tcpstate" || e.Num("netns") != netns {
			continue
		}
		l := open[e.Str("sock")]
		if l == nil {
			l = &life{sock: e.Str("sock")}
			open[l.sock] = l
		}
		l.evs = append(l.evs, e)
		if e.Str("new") == "CLOSE" {
			out = append(out, *l)
			delete(open, l.sock)
		}
	}
	for _, l := range open {
		out = append(out, *l)
	}
	return out
}

// find returns the life with a record from local to peer (local port 0
// for a connection refused: its port was never reported).
func find(ls []life, local, peer netip.AddrPort) (life, bool) {
	for _, l := range ls {
		for _, e := range l.evs {
			if e.Str("src") == local.String() && e.Str("dst") == peer.String() {
				return l, true
			}
		}
	}
	return life{}, false
}

// in runs fn inside the namespace (sockets made there stay there).
func in(t *testing.T, ns *nstest.NS, fn func() error) {
	t.Helper()
	if err := ns.Do(fn); err != nil {
		t.Fatal(err)
	}
}

// pair is one scripted connection.
type pair struct {
	client, server net.Conn
	caddr, saddr   netip.AddrPort
}

func connect(t *testing.T, ns *nstest.NS, ln net.Listener) pair {
	t.Helper()
	var p pair
	in(t, ns, func() (err error) {
		p.client, err = net.Dial("tcp", ln.Addr().String())
		return err
	})
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	p.server = s
	p.caddr = p.client.LocalAddr().(*net.TCPAddr).AddrPort()
	p.saddr = p.client.RemoteAddr().(*net.TCPAddr).AddrPort()
	if _, err := p.client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := p.server.Read(buf); err != nil {
		t.Fatal(err)
	}
	return p
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// The transitions a scripted client and server must go through, v4 and v6,
// against what netwatcher reports for each socket; and, half-way through a
// close, the states ss shows.
func TestTransitionsOfScriptedConnections(t *testing.T) {
	ns := nstest.NewNS(t)
	r := nwtest.Start(t, "-P", "--no-packets")
	netns := float64(ns.Inode(t))

	type want struct{ name, client, server string }
	var checks []struct {
		want
		p pair
	}
	for _, host := range []string{"127.0.0.1", "::1"} {
		var ln net.Listener
		in(t, ns, func() (err error) {
			ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
			return err
		})
		defer ln.Close()

		// client closes first; ss sees FIN-WAIT-2 / CLOSE-WAIT half-way
		p := connect(t, ns, ln)
		p.client.Close()
		half := func(e nwtest.Ev) bool {
			return e.Str("type") == "tcpstate" && e.Str("new") == "FIN_WAIT2" && e.Str("src") == p.caddr.String()
		}
		r.WaitFor(wait, "FIN_WAIT2 of the client", half)
		ss := oracle.SS(t, ns, "-a")
		for _, x := range []struct {
			local, peer netip.AddrPort
			ss          string
		}{{p.caddr, p.saddr, "FIN-WAIT-2"}, {p.saddr, p.caddr, "CLOSE-WAIT"}} {
			in, ok := oracle.Lookup(ss, unmap(x.local), unmap(x.peer))
			if !ok || in.State != x.ss {
				t.Errorf("%s: ss has %v (%q), want %s", host, ok, in.State, x.ss)
			}
		}
		p.server.Close()
		checks = append(checks, struct {
			want
			p pair
		}{want{host + " client closes first",
			"CLOSE>SYN_SENT>ESTABLISHED>FIN_WAIT1>FIN_WAIT2>CLOSE",
			"LISTEN>SYN_RECV>ESTABLISHED>CLOSE_WAIT>LAST_ACK>CLOSE"}, p})

		// server closes first
		p = connect(t, ns, ln)
		p.server.Close()
		time.Sleep(50 * time.Millisecond) // the FIN is in before the client answers
		p.client.Close()
		checks = append(checks, struct {
			want
			p pair
		}{want{host + " server closes first",
			"CLOSE>SYN_SENT>ESTABLISHED>CLOSE_WAIT>LAST_ACK>CLOSE",
			"LISTEN>SYN_RECV>ESTABLISHED>FIN_WAIT1>FIN_WAIT2>CLOSE"}, p})

		// abort: SO_LINGER 0 sends a RST
		p = connect(t, ns, ln)
		if err := p.client.(*net.TCPConn).SetLinger(0); err != nil {
			t.Fatal(err)
		}
		p.client.Close()
		buf := make([]byte, 1)
		if _, err := p.server.Read(buf); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("server read after the client's RST: %v, want ECONNRESET", err)
		}
		p.server.Close()
		checks = append(checks, struct {
			want
			p pair
		}{want{host + " client aborts (RST)",
			"CLOSE>SYN_SENT>ESTABLISHED>CLOSE",
			"LISTEN>SYN_RECV>ESTABLISHED>CLOSE"}, p})

		// connect to a closed port: refused
		var closed netip.AddrPort
		in(t, ns, func() error {
			l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
			if err != nil {
				return err
			}
			closed = l.Addr().(*net.TCPAddr).AddrPort()
			l.Close()
			_, err = net.Dial("tcp", closed.String())
			if !errors.Is(err, syscall.ECONNREFUSED) {
				return fmt.Errorf("dial a closed port: %v, want ECONNREFUSED", err)
			}
			return nil
		})
		checks = append(checks, struct {
			want
			p pair
		}{want{host + " connection refused", "CLOSE>SYN_SENT>CLOSE", ""},
			pair{caddr: netip.AddrPortFrom(closed.Addr(), 0), saddr: closed}})
	}

	// every life ends in CLOSE: wait for the last one
	last := checks[len(checks)-2].p
	r.WaitFor(wait, "the last close", func(e nwtest.Ev) bool {
		return e.Str("type") == "tcpstate" && e.Str("new") == "CLOSE" && e.Str("src") == last.saddr.String() && e.Str("dst") == last.caddr.String()
	})
	r.Stop()
	ls := lives(r.Events(), netns)
	for _, c := range checks {
		for _, side := range []struct {
			local, peer netip.AddrPort
			want        string
		}{{c.p.caddr, c.p.saddr, c.client}, {c.p.saddr, c.p.caddr, c.server}} {
			if side.want == "" {
				continue
			}
			l, ok := find(ls, side.local, side.peer)
			if !ok {
				t.Errorf("%s: no records of %s -> %s", c.name, side.local, side.peer)
				continue
			}
			if got := l.path(); got != side.want {
				t.Errorf("%s: %s -> %s went %s, want %s", c.name, side.local, side.peer, got, side.want)
			}
			for i, e := range l.evs {
				// the first record of a life has no previous transition;
				// every later one has a time in its old state
				if d := e.Num("duration_ns"); (i == 0) != (d < 0) {
					t.Errorf("%s: %s record %d (%s>%s) duration_ns %v", c.name, side.local, i, e.Str("old"), e.Str("new"), e["duration_ns"])
				}
				hs := (e.Str("old") == "SYN_SENT" || e.Str("old") == "SYN_RECV") && e.Str("new") == "ESTABLISHED"
				if (e.Num("handshake") == 1) != hs {
					t.Errorf("%s: handshake flag %v on %s>%s", c.name, e["handshake"], e.Str("old"), e.Str("new"))
				}
			}
		}
	}
	// tcpstate.log has one line per record, with the same transitions
	logLines := strings.Count(r.File("tcpstate.log"), "\n")
	n := len(r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "tcpstate" }))
	if logLines != n {
		t.Errorf("tcpstate.log has %d lines, the console %d records", logLines, n)
	}
}

// The connecting side's handshake latency (SYN_SENT -> ESTABLISHED) is
// positive and no longer than the connect() call the client timed itself,
// for every connection of a run of short connections; every connection has
// its handshake record, owned by this process.
func TestHandshakeWithinConnectTime(t *testing.T) {
	ns := nstest.NewNS(t)
	r := nwtest.Start(t, "-P", "--no-packets", "-a")
	netns := float64(ns.Inode(t))
	var ln net.Listener
	in(t, ns, func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	const n = 300
	took := map[string]time.Duration{}
	in(t, ns, func() error {
		for range n {
			t0 := time.Now()
			c, err := net.Dial("tcp", ln.Addr().String())
			d := time.Since(t0)
			if err != nil {
				return err
			}
			took[c.LocalAddr().String()] = d
			c.Close()
		}
		return nil
	})
	seen := map[string]bool{}
	deadline := time.Now().Add(wait)
	for len(seen) < n && time.Now().Before(deadline) {
		for _, e := range r.Events() {
			if e.Str("type") != "tcpstate" || e.Num("netns") != netns || e.Str("old") != "SYN_SENT" || e.Str("new") != "ESTABLISHED" {
				continue
			}
			src := e.Str("src")
			d, ok := took[src]
			if !ok || seen[src] {
				continue
			}
			seen[src] = true
			hs := time.Duration(e.Num("duration_ns"))
			if hs <= 0 || hs > d {
				t.Errorf("%s: handshake %v, connect() took %v", src, hs, d)
			}
			if e.Num("handshake") != 1 {
				t.Errorf("%s: not marked as a handshake: %v", src, e)
			}
			if pid := e.Num("pid"); pid != float64(syscall.Getpid()) {
				t.Errorf("%s: pid %v, want %d", src, pid, syscall.Getpid())
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Stop()
	if len(seen) != n {
		t.Errorf("handshake records for %d of %d connections", len(seen), n)
	}
	var hs []float64
	for _, e := range r.Find(func(e nwtest.Ev) bool { return e.Num("handshake") == 1 && e.Num("netns") == netns }) {
		hs = append(hs, e.Num("duration_ns"))
	}
	slices.Sort(hs)
	if len(hs) > 0 {
		t.Logf("%d handshakes (both sides), median %s ns", len(hs), strconv.FormatFloat(hs[len(hs)/2], 'f', 0, 64))
	}
}

// A SYN the network loses: the handshake takes the SYN's retransmission
// timeout (1 s) more, and -P says so: SYN_SENT -> ESTABLISHED lasts at
// least the drop window and at most the connect() the client timed. The
// first SYN is dropped by an nft rule on the server side of a veth pair,
// active for 400 ms before the connect.
func TestHandshakeWithLostSYN(t *testing.T) {
	p := nstest.NewPair(t)
	r := nwtest.Start(t, "-P", "--no-packets")
	var ln net.Listener
	in(t, p.B, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(p.B4, 0).String())
		return err
	})
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	srv := ln.Addr().(*net.TCPAddr).AddrPort()
	cli := netip.AddrPortFrom(p.A4, uint16(20000+rand.IntN(20000)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	dropped := make(chan *fault.DropResult, 1)
	go func() {
		res, err := fault.Drop(ctx, fault.DropOptions{Netns: p.B.Name, Flow: fault.Flow{Src: cli, Dst: srv}, Every: 1,
			Duration: 400 * time.Millisecond, Ready: func() { close(ready) }})
		if err != nil {
			t.Error(err)
		}
		dropped <- res
	}()
	<-ready
	var took time.Duration
	in(t, p.A, func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(cli), Timeout: 10 * time.Second}
		t0 := time.Now()
		c, err := d.Dial("tcp", srv.String())
		took = time.Since(t0)
		if err != nil {
			return err
		}
		return c.Close()
	})
	res := <-dropped
	if res == nil || res.Dropped < 1 {
		t.Fatalf("the rule dropped nothing: %+v", res)
	}
	e := r.WaitFor(wait, "the handshake", func(e nwtest.Ev) bool {
		return e.Str("type") == "tcpstate" && e.Str("src") == cli.String() && e.Str("old") == "SYN_SENT" && e.Str("new") == "ESTABLISHED"
	})
	r.Stop()
	hs := time.Duration(e.Num("duration_ns"))
	t.Logf("nft dropped %d SYN(s); handshake %v, connect() took %v", res.Dropped, hs, took)
	if hs < 400*time.Millisecond || hs > took {
		t.Errorf("handshake %v: want at least the 400 ms drop window and at most connect()'s %v", hs, took)
	}
}
