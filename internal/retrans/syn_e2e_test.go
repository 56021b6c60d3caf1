package retrans_test

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/retrans"
	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/ringtest"
)

// A SYN retransmitted while the path is black (issue 10): the connection
// is not established yet, so its kernel entry has no tuple and user space
// has not seen it open. Its retransmit and RTO-episode records must still
// name it: the client's address in its namespace -> the server's, that
// namespace, and the process that called connect().
func TestSynRetransmitRecords(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "nft")
	cp, rd := probes(t, 0)
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	wantComm := strings.TrimSpace(string(comm))
	p := nstest.NewPair(t)
	for _, v6 := range []bool{false, true} {
		t.Run(lab.Family(v6), func(t *testing.T) {
			cli, srv := synThroughBlackout(t, p, v6, 0)
			// The client's socket and establishment time, from the kernel table.
			netns := uint32(p.A.Inode(t))
			var sk, est uint64
			if err := cp.Sample(func(s uint64, c *event.Conn, _ *event.Stats) {
				if c.Netns == netns && c.Src == cli && c.Dst == srv {
					sk, est = s, c.EstNs
				}
			}); err != nil {
				t.Fatal(err)
			}
			if sk == 0 {
				t.Fatalf("client socket %v -> %v not in the kernel table", cli, srv)
			}
			var rtx, loss int
			for _, ev := range ringtest.Records(t, rd, retrans.Decode, func(ev *event.Event) bool { return ev.Conn.Sock == sk && ev.TS < est }) {
				switch {
				case ev.Type == event.Retrans:
					rtx++
				case ev.Type == event.Cong && ev.Retrans.CaState == event.CaLoss:
					loss++
				}
				c := &ev.Conn
				if c.Src != cli || c.Dst != srv || c.Netns != netns || c.Netns == 0 || c.Pid != uint32(os.Getpid()) ||
					string(c.Comm.Bytes()) != wantComm || c.OwnerSrc != event.OwnerSyscall || !ev.Retrans.PreEst {
					t.Errorf("record (type %d) before establishment: %v -> %v netns %d pid %d comm %q owner %v pre_est %v; want %v -> %v netns %d pid %d comm %q owner syscall pre_est true",
						ev.Type, c.Src, c.Dst, c.Netns, c.Pid, c.Comm.Bytes(), c.OwnerSrc, ev.Retrans.PreEst,
						cli, srv, netns, os.Getpid(), wantComm)
				}
			}
			t.Logf("before establishment: %d retransmit records, %d Loss episode records", rtx, loss)
			if rtx == 0 || loss == 0 {
				t.Errorf("%d retransmit and %d Loss records before the connection was established, want >= 1 each", rtx, loss)
			}
		})
	}
}

// The -s/-d filter applies to a connection's entry only once it is
// established (at connect() its local port is not bound yet), so the
// records of a SYN retransmit apply it themselves: -d to another port,
// nothing about this connection.
func TestSynRetransmitFiltered(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "nft")
	other := lab.RandPort()
	_, rd := probes(t, other)
	p := nstest.NewPair(t)
	cli, srv := synThroughBlackout(t, p, false, other)
	for _, ev := range ringtest.Records(t, rd, retrans.Decode, func(ev *event.Event) bool { return ev.Conn.Src == cli || ev.Conn.Dst == srv }) {
		t.Errorf("-d %d, but a record (type %d) of %v -> %v: %+v", other, ev.Type, cli, srv, ev)
	}
}

// probes loads and attaches the connection and -r objects (with -d dport
// unless 0) and returns the connection probe and a reader of their ring;
// the test's cleanup closes them.
func probes(t *testing.T, dport uint16) (*conn.Probe, *ringbuf.Reader) {
	t.Helper()
	cfg := &config.Config{Retrans: true, Dport: dport}
	rc := retrans.New(cfg)
	return ringtest.Open(t, conn.Options{Dport: dport}, cfg, rc, rc.Attach)
}

// synThroughBlackout connects A -> B of p (server port and client port
// random, neither avoid) while the client -> server direction is black,
// so that the first SYN is lost and retransmitted, and returns the
// connection's client and server addresses.
func synThroughBlackout(t *testing.T, p *nstest.Pair, v6 bool, avoid uint16) (cli, srv netip.AddrPort) {
	t.Helper()
	port, cliPort := lab.RandPort(), lab.RandPort()
	for port == avoid || cliPort == avoid || cliPort == port {
		port, cliPort = lab.RandPort(), lab.RandPort()
	}
	cli, srv = netip.AddrPortFrom(p.A4, cliPort), netip.AddrPortFrom(p.B4, port)
	if v6 {
		cli, srv = netip.AddrPortFrom(p.A6, cliPort), netip.AddrPortFrom(p.B6, port)
	}
	// The blackout is one element of an nft set, added right after Ready;
	// the first SYN goes out 300 ms later (dropped), the kernel retransmits
	// it after its initial RTO of 1 s, when the 700 ms blackout is over: one
	// SYN retransmit, one Loss episode.
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		res, err := fault.Blackout(lab.Ctx(t), fault.BlackoutOptions{Netns: p.B.Name, Flow: fault.Flow{Src: cli, Dst: srv},
			Length: 700 * time.Millisecond, Out: lab.Log(t), Ready: func() { close(ready) }})
		if err == nil && res.Dropped == 0 {
			err = errors.New("the blackout dropped nothing: no SYN was retransmitted")
		}
		done <- err
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("blackout: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	c := lab.Dial(t, p, v6, port, cliPort)
	t.Logf("connected %v -> %v in %v", c.ClientAddr, c.ServerAddr, time.Since(start).Round(time.Millisecond))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c.ClientAddr != cli || c.ServerAddr != srv {
		t.Fatalf("connection %v -> %v, want %v -> %v", c.ClientAddr, c.ServerAddr, cli, srv)
	}
	return cli, srv
}
