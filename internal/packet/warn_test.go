package packet

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// warnings keeps the warnings a logger was given and prints every record
// with slog's TextHandler, as netwatcher does.
type warnings struct {
	mu   sync.Mutex
	recs []slog.Record
	text slog.Handler
}

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *warnings) WithGroup(string) slog.Handler            { return w }
func (w *warnings) Handle(ctx context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r.Level >= slog.LevelWarn {
		w.recs = append(w.recs, r.Clone())
	}
	return w.text.Handle(ctx, r)
}

// TestMissingHookWarningsAreOneLine (issue 10): with -t, each boundary whose
// hook is missing is one warning on one clean line. When no namespace could
// take the IP-layer hooks, the namespace manager's error lists every
// namespace on a line of its own; slog printed those newlines as literal
// `\n` inside one long line.
func TestMissingHookWarningsAreOneLine(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.NewNS(t) // at least two namespaces fail: the error has several lines
	cp, err := conn.Load(conn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)
	cfg := &config.Config{Time: true}
	c := New(cfg)
	if err := c.Load(cfg, cp.SharedMaps()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// What a kernel without these hooks leaves: no program for them.
	for _, name := range []string{"nw_pkt_rx_mac", "nw_pkt_rx_ip", "nw_pkt_tx_ip"} {
		p := c.Coll.Programs[name]
		if p == nil {
			t.Fatalf("no program %s", name)
		}
		p.Close()
		delete(c.Coll.Programs, name)
	}
	var out bytes.Buffer
	w := &warnings{text: slog.NewTextHandler(&out, nil)}
	if err := c.Attach(slog.New(w)); err != nil {
		t.Fatal(err)
	}
	c.Detach()

	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range w.recs {
		seen[r.Message] = true
		bad := strings.Contains(r.Message, "\n")
		r.Attrs(func(a slog.Attr) bool {
			bad = bad || strings.Contains(a.Key, "\n") || strings.Contains(a.Value.String(), "\n")
			return true
		})
		if bad {
			t.Errorf("warning with a newline: %q %v", r.Message, r)
		}
	}
	for _, want := range []string{"layer time boundary missing (reported as -)", "IP-layer boundaries missing (mac_time and ip_time reported as -)"} {
		if !seen[want] {
			t.Errorf("no warning %q; got:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), `\n`) {
		t.Errorf("printed warnings contain a literal \\n:\n%s", out.String())
	}
}
