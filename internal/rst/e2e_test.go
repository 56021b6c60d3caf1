package rst_test

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

const wait = 10 * time.Second

// in runs fn inside the namespace (sockets made there stay there).
func in(t *testing.T, ns *nstest.NS, fn func() error) {
	t.Helper()
	if err := ns.Do(fn); err != nil {
		t.Fatal(err)
	}
}

// pair is one connection: the client made in ns, the server accepted.
type pair struct {
	client, server *net.TCPConn
	caddr, saddr   string // client's and server's ip:port (unmapped)
}

func connect(t *testing.T, ns *nstest.NS, ln net.Listener) pair {
	t.Helper()
	var c net.Conn
	in(t, ns, func() (err error) {
		c, err = net.Dial("tcp", ln.Addr().String())
		return err
	})
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	un := func(a net.Addr) string {
		ap := a.(*net.TCPAddr).AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return pair{client: c.(*net.TCPConn), server: s.(*net.TCPConn), caddr: un(c.LocalAddr()), saddr: un(c.RemoteAddr())}
}

// rstOf: the rst records of netns.
func rstOf(evs []nwtest.Ev, netns float64) []nwtest.Ev {
	var out []nwtest.Ev
	for _, e := range evs {
		if e.Str("type") == "rst" && e.Num("netns") == netns {
			out = append(out, e)
		}
	}
	return out
}

// one returns the record pred picks, which must be the only one; with
// missed (resets no BPF program ran for) not 0 there may be none (nil).
func one(t *testing.T, evs []nwtest.Ev, what string, missed uint64, pred func(nwtest.Ev) bool) nwtest.Ev {
	t.Helper()
	var got []nwtest.Ev
	for _, e := range evs {
		if pred(e) {
			got = append(got, e)
		}
	}
	if len(got) == 0 && missed > 0 {
		t.Logf("%s: no record (%d resets no BPF program ran for)", what, missed)
		return nil
	}
	if len(got) != 1 {
		t.Fatalf("%s: %d records, want 1: %v\nall: %v", what, len(got), got, evs)
	}
	return got[0]
}

func count(evs []nwtest.Ev, pred func(nwtest.Ev) bool) uint64 {
	n := uint64(0)
	for _, e := range evs {
		if pred(e) {
			n++
		}
	}
	return n
}

// Three ways to make the kernel send a reset, v4 and v6, in a namespace:
// connect() to a closed port (RST for no socket), close() with data left
// unread (TCPAbortOnClose), close() with SO_LINGER 0 (TCPAbortOnData).
// Each reset's records (who sent, who received, in which state, why)
// against the script, their numbers against the namespace's own MIB
// counters (nstat), and the exit totals of a second run filtered by the
// server's port (-s) on the raw_tp twins against what that side did.
// Records equal the BPF witness's resets exactly (sent, received); the
// kernel's counts less those (what no BPF program ran for, README,
// "Events no BPF program sees": 0 in most runs) are the only allowance.
func TestResetsAgainstNstat(t *testing.T) {
	ns := nstest.NewNS(t)
	netns := float64(ns.Inode(t))
	r := nwtest.Start(t, "--rst", "--no-packets")

	// the server's port, closed at first
	var port int
	in(t, ns, func() error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = l.Addr().(*net.TCPAddr).Port
		return l.Close()
	})
	sport := strconv.Itoa(port)
	t.Setenv("NW_AVOID", "tp_btf")
	rs := nwtest.Start(t, "--rst", "--no-packets", "-v", "-s", sport)
	for _, p := range []string{"nw_rst_tx_raw", "nw_rst_rx_raw", "nw_rst_close_raw"} {
		// stderr is copied by a goroutine of os/exec: it may lag
		for i := 0; !strings.Contains(rs.Stderr(), "prog="+p); i++ {
			if i == 100 {
				t.Fatalf("NW_AVOID=tp_btf: %s not attached:\n%s", p, rs.Stderr())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	wit := witness.Start(t, witness.Resets, uint32(ns.Inode(t)))
	before := oracle.Nstat(t, ns)
	type script struct {
		host          string
		unread, lingr pair
	}
	var runs []script
	for _, host := range []string{"127.0.0.1", "::1"} {
		s := script{host: host}
		hp := net.JoinHostPort(host, sport)
		// connect() to a closed port: refused
		in(t, ns, func() error {
			c, err := net.Dial("tcp", hp)
			if err == nil {
				c.Close()
				return errors.New("connect to a closed port succeeded")
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				return err
			}
			return nil
		})
		var ln net.Listener
		in(t, ns, func() (err error) {
			ln, err = net.Listen("tcp", hp)
			return err
		})
		// data left unread at close: the server aborts
		s.unread = connect(t, ns, ln)
		if _, err := s.unread.client.Write([]byte("never read")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the data is in the server's queue
		s.unread.server.Close()
		// SO_LINGER 0: the client aborts
		s.lingr = connect(t, ns, ln)
		if err := s.lingr.client.SetLinger(0); err != nil {
			t.Fatal(err)
		}
		s.lingr.client.Close()
		time.Sleep(20 * time.Millisecond)
		s.unread.client.Close()
		s.lingr.server.Close()
		ln.Close()
		runs = append(runs, s)
	}
	time.Sleep(50 * time.Millisecond)
	after := oracle.Nstat(t, ns)
	d := func(k string) uint64 { return after[k] - before[k] }
	wc := wit.Counts(t)
	wc.Usable(t)
	// 3 sent and 3 received per family, less what no BPF program ran for
	missed := witness.Shortfall(t, "resets sent", d("TcpOutRsts"), wc.RstSent) +
		witness.Shortfall(t, "resets received", 6, wc.RstRecv)
	witness.Note(t, missed, "resets")
	if d("TcpOutRsts") != 6 {
		t.Errorf("TcpOutRsts +%d, want 6 (the oracle disagrees with the script)", d("TcpOutRsts"))
	}

	r.WaitFor(wait, "the last reset", func(e nwtest.Ev) bool {
		return uint64(len(rstOf(r.Events(), netns))) >= wc.RstSent+wc.RstRecv
	})
	time.Sleep(200 * time.Millisecond) // anything more would be a defect
	evs := rstOf(r.Events(), netns)

	sent := func(e nwtest.Ev) bool { return e.Str("dir") == "sent" }
	if s := count(evs, sent); s != wc.RstSent || uint64(len(evs))-s != wc.RstRecv {
		t.Errorf("records: %d sent, %d received; the BPF witness: %d, %d", s, uint64(len(evs))-s, wc.RstSent, wc.RstRecv)
	}
	t.Logf("BPF witness: %d resets sent, %d received", wc.RstSent, wc.RstRecv)
	for _, s := range runs {
		hp := net.JoinHostPort(s.host, sport)
		hp = netip.MustParseAddrPort(hp).String()
		// refused: sent for no socket by the port, received in SYN_SENT
		e := one(t, evs, s.host+" reset for no socket", missed, func(e nwtest.Ev) bool {
			return sent(e) && e.Str("src") == hp && e.Str("sock") == "0x0"
		})
		if e != nil && e.Has("state") || e.Has("conn_rst_sent") || (e["reason"] != nil && e.Str("reason") != "NO_SOCKET") {
			t.Errorf("%s reset for no socket: %v", s.host, e)
		}
		e = one(t, evs, s.host+" refused connect", missed, func(e nwtest.Ev) bool {
			return !sent(e) && e.Str("dst") == hp && e.Str("state") == "SYN_SENT"
		})
		if e != nil && e.Has("reason") || e.Num("pid") <= 0 {
			t.Errorf("%s refused connect: %v", s.host, e)
		}
		// unread data: the server sends (aborting ESTABLISHED), the client receives in ESTABLISHED
		for _, c := range []struct {
			name, src, dst, reason string
		}{
			{"abort on close", s.unread.saddr, s.unread.caddr, "TCP_ABORT_ON_CLOSE"},
			{"linger 0", s.lingr.caddr, s.lingr.saddr, "TCP_STATE"},
		} {
			e := one(t, evs, s.host+" "+c.name+" sent", missed, func(e nwtest.Ev) bool {
				return sent(e) && e.Str("src") == c.src && e.Str("dst") == c.dst
			})
			if e != nil && e.Str("state") != "ESTABLISHED" || e.Num("aborted") != 1 || e.Num("conn_id") <= 0 ||
				e.Num("conn_rst_sent") != 1 || e.Num("conn_rst_received") != 0 || e.Num("pid") <= 0 ||
				(e["reason"] != nil && e.Str("reason") != c.reason) {
				t.Errorf("%s %s: sent %v, want state ESTABLISHED (aborted), reason %s, named", s.host, c.name, e, c.reason)
			}
			e = one(t, evs, s.host+" "+c.name+" received", missed, func(e nwtest.Ev) bool {
				return !sent(e) && e.Str("src") == c.dst && e.Str("dst") == c.src
			})
			if e != nil && e.Str("state") != "ESTABLISHED" || e.Num("aborted") != 0 || e.Num("conn_id") <= 0 ||
				e.Num("conn_rst_sent") != 0 || e.Num("conn_rst_received") != 1 || e.Has("reason") {
				t.Errorf("%s %s: received %v, want state ESTABLISHED, named", s.host, c.name, e)
			}
		}
	}

	// the kernel's own numbers for the namespace
	est := func(e nwtest.Ev) bool { return e.Str("state") == "ESTABLISHED" || e.Str("state") == "CLOSE_WAIT" }
	reason := func(name string) func(nwtest.Ev) bool {
		return func(e nwtest.Ev) bool { return sent(e) && e.Str("reason") == name }
	}
	for _, c := range []struct {
		mib  string
		mine uint64
	}{
		{"TcpOutRsts", count(evs, sent)},
		{"TcpEstabResets", count(evs, est)}, // left ESTABLISHED/CLOSE_WAIT for CLOSE: both ends of an abort
		{"TcpExtTCPAbortOnClose", count(evs, reason("TCP_ABORT_ON_CLOSE"))},
		{"TcpExtTCPAbortOnData", count(evs, reason("TCP_STATE"))}, // close() with SO_LINGER 0 (tcp_disconnect)
	} {
		t.Logf("%s: nstat %d, netwatcher %d", c.mib, d(c.mib), c.mine)
		if c.mine > d(c.mib) || d(c.mib)-c.mine > missed || d(c.mib) == 0 {
			t.Errorf("%s: nstat delta %d, netwatcher %d (resets no BPF program ran for: %d)", c.mib, d(c.mib), c.mine, missed)
		}
	}

	// rst.log: one line per record, the same fields
	r.Stop()
	log := r.File("rst.log")
	for _, e := range evs {
		state, rsn := e.Str("state"), e.Str("reason")
		if state == "" {
			state = "-"
		}
		if rsn == "" {
			rsn = "-"
		}
		id := "-"
		if n := e.Num("conn_id"); n > 0 {
			id = strconv.Itoa(int(n))
		}
		line := `rst{sock="` + e.Str("sock") + `",src="` + e.Str("src") + `",dst="` + e.Str("dst") + `",dir="` + e.Str("dir") +
			`",state="` + state + `",reason="` + rsn + `",conn_id="` + id + `"}`
		if !strings.Contains(log, line+"\n") {
			t.Errorf("rst.log lacks %s", line)
		}
	}

	// -s PORT on the raw_tp twins: the server side's resets, totals at exit
	rs.Stop()
	local := func(e nwtest.Ev) bool {
		ap, err := netip.ParseAddrPort(e.Str("src"))
		return err == nil && int(ap.Port()) == port
	}
	var wantSent, wantRecv uint64
	for _, e := range evs {
		if !local(e) {
			continue
		}
		if sent(e) {
			wantSent++
		} else {
			wantRecv++
		}
	}
	st := rs.Find(func(e nwtest.Ev) bool { return e.Str("type") == "stats" })
	if len(st) != 1 {
		t.Fatalf("filtered run: %d stats records", len(st))
	}
	filtered := rstOf(rs.Events(), netns)
	t.Logf("-s %s (raw_tp): rst_sent %v rst_received %v, records %d; server side in the unfiltered run: %d sent, %d received",
		sport, st[0]["rst_sent"], st[0]["rst_received"], len(filtered), wantSent, wantRecv)
	if wantSent > 4 || wantRecv > 2 || wantSent+wantRecv+missed < 6 {
		t.Errorf("server side: %d sent, %d received; want 4, 2 (resets no BPF program ran for: %d)", wantSent, wantRecv, missed)
	}
	if st[0].Num("rst_sent") != float64(wantSent) || st[0].Num("rst_received") != float64(wantRecv) ||
		count(filtered, sent) != wantSent || uint64(len(filtered)) != wantSent+wantRecv {
		t.Errorf("filtered run: stats %v, %d records; want %d sent, %d received", st[0], len(filtered), wantSent, wantRecv)
	}
}
