package engine

import (
	"sync/atomic"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// Records of the optional concerns get an Ext slot of their own, the core
// ones none; a batch makes its slots when the first such record comes and
// is handed over when they are used up.
func TestReaderExtSlots(t *testing.T) {
	queue := make(chan *batch, 64)
	rd := &reader{src: srcPacket, pool: newPool(8, srcPacket), queue: queue, ctr: &Counters{}, wm: new(atomic.Uint64), handed: new(atomic.Uint64),
		decode: func(raw []byte, ev *event.Event) bool {
			ev.Type = event.Type(raw[0])
			if ev.Ext != nil {
				ev.Ext.State.InOldNs = uint64(raw[1]) // a decoder fills its slot
			}
			return raw[0] != 0xff
		}}
	if !rd.get() {
		t.Fatal("no batch")
	}
	for i := 0; i < 3; i++ {
		rd.one([]byte{byte(event.Packet), 0})
	}
	if rd.b.ext != nil {
		t.Fatal("Ext slots made for core records")
	}
	rd.one([]byte{0xff, 0}) // undecodable: its slot is not used up
	for i := 0; i < extLen; i++ {
		rd.one([]byte{byte(event.State), byte(i)})
		rd.one([]byte{byte(event.ConnClose), 0})
	}
	rd.send()
	if len(queue) != 2 {
		t.Fatalf("%d batches handed over, want 2 (the first when its %d slots were used up)", len(queue), extLen)
	}
	b := <-queue
	if len(b.evs) != 3+2*extLen-1 || b.nExt != extLen {
		t.Fatalf("first batch: %d records, %d slots", len(b.evs), b.nExt)
	}
	seen := map[*event.Ext]bool{}
	for i := range b.evs {
		ev := &b.evs[i]
		if (ev.Type == event.State) != (ev.Ext != nil) {
			t.Fatalf("record %d (type %d): Ext %p", i, ev.Type, ev.Ext)
		}
		if ev.Ext != nil {
			if seen[ev.Ext] {
				t.Fatalf("record %d shares an Ext slot", i)
			}
			seen[ev.Ext] = true
		}
	}
	if b2 := <-queue; len(b2.evs) != 1 || b2.evs[0].Type != event.ConnClose || b2.ext != nil {
		t.Errorf("second batch: %d records, ext %v", len(b2.evs), b2.ext != nil)
	}
	if rd.ctr.Undecodable.Load() != 1 {
		t.Errorf("undecodable %d", rd.ctr.Undecodable.Load())
	}
}
