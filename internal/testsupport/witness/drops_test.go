package witness_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// TestDropsMatchNstat: a UDP receiver with the smallest receive buffer,
// never reading, flooded over loopback in a namespace of the test's own;
// the witness's SOCKET_RCVBUFF drops equal the namespace's
// UdpRcvbufErrors delta, less what no BPF program saw (noted). Drops of
// another namespace are not counted.
func TestDropsMatchNstat(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NewNS(t)
	other := nstest.NewNS(t)
	w := witness.Start(t, witness.Drops, uint32(ns.Inode(t)))
	flood := func(ns *nstest.NS) {
		err := ns.Do(func() error {
			rc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
			if err != nil {
				return err
			}
			defer rc.Close()
			if err := rc.SetReadBuffer(1); err != nil {
				return err
			}
			c, err := net.DialUDP("udp", nil, rc.LocalAddr().(*net.UDPAddr))
			if err != nil {
				return err
			}
			defer c.Close()
			buf := make([]byte, 1000)
			for range 300 {
				if _, err := c.Write(buf); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	flood(other)
	before := oracle.Nstat(t, ns)
	flood(ns)
	want := oracle.Delta(before, oracle.Nstat(t, ns), "UdpRcvbufErrors")
	c := w.Counts(t)
	c.Usable(t)
	got := c.Dropped("SOCKET_RCVBUFF")
	t.Logf("UdpRcvbufErrors +%d; witness SOCKET_RCVBUFF %d (all reasons %v)", want, got, c.Drops)
	if want < 100 {
		t.Fatalf("only %d drops", want)
	}
	gap := witness.Shortfall(t, "SOCKET_RCVBUFF drops", want, got)
	witness.Note(t, gap, "SOCKET_RCVBUFF drops")
	if gap > want/10 {
		t.Errorf("witness missed %d of %d drops", gap, want)
	}
}

// TestResetsMatchNstat: connects to a closed port over loopback in a
// namespace of the test's own (and of another one): the witness's resets
// sent equal the namespace's TcpOutRsts delta, and each refused connect
// received its reset, less what no BPF program saw (noted).
func TestResetsMatchNstat(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NewNS(t)
	other := nstest.NewNS(t)
	w := witness.Start(t, witness.Resets, uint32(ns.Inode(t)))
	const n = 50
	refuse := func(ns *nstest.NS) {
		err := ns.Do(func() error {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			addr := l.Addr().String()
			l.Close()
			for range n {
				if c, err := net.Dial("tcp", addr); err == nil {
					c.Close()
					t.Errorf("connect to the closed port %s succeeded", addr)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	refuse(other)
	before := oracle.Nstat(t, ns)
	refuse(ns)
	out := oracle.Delta(before, oracle.Nstat(t, ns), "TcpOutRsts")
	c := w.Counts(t)
	c.Usable(t)
	t.Logf("TcpOutRsts +%d; witness: %d resets sent, %d received", out, c.RstSent, c.RstRecv)
	gap := witness.Shortfall(t, "resets sent", out, c.RstSent) + witness.Shortfall(t, "resets received", n, c.RstRecv)
	witness.Note(t, gap, "resets")
	if out != n || gap > n/10 {
		t.Errorf("TcpOutRsts +%d (want %d), the witness missed %d", out, n, gap)
	}
}

// TestStatesMatchNstat: TCP connections over loopback in a namespace of
// the test's own (and of another one), opened and closed: the witness's
// connections established equal TcpActiveOpens + TcpPassiveOpens, and
// every one of them closed, less what no BPF program saw (noted).
func TestStatesMatchNstat(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NewNS(t)
	other := nstest.NewNS(t)
	w := witness.Start(t, witness.States, uint32(ns.Inode(t)))
	const n = 100
	churn := func(ns *nstest.NS) {
		err := ns.Do(func() error {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			defer l.Close()
			done := make(chan error, 1)
			go func() {
				for range n {
					c, err := l.Accept()
					if err != nil {
						done <- err
						return
					}
					c.Close()
				}
				done <- nil
			}()
			for range n {
				c, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					return err
				}
				c.Close()
			}
			return <-done
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	churn(other)
	before := oracle.Nstat(t, ns)
	churn(ns)
	time.Sleep(100 * time.Millisecond) // the last closes
	after := oracle.Nstat(t, ns)
	opens := oracle.Delta(before, after, "TcpActiveOpens") + oracle.Delta(before, after, "TcpPassiveOpens")
	c := w.Counts(t)
	c.Usable(t)
	t.Logf("TcpActiveOpens + TcpPassiveOpens +%d; witness: %d established, %d closed", opens, c.Opened, c.Closed)
	gap := witness.Shortfall(t, "connections established", opens, c.Opened) + witness.Shortfall(t, "connections closed", 2*n, c.Closed)
	witness.Note(t, gap, "state changes")
	if opens != 2*n || gap > n/10 {
		t.Errorf("opens +%d (want %d), the witness missed %d", opens, 2*n, gap)
	}
}
