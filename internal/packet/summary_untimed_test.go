package packet

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// TestSummaryWithoutPacketObject: on a kernel where the packet object
// cannot load (5.10: no bpf_loop; faked here), --summary -t still loads:
// one warning says the layer-time histograms are missing, and the exit
// summaries are counts only (Timed false), counting the traffic made
// meanwhile. Without --summary the concern does not load.
func TestSummaryWithoutPacketObject(t *testing.T) {
	nstest.RequireRoot(t)
	saved := bpfLoop
	bpfLoop = kernel.Feature{Name: "BPF helper bpf_loop (test: absent)", Probe: func() error { return errors.New("not in this kernel") }}
	t.Cleanup(func() { bpfLoop = saved })

	cp, err := conn.Load(conn.Options{ConnSum: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)
	if err := cp.Attach(slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}

	if err := New(&config.Config{Time: true}).Load(&config.Config{Time: true}, cp.SharedMaps()); err == nil || !strings.Contains(err.Error(), "bpf_loop") {
		t.Errorf("-t without the packet object: %v, want the bpf_loop error", err)
	}

	cfg := &config.Config{Summary: true, Time: true}
	c := New(cfg)
	if err := c.Load(cfg, cp.SharedMaps()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if c.Coll != nil {
		t.Error("the packet object loaded")
	}
	w := &warnings{text: slog.NewTextHandler(io.Discard, nil)}
	if err := c.Attach(slog.New(w)); err != nil {
		t.Fatal(err)
	}
	if len(w.recs) != 1 || !strings.Contains(w.recs[0].Message, "layer-time histograms missing") {
		var msgs []string
		for _, r := range w.recs {
			msgs = append(msgs, r.Message)
		}
		t.Errorf("warnings %q, want one about the missing histograms", msgs)
	}

	// traffic: 20 kB each way on one loopback connection of a namespace
	const size = 20000
	ns := nstest.NewNS(t)
	err = ns.Do(func() error {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		a, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			return err
		}
		defer a.Close()
		b, err := l.Accept()
		if err != nil {
			return err
		}
		defer b.Close()
		buf := make([]byte, size)
		for _, p := range [][2]net.Conn{{a, b}, {b, a}} {
			if _, err := p[0].Write(buf); err != nil {
				return err
			}
			if _, err := io.ReadFull(p[1], buf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var got []event.LayerSumInfo
	c.Finish(output.MonoNow(), func(ev *event.Event) { got = append(got, ev.Ext.Layer) })
	if len(got) != 2 {
		t.Fatalf("%d exit summaries, want 2 (rx, tx)", len(got))
	}
	for _, s := range got {
		// both sides are tracked: each direction carries 2 x size
		if s.Timed || !s.Final || s.Bytes < 2*size || s.Segs < 2 {
			t.Errorf("exit summary rx=%v: timed %v final %v segments %d bytes %d, want counts only, >= %d bytes",
				s.Rx, s.Timed, s.Final, s.Segs, s.Bytes, 2*size)
		}
	}
}
