package drops

import (
	"io"
	"log/slog"
)

// AttachOnly attaches one boundary of a loaded concern, for tests of the
// hooks on their own.
func (c *Concern) AttachOnly(name string) error {
	_, err := c.Live.Attach(slog.New(slog.NewTextHandler(io.Discard, nil)), name)
	return err
}

// WithoutRxSk loads the next concerns as on a kernel whose kfree_skb has no
// rx_sk argument (before 6.11), until the returned function is called.
func WithoutRxSk() (restore func()) {
	noRxSk = true
	return func() { noRxSk = false }
}

// Programs lists the loaded programs.
func (c *Concern) Programs() map[string]bool {
	m := map[string]bool{}
	for n := range c.Coll.Programs {
		m[n] = true
	}
	return m
}
