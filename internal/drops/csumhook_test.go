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
	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// The tcp_bad_csum hook on its own (what runs where kfree_skb has no drop
// reason): one record per bad segment, attributed by addresses.
func TestBadCsumHookAlone(t *testing.T) {
	nstest.RequireRoot(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
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
	if err := c.AttachOnly(drops.BoundaryCsum); err != nil {
		t.Fatal(err)
	}
	rd, err := ringbuf.NewReader(cp.Events())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	p := nstest.NewPair(t)
	p.RxChecksumOff(t, true)
	tc := lab.Dial(t, p, false, 0, 0)
	const n = 4
	res, err := fault.BadCsum(lab.Ctx(t), tc.Injection(t, n, ""))
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[uint32]bool{}
	for _, s := range res.Segments {
		seqs[s.Seq] = true
	}
	got := 0
	rd.SetDeadline(time.Now().Add(500 * time.Millisecond))
	var ev event.Event
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
		if ev.Err.Name != drops.InvalidCsum || !seqs[ev.Err.Seq] || ev.Conn.Netns != uint32(p.B.Inode(t)) {
			t.Errorf("record %+v: want %q, an injected seq, netns %d", ev.Err, drops.InvalidCsum, p.B.Inode(t))
		}
	}
	if got != n {
		t.Errorf("%d records from tcp_bad_csum alone, want %d", got, n)
	}
}
