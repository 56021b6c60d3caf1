package l7cap

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
)

func TestDecode(t *testing.T) {
	var r l7capNwL7Event
	r.Type, r.Rx, r.Proto, r.Netns, r.Sk, r.Ts = uint8(event.DNS), 1, unix.IPPROTO_TCP, 4026531840, 0xffff888145661280, 123
	r.Seq, r.Paylen, r.Family, r.Sport, r.Dport = 77, 600, unix.AF_INET6, 53, 40000
	r.Saddr[15], r.Daddr[15] = 2, 1
	r.Owner.Pid, r.Owner.Src = 99, uint8(event.OwnerIO)
	for i, c := range "dig" {
		r.Owner.Comm[i] = int8(c)
	}
	payload := make([]byte, event.AppMax)
	for i := range payload {
		payload[i] = byte(i)
	}
	r.Len = uint16(len(payload))
	raw := append(append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&r)), RecordSize)...), payload...)
	ev := event.Event{Ext: new(event.Ext)}
	if !Decode(raw, &ev) {
		t.Fatal("not decoded")
	}
	d := &ev.Ext.App
	if ev.Type != event.DNS || ev.TS != 123 || ev.Conn.Sock != r.Sk || ev.Conn.Netns != r.Netns || !d.Rx || !d.TCP || d.Tick ||
		d.Src != netip.MustParseAddrPort("[::2]:53") || d.Dst != netip.MustParseAddrPort("[::1]:40000") ||
		d.Seq != 77 || d.PayLen != 600 || string(d.Payload()) != string(payload) ||
		ev.Conn.Pid != 99 || string(ev.Conn.Comm.Bytes()) != "dig" || ev.Conn.OwnerSrc != event.OwnerIO {
		t.Errorf("decoded %+v", ev.Conn)
	}
	if Decode(raw[:len(raw)-1], &ev) {
		t.Error("a record shorter than its len decoded")
	}
	r.Len = event.AppMax + 1
	if Decode(append(unsafe.Slice((*byte)(unsafe.Pointer(&r)), RecordSize), make([]byte, event.AppMax+1)...), &ev) {
		t.Error("a record with len over AppMax decoded")
	}
	c := New(&config.Config{}, testProto{event.DNS, []uint16{53}, 512})
	raw[0] = byte(event.Redis)
	if c.Decode(raw, &ev) {
		t.Error("a record of a protocol that is off decoded")
	}
	raw[0] = byte(event.DNS)
	if !c.Decode(raw, &ev) {
		t.Error("not decoded by the concern")
	}
	if a := testing.AllocsPerRun(100, func() { c.Decode(raw, &ev) }); a != 0 {
		t.Errorf("%v allocations per Decode", a)
	}
}
