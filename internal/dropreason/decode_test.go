package dropreason

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/event"
)

func record(r *dropreasonNwDropEvent, n int) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(r)), n)...)
}

func TestDecode(t *testing.T) {
	var r dropreasonNwDropEvent
	r.Hdr.Type, r.Hdr.Netns, r.Hdr.Ts, r.Hdr.Sk = uint8(event.Drop), 4026531840, 123, 0xffff888145661280
	r.Location, r.Reason, r.EstLo = 0xffffffff81234567, 12, 0xbeef
	r.Family, r.L3, r.Proto, r.Sport, r.Dport = unix.AF_INET, 0x0800, 17, 5353, 40000
	copy(r.Saddr[:], []byte{10, 0, 0, 1})
	copy(r.Daddr[:], []byte{10, 0, 0, 2})
	r.Owner.Pid, r.Owner.Src = 77, uint8(event.OwnerListener)
	r.Nstack, r.Stack[0], r.Stack[1] = 2, 0xffffffff81000001, 0xffffffff81234567
	ev := event.Event{Ext: new(event.Ext)}
	if !Decode(record(&r, HeadSize), &ev) {
		t.Fatal("record without stack not decoded")
	}
	d := &ev.Ext.Drop
	if ev.Type != event.Drop || ev.TS != 123 || ev.Conn.Sock != r.Hdr.Sk || ev.Conn.Netns != r.Hdr.Netns ||
		d.Reason != 12 || d.Location != r.Location || d.EstLo != 0xbeef || d.Proto != 17 || !d.HasPorts() ||
		d.Src != netip.MustParseAddrPort("10.0.0.1:5353") || d.Dst != netip.MustParseAddrPort("10.0.0.2:40000") ||
		ev.Conn.Pid != 77 || ev.Conn.OwnerSrc != event.OwnerListener || d.NStack != 0 {
		t.Errorf("decoded %+v", ev)
	}
	if !Decode(record(&r, RecordSize), &ev) || ev.Ext.Drop.NStack != 2 || ev.Ext.Drop.Stack[1] != r.Location {
		t.Errorf("stack: %+v", ev.Ext.Drop)
	}
	if Decode(record(&r, HeadSize-1), &ev) {
		t.Error("a short record decoded")
	}
	r.Family = 0
	if !Decode(record(&r, HeadSize), &ev) || ev.Ext.Drop.Src.IsValid() {
		t.Errorf("not IP: addresses %v %v", ev.Ext.Drop.Src, ev.Ext.Drop.Dst)
	}
	raw := record(&r, HeadSize)
	raw[0] = byte(event.Error)
	if Decode(raw, &ev) {
		t.Error("a record of another type decoded")
	}
	if n := testing.AllocsPerRun(100, func() { Decode(raw[:HeadSize], &ev) }); n != 0 {
		t.Errorf("%v allocations per decode", n)
	}
}
