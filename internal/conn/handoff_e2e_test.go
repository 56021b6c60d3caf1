package conn_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
)

// handoffServer is `nwpeer serve --handoff --echo`: the parent creates the
// listener, a child process (inheriting it) accepts and serves; the parent
// never touches a connection.
type handoffServer struct {
	parent *peer.Proc
	addr   string // from READY
	child  int    // from CHILD
}

func startHandoff(t *testing.T, ns *nstest.NS, addr netip.Addr, port int) handoffServer {
	t.Helper()
	p, a := peer.Serve(t, ns, "-l", netip.AddrPortFrom(addr, uint16(port)).String(), "--handoff", "--echo")
	f := strings.Fields(p.Expect("CHILD ", wait))
	child, err := strconv.Atoi(f[1])
	if err != nil || child <= 0 || child == p.Pid {
		t.Fatalf("CHILD %q: bad pid (parent %d)", f[1], p.Pid)
	}
	return handoffServer{parent: p, addr: a, child: child}
}

// dialHandoff connects a holding client (as dial does) and returns the two
// sides, the server side owned by the child, and a function that closes the
// client.
func dialHandoff(t *testing.T, hs handoffServer, cliNS *nstest.NS, send int) (cli, srv side, closeFn func()) {
	t.Helper()
	cp := peer.Start(t, cliNS, "connect", "-r", hs.addr, "--send", strconv.Itoa(send), "--hold", "--stdin-exit")
	f := strings.Fields(cp.Expect("CONNECTED", wait))
	cli = side{local: f[1], remote: f[2], pid: cp.Pid}
	srv = side{local: f[2], remote: f[1], pid: hs.child, server: true}
	// nwpeer's own view: the child accepted it.
	a := strings.Fields(hs.parent.Expect("ACCEPTED", wait))
	if len(a) != 4 || a[1] != srv.local || a[2] != srv.remote || a[3] != strconv.Itoa(hs.child) {
		t.Fatalf("ACCEPTED %q: want %s %s %d (the child)", a, srv.local, srv.remote, hs.child)
	}
	if cli.pid == hs.child || cli.pid == hs.parent.Pid {
		t.Fatal("client shares a pid with the server")
	}
	return cli, srv, func() {
		cp.CloseStdin()
		cp.Expect("CLOSED", wait)
	}
}

// sideEvents returns the open/exists/owner/close events about s, in order.
func sideEvents(r *nwtest.Run, s side) []nwtest.Ev {
	return r.Find(func(e nwtest.Ev) bool {
		return isConn("open", s)(e) || isConn("exists", s)(e) || isConn("owner", s)(e) || isConn("close", s)(e)
	})
}

func describe(evs []nwtest.Ev) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %s pid=%v comm=%q owner=%q is_server=%v", e.Str("event"), e.Num("pid"), e.Str("comm"), e.Str("owner"), e.Num("is_server"))
	}
	return b.String()
}

// connectsPid returns the pid connects.log gives s ("" if s is not listed).
func connectsPid(r *nwtest.Run, s side) string {
	for _, l := range strings.Split(r.File("connects.log"), "\n") {
		if strings.Contains(l, `src="`+s.local+`",dst="`+s.remote+`"`) {
			_, rest, _ := strings.Cut(l, `pid="`)
			pid, _, _ := strings.Cut(rest, `"`)
			return pid
		}
	}
	return ""
}

// checkHandoff checks the owners of both sides while the connection is up
// and after it is closed: the server side must end up with the child (the
// process that accepted and served), never stay with the parent (the one
// that created the listener).
func checkHandoff(t *testing.T, r *nwtest.Run, hs handoffServer, cli, srv side, closeCli func()) {
	t.Helper()
	checkSide(t, r, cli)
	checkSide(t, r, srv) // waits until the owner is the child

	// connects.log follows the owner change too.
	want := strconv.Itoa(srv.pid)
	deadline := time.Now().Add(wait)
	for got := connectsPid(r, srv); got != want; got = connectsPid(r, srv) {
		if time.Now().After(deadline) {
			t.Errorf("connects.log gives the server side pid %q, want %s (the child; parent %d):\n%s",
				got, want, hs.parent.Pid, r.File("connects.log"))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	closeCli()
	r.WaitFor(wait, "close client", isConn("close", cli))
	r.WaitFor(wait, "close server", isConn("close", srv))

	// Everything about the server side is in now. The last open/owner
	// event (what checkSide looks at) and the close must name the child.
	evs := sideEvents(r, srv)
	t.Logf("server side %s (parent %d, child %d):%s", srv.local, hs.parent.Pid, hs.child, describe(evs))
	var last nwtest.Ev
	for _, e := range evs {
		switch e.Str("event") {
		case "open", "exists", "owner":
			last = e
		}
		if pid := int(e.Num("pid")); pid != hs.child && pid != hs.parent.Pid && pid != 0 {
			t.Errorf("server side %s attributed to pid %d, neither parent %d nor child %d", e.Str("event"), pid, hs.parent.Pid, hs.child)
		}
	}
	cls := r.Find(isConn("close", srv))[0]
	for _, e := range []nwtest.Ev{last, cls} {
		if int(e.Num("pid")) != srv.pid || e.Str("comm") != "nwpeer" || e.Num("is_server") != 1 {
			t.Errorf("server side %s event: pid %v comm %q is_server %v, want pid %d (child, not parent %d) comm nwpeer is_server 1",
				e.Str("event"), e.Num("pid"), e.Str("comm"), e.Num("is_server"), srv.pid, hs.parent.Pid)
		}
	}
	if c := r.Find(isConn("close", cli))[0]; int(c.Num("pid")) != cli.pid || c.Num("is_server") != 0 {
		t.Errorf("client side close: pid %v is_server %v, want %d 0", c.Num("pid"), c.Num("is_server"), cli.pid)
	}
}

// TestHandoff: the listening socket is created by one process (the parent)
// and its connections are accepted and served by another (its child), as
// pre-fork servers and fd hand-off do. The accepted side belongs to the
// child. The listener exists either after netwatcher started (its owner
// seen at listen()) or before (found by the start-up walk).
func TestHandoff(t *testing.T) {
	nstest.RequireRoot(t)
	for _, tc := range []struct {
		name          string
		listenerFirst bool
		loopback      bool
		v6            bool
	}{
		{"listener-after-start/veth-v4", false, false, false},
		{"listener-after-start/lo-v6", false, true, true},
		{"listener-before-start/veth-v6", true, false, true},
		{"listener-before-start/lo-v4", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvNS, cliNS, addr := topology(t, tc.loopback, tc.v6)
			var r *nwtest.Run
			if !tc.listenerFirst {
				r = nwtest.Start(t)
			}
			hs := startHandoff(t, srvNS, addr, randPort())
			if tc.listenerFirst {
				r = nwtest.Start(t)
			}
			cli, srv, closeCli := dialHandoff(t, hs, cliNS, 1000)
			checkHandoff(t, r, hs, cli, srv, closeCli)
			r.Stop()
		})
	}
}
