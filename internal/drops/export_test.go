package drops

import "github.com/netwatcher/netwatcher/internal/kernel"

// AttachOnly attaches one boundary of a loaded concern, for tests of the
// hooks on their own.
func (c *Concern) AttachOnly(name string) error {
	a, err := kernel.Attach(c.coll, name)
	if err == nil {
		c.attached = append(c.attached, a)
	}
	return err
}
