package conn_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
)

// The address filters (-S local, -D remote; CIDRs, v4 and v6, several of
// each) keep exactly the matching connection sides: their open/close,
// packet and state records appear, the others' do not, and the kernel
// counts what it left out (conn_filtered).
func TestAddressFilters(t *testing.T) {
	ns := nstest.NewNS(t)
	for _, a := range []string{"10.77.0.1/24", "10.77.0.2/24", "fd77::1/64", "fd77::2/64"} {
		ns.Run(t, "ip", "addr", "add", a, "dev", "lo", "nodad")
	}
	// local in 10.77.0.0/24 or fd77::/64, remote 10.77.0.2 or fd77::2
	r := nwtest.Start(t, "-P", "-S", "10.77.0.0/24", "--src-ip=fd77::/64", "-D", "10.77.0.2", "-D", "fd77::2/128")

	type flow struct{ from, to string }
	flows := []flow{
		{"10.77.0.1", "10.77.0.2"}, // client kept (remote .2), server filtered (remote .1)
		{"fd77::1", "fd77::2"},     // the same in v6
		{"10.77.0.2", "10.77.0.1"}, // client filtered, server kept
		{"127.0.0.1", "127.0.0.1"}, // both filtered (local not in -S)
		{"::1", "::1"},
	}
	type sideWant struct {
		local, remote netip.AddrPort
		kept          bool
	}
	var sides []sideWant
	for _, f := range flows {
		var ln net.Listener
		var c net.Conn
		if err := ns.Do(func() (err error) {
			if ln, err = net.Listen("tcp", net.JoinHostPort(f.to, "0")); err != nil {
				return err
			}
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(f.from)}}
			c, err = d.Dial("tcp", ln.Addr().String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5)
		if _, err := s.Read(buf); err != nil {
			t.Fatal(err)
		}
		cl := c.LocalAddr().(*net.TCPAddr).AddrPort()
		sv := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		sides = append(sides,
			sideWant{cl, sv, inFilter(cl.Addr(), sv.Addr())},
			sideWant{sv, cl, inFilter(sv.Addr(), cl.Addr())})
		c.Close()
		s.Close()
		ln.Close()
	}
	// the last kept side's close, then everything else is out
	r.WaitFor(wait, "close of a kept connection", func(e nwtest.Ev) bool {
		return e.Str("type") == "connection" && e.Str("event") == "close" && e.Str("src") == sides[5].local.String()
	})
	time.Sleep(200 * time.Millisecond)
	r.Stop()
	filtered := 0
	for _, s := range sides {
		if !s.kept {
			filtered++
		}
		var opens, packets, states int
		for _, e := range r.Events() {
			if e.Str("src") != s.local.String() || e.Str("dst") != s.remote.String() {
				continue
			}
			switch e.Str("type") {
			case "connection":
				if e.Str("event") == "open" {
					opens++
				}
			case "packet":
				packets++
			case "tcpstate":
				states++
			}
		}
		if s.kept && (opens != 1 || packets == 0 || states == 0) {
			t.Errorf("%s -> %s (kept): %d open, %d packet, %d state records", s.local, s.remote, opens, packets, states)
		}
		if !s.kept && opens+packets+states != 0 {
			t.Errorf("%s -> %s (filtered): %d open, %d packet, %d state records", s.local, s.remote, opens, packets, states)
		}
	}
	st := r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "stats" })
	if len(st) != 1 {
		t.Fatalf("%d stats records", len(st))
	}
	// other namespaces' connections may be filtered too: at least ours
	if got := st[0].Num("conn_filtered"); got < float64(filtered) {
		t.Errorf("conn_filtered = %v, want >= %d", got, filtered)
	}
}

func inFilter(local, remote netip.Addr) bool {
	src := []netip.Prefix{netip.MustParsePrefix("10.77.0.0/24"), netip.MustParsePrefix("fd77::/64")}
	dst := []netip.Addr{netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("fd77::2")}
	in := false
	for _, p := range src {
		in = in || p.Contains(local)
	}
	ok := false
	for _, a := range dst {
		ok = ok || a == remote
	}
	return in && ok
}
