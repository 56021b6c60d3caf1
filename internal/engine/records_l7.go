package engine

import (
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/l7cap"
)

// ---- application capture (-N, -R, -M): internal/l7cap ----

// l7proto is the capture's protocol of record type t (DNS, Redis,
// MySQL), nil when it is off. Each records_<proto>.go type-asserts it to
// its package's type to reach its tracker.
func (p *pipeline) l7proto(t event.Type) l7cap.Protocol {
	for _, c := range p.concerns {
		if l, ok := c.(*l7cap.Concern); ok {
			return l.Protocol(t)
		}
	}
	return nil
}
