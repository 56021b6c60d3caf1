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
