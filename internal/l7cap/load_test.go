package l7cap

import (
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/testsupport/ringtest"
)

type testProto struct {
	t     event.Type
	ports []uint16
	cap   int
}

func (p testProto) Name() string                { return "test" }
func (p testProto) Type() event.Type            { return p.t }
func (p testProto) Ports() []uint16             { return p.ports }
func (p testProto) CapLen() int                 { return p.cap }
func (p testProto) LogNames() []string          { return nil }
func (p testProto) Counters() map[string]uint64 { return nil }

// TestLoad: the verifier accepts both programs, with and without the
// filters compiled in; the port map and the copy lengths are filled.
func TestLoad(t *testing.T) {
	for _, cfg := range []*config.Config{{}, {Sport: 53, Dport: 53}} {
		c := New(cfg, testProto{event.DNS, []uint16{53}, event.DNSMax}, testProto{event.Redis, []uint16{6379, 6380}, 4096})
		ringtest.Load(t, conn.Options{}, cfg, c)
		for _, name := range []string{"nw_l7_tx", "nw_l7_rx"} {
			if c.Coll.Programs[name] == nil {
				t.Errorf("program %s not loaded", name)
			}
		}
		var ty uint8
		for port, want := range map[uint32]event.Type{53: event.DNS, 6379: event.Redis, 6380: event.Redis, 80: 0} {
			if err := c.Coll.Maps["nw_l7_ports"].Lookup(port, &ty); err != nil || event.Type(ty) != want {
				t.Errorf("port %d: type %d, want %d (%v)", port, ty, want, err)
			}
		}
		var n uint16
		if err := c.Coll.Maps["nw_l7_caps"].Lookup(uint32(event.Redis), &n); err != nil || n != event.AppMax {
			t.Errorf("redis copy length %d (%v)", n, err)
		}
	}
}

// TestLoadDuplicatePort: two protocols on one port is an error.
func TestLoadDuplicatePort(t *testing.T) {
	c := New(&config.Config{}, testProto{event.DNS, []uint16{53}, 512}, testProto{event.Redis, []uint16{53}, 512})
	if err := c.Load(&config.Config{}, nil); err == nil {
		t.Fatal("no error")
	}
}
