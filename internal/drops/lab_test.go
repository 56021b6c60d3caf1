package drops_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/drops"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/ringtest"
)

// loadConcern loads conn's programs and on them the drops concern (Err on),
// without attaching any of its boundaries; cleanup closes both.
func loadConcern(t *testing.T) *drops.Concern {
	t.Helper()
	cfg := &config.Config{Err: true}
	c := drops.New(cfg)
	ringtest.Load(t, conn.Options{}, cfg, c)
	return c
}

// attachOnly is loadConcern with conn's programs attached and, of the
// drops concern, only the boundaries named; it returns the concern and a
// reader of the event ring (closed at cleanup).
func attachOnly(t *testing.T, boundaries ...string) (*drops.Concern, *ringbuf.Reader) {
	t.Helper()
	cfg := &config.Config{Err: true}
	c := drops.New(cfg)
	_, rd := ringtest.Open(t, conn.Options{}, cfg, c, func(*slog.Logger) error {
		for _, b := range boundaries {
			if err := c.AttachOnly(b); err != nil {
				return err
			}
		}
		return nil
	})
	return c, rd
}

// flowErrors reads the ring for 500 ms and returns the error records of
// tc's client -> server flow.
func flowErrors(t *testing.T, rd *ringbuf.Reader, c *drops.Concern, tc *lab.Conn) []event.Event {
	t.Helper()
	return ringtest.Records(t, rd, c.Decode, func(ev *event.Event) bool {
		return ev.Err.Src == tc.ClientAddr && ev.Err.Dst == tc.ServerAddr
	})
}

// errorsOf returns the error records attributed to sock.
func errorsOf(r *nwtest.Run, sock string) []nwtest.Ev {
	return r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "error" && e.Str("sock") == sock })
}

// waitErrors waits until at least n error records of sock exist (or the
// deadline passes) and then a little longer, so extra records show up.
func waitErrors(r *nwtest.Run, sock string, n int) []nwtest.Ev {
	deadline := time.Now().Add(lab.Wait)
	for len(errorsOf(r, sock)) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return errorsOf(r, sock)
}

// errLogLines returns the err.log lines of sock.
func errLogLines(r *nwtest.Run, sock string) []string {
	var out []string
	for _, l := range strings.Split(r.File("err.log"), "\n") {
		if strings.HasPrefix(l, `error{sock="`+sock+`"`) {
			out = append(out, l)
		}
	}
	return out
}

func reasons(evs []nwtest.Ev) map[string]int {
	m := map[string]int{}
	for _, e := range evs {
		m[e.Str("reason")]++
	}
	return m
}
