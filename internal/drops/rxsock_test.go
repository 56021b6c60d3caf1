package drops_test

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/drops"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// TestEveryCandidateLoads (issue 11): every program of the drop boundaries
// passes this kernel's verifier, the tcp_probe socket hooks of kernels
// without kfree_skb's rx_sk included (they are not loaded where rx_sk
// exists, so the test loads as before 6.11), and the kprobe/kretprobe pair
// on __skb_checksum_complete for kernels without tcp_bad_csum (before 5.14),
// which loads here although kprobes cannot attach.
func TestEveryCandidateLoads(t *testing.T) {
	nstest.RequireRoot(t)
	defer drops.WithoutRxSk()()
	cp, err := conn.Load(conn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	cfg := &config.Config{Err: true}
	c := drops.New(cfg)
	if err := c.Load(cfg, cp.SharedMaps()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	progs := c.Programs()
	for _, name := range []string{drops.BoundaryKfree, drops.BoundaryCsum, drops.BoundaryRxSock, drops.BoundaryCsumEntry} {
		for _, cand := range kernel.Hooks[name].Candidates {
			if !progs[cand.Prog] {
				t.Errorf("%s: candidate %s %s: program %s not loaded", name, cand.Kind, cand.Target, cand.Prog)
			}
		}
	}
}

// TestOutOfWindowWithoutRxSk: where kfree_skb has no rx_sk (6.1), a segment
// TCP drops after its socket lookup is still named by its socket and
// namespace, through the socket tcp_probe saw it reach. Loaded as on such a
// kernel (the rx_sk argument ignored), a sequence-check drop must come with
// a socket and the receiver's namespace, not as an unattributed drop.
func TestOutOfWindowWithoutRxSk(t *testing.T) {
	nstest.RequireRoot(t)
	defer drops.WithoutRxSk()()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cp, err := conn.Load(conn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if err := cp.Attach(log); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Err: true}
	c := drops.New(cfg)
	if err := c.Load(cfg, cp.SharedMaps()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, b := range []string{drops.BoundaryRxSock, drops.BoundaryKfree} {
		if err := c.AttachOnly(b); err != nil {
			t.Fatal(err)
		}
	}
	rd, err := ringbuf.NewReader(cp.Events())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	p := nstest.NewPair(t)
	tc := lab.Dial(t, p, false, 0, 0)
	const m = 3
	want := 0
	for _, mode := range []string{fault.ModeFuture, fault.ModeOld} {
		res, err := fault.OutOfWindow(lab.Ctx(t), tc.Injection(t, m, mode))
		if err != nil {
			t.Fatal(err)
		}
		want += len(res.Segments)
	}
	if err := tc.RoundTrip(1000, 5); err != nil {
		t.Fatal(err)
	}
	got, named := 0, 0
	var ev event.Event
	rd.SetDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		rec, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !c.Decode(rec.RawSample, &ev) || ev.Err.Src != tc.ClientAddr || ev.Err.Dst != tc.ServerAddr {
			continue
		}
		got++
		if ev.Conn.Sock != 0 && ev.Conn.Netns == uint32(p.B.Inode(t)) && ev.Err.Rx && ev.Err.Name == drops.InvalidSeq {
			named++
		} else {
			t.Logf("not named: sock %#x netns %d rx %v %q", ev.Conn.Sock, ev.Conn.Netns, ev.Err.Rx, ev.Err.Name)
		}
	}
	t.Logf("%d injected, %d records, %d with the socket and namespace", want, got, named)
	if got != want || named != want {
		t.Errorf("%d records, %d named by socket and namespace, want %d", got, named, want)
	}
}
