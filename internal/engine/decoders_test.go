package engine

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
)

// fakeConcern decodes records of its types by writing the type into ev.
type fakeConcern struct {
	name  string
	types []event.Type
	calls int
}

func (f *fakeConcern) Name() string                                    { return f.name }
func (f *fakeConcern) Types() []event.Type                             { return f.types }
func (f *fakeConcern) Load(*config.Config, map[string]*ebpf.Map) error { return nil }
func (f *fakeConcern) Attach(*slog.Logger) error                       { return nil }
func (f *fakeConcern) Detach()                                         {}
func (f *fakeConcern) Close()                                          {}
func (f *fakeConcern) Decode(raw []byte, ev *event.Event) bool {
	f.calls++
	ev.Type = event.Type(raw[0])
	return true
}

// Each record goes to the one concern that claims its type; unclaimed and
// out-of-range types are undecodable; a type claimed twice is refused.
func TestDecodersDispatchByType(t *testing.T) {
	a := &fakeConcern{name: "a", types: []event.Type{event.ConnOpen, event.ConnClose}}
	b := &fakeConcern{name: "b", types: []event.Type{event.Packet}}
	d, err := newDecoders(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var ev event.Event
	for _, c := range []struct {
		raw  []byte
		ok   bool
		want *fakeConcern
	}{
		{[]byte{byte(event.ConnOpen)}, true, a},
		{[]byte{byte(event.Packet), 0, 0}, true, b},
		{[]byte{byte(event.ConnClose)}, true, a},
		{[]byte{byte(event.Error)}, false, nil},
		{[]byte{255}, false, nil},
		{nil, false, nil},
	} {
		before := [2]int{a.calls, b.calls}
		if got := d.decode(c.raw, &ev); got != c.ok {
			t.Errorf("decode(%v) = %v, want %v", c.raw, got, c.ok)
		}
		after := [2]int{a.calls, b.calls}
		switch c.want {
		case a:
			if after[0] != before[0]+1 || after[1] != before[1] {
				t.Errorf("decode(%v): not dispatched to a only", c.raw)
			}
		case b:
			if after[1] != before[1]+1 || after[0] != before[0] {
				t.Errorf("decode(%v): not dispatched to b only", c.raw)
			}
		default:
			if after != before {
				t.Errorf("decode(%v): dispatched", c.raw)
			}
		}
	}
	if _, err := newDecoders(a, &fakeConcern{name: "c", types: []event.Type{event.ConnClose}}); err == nil || !strings.Contains(err.Error(), "claimed by a and c") {
		t.Errorf("a type claimed twice: got %v", err)
	}
	if _, err := newDecoders(&fakeConcern{name: "d", types: []event.Type{event.MaxRingType}}); err == nil {
		t.Error("an out-of-range type accepted")
	}
}
