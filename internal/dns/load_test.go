package dns

import (
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/testsupport/ringtest"
)

// TestLoad: the verifier accepts both programs, with and without the
// filters compiled in.
func TestLoad(t *testing.T) {
	for _, cfg := range []*config.Config{{}, {Sport: 53, Dport: 53}} {
		c := New(cfg)
		ringtest.Load(t, conn.Options{}, cfg, c)
		for _, name := range []string{"nw_dns_tx", "nw_dns_rx"} {
			if c.Coll.Programs[name] == nil {
				t.Errorf("program %s not loaded", name)
			}
		}
	}
}
