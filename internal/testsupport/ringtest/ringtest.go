// Package ringtest is for tests that load a concern's programs directly,
// without a netwatcher run: it loads them on the connection programs,
// attaches them and reads their event ring.
package ringtest

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
)

// Concern is a concern's programs (drops, retrans, ...), as New returns.
type Concern interface {
	Load(cfg *config.Config, shared map[string]*ebpf.Map) error
	Close()
}

// Load loads the connection programs (options o) and c on their shared
// maps (cfg), attaching neither; cleanup closes both.
func Load(t testing.TB, o conn.Options, cfg *config.Config, c Concern) *conn.Probe {
	t.Helper()
	cp, err := conn.Load(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)
	if err := c.Load(cfg, cp.SharedMaps()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return cp
}

// Open is Load, then attaches the connection programs and c's (with attach,
// given a logger that writes to stderr under -v), and returns the probe and
// a reader of the event ring (closed at cleanup).
func Open(t testing.TB, o conn.Options, cfg *config.Config, c Concern, attach func(*slog.Logger) error) (*conn.Probe, *ringbuf.Reader) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	cp := Load(t, o, cfg, c)
	if err := cp.Attach(log); err != nil {
		t.Fatal(err)
	}
	if err := attach(log); err != nil {
		t.Fatal(err)
	}
	rd, err := ringbuf.NewReader(cp.Events())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return cp, rd
}

// Window is how long Records reads: records of what a test did before are
// in the ring by then.
const Window = 500 * time.Millisecond

// Records reads rd for Window, decodes each record with decode (a concern's
// Decode) and returns the decoded events keep wants. A read error other
// than the deadline fails the test.
func Records(t testing.TB, rd *ringbuf.Reader, decode func([]byte, *event.Event) bool, keep func(*event.Event) bool) []event.Event {
	t.Helper()
	var out []event.Event
	var ev event.Event
	rd.SetDeadline(time.Now().Add(Window))
	for {
		rec, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if decode(rec.RawSample, &ev) && keep(&ev) {
			out = append(out, ev)
		}
	}
}
