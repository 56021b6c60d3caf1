package witness_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// TestDevicesMatchLinkCounters: TCP traffic on the loopback device of a
// namespace of the test's own; the witness's device counts equal lo's own
// packet counters (both directions are lo's: each packet is sent and
// received once), less what no BPF program saw (noted). Traffic of other
// namespaces is not counted.
func TestDevicesMatchLinkCounters(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NewNS(t)
	other := nstest.NewNS(t)
	w := witness.Start(t, witness.Devices, uint32(ns.Inode(t)))
	tx0, rx0 := witness.LinkPackets(t, ns, "lo")
	transfer := func(ns *nstest.NS) {
		err := ns.Do(func() error {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			defer ln.Close()
			done := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					_, err = io.Copy(io.Discard, c)
					c.Close()
				}
				done <- err
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return err
			}
			buf := make([]byte, 1000)
			for range 2000 {
				if _, err := c.Write(buf); err != nil {
					return err
				}
			}
			c.Close()
			return <-done
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	transfer(other)
	transfer(ns)
	c := w.Counts(t)
	tx1, rx1 := witness.LinkPackets(t, ns, "lo")
	tx, rx := tx1-tx0, rx1-rx0
	t.Logf("lo: tx %d rx %d; witness: xmit %d recv %d unsure %d", tx, rx, c.Xmit, c.Recv, c.Unsure)
	c.Usable(t)
	if tx < 100 {
		t.Fatalf("only %d packets sent", tx)
	}
	var missed uint64
	for _, x := range []struct {
		what         string
		kernel, seen uint64
	}{{"transmitted", tx, c.Xmit}, {"received", rx, c.Recv}} {
		n := witness.Shortfall(t, "packets "+x.what, x.kernel, x.seen)
		witness.Note(t, n, "packets "+x.what)
		missed += n
	}
	// the whole transfer of the other namespace would be ~2x tx more
	if missed > tx/10 {
		t.Errorf("witness missed %d of %d packets", missed, tx)
	}
}

// TestLinksPair: TCP traffic over a veth pair with segmentation offloads
// on and off; the witness's packets at the device tracepoints of both
// namespaces equal the devices' counters, less what no BPF program saw.
func TestLinksPair(t *testing.T) {
	nstest.RequireRoot(t)
	for _, off := range []bool{false, true} {
		p := nstest.NewPair(t)
		if off {
			p.NoSegmentOffload(t, true)
		}
		l := witness.StartLinks(t, p.A, p.B)
		var ln net.Listener
		if err := p.B.Do(func() (err error) {
			ln, err = net.Listen("tcp", net.JoinHostPort(p.B4.String(), "0"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				_, err = io.Copy(io.Discard, c)
				c.Close()
			}
			done <- err
		}()
		err := p.A.Do(func() error {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return err
			}
			buf := make([]byte, 1000)
			for range 3000 {
				if _, err := c.Write(buf); err != nil {
					return err
				}
			}
			return c.Close()
		})
		if err == nil {
			err = <-done
		}
		ln.Close()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if n := l.Missed(t); n > 50 {
			t.Errorf("offloads off %v: the witness missed %d packets", off, n)
		}
	}
}
