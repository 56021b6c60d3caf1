package tcpstate

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/event"
)

func record(r *tcpstateNwStateEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(r)), RecordSize)...)
}

func TestDecode(t *testing.T) {
	var r tcpstateNwStateEvent
	r.Hdr.Type, r.Hdr.Netns, r.Hdr.Ts, r.Hdr.Sk = uint8(event.State), 4026531840, 123, 0xffff888145661280
	r.InOldNs, r.EstLo, r.OldState, r.NewState = 56_604, 0xdeadbeef, event.TCPSynSent, event.TCPEstablished
	r.Family, r.Sport, r.Dport = unix.AF_INET6, 59108, 47147
	r.Saddr[15], r.Daddr[15] = 1, 1
	r.Owner.Pid, r.Owner.Src = 6089, uint8(event.OwnerSyscall)
	for i, c := range "curl" {
		r.Owner.Comm[i] = int8(c)
	}
	ev := event.Event{Ext: new(event.Ext)}
	if !Decode(record(&r), &ev) {
		t.Fatal("not decoded")
	}
	s := ev.Ext.State
	if ev.Type != event.State || ev.TS != 123 || ev.Conn.Sock != r.Hdr.Sk || ev.Conn.Netns != r.Hdr.Netns ||
		s.Old != event.TCPSynSent || s.New != event.TCPEstablished || s.InOldNs != 56_604 || s.EstLo != 0xdeadbeef ||
		s.Src != netip.MustParseAddrPort("[::1]:59108") || s.Dst != netip.MustParseAddrPort("[::1]:47147") ||
		ev.Conn.Pid != 6089 || string(ev.Conn.Comm.Bytes()) != "curl" || ev.Conn.OwnerSrc != event.OwnerSyscall {
		t.Errorf("decoded %+v", ev)
	}
	raw := record(&r)
	if Decode(raw[:RecordSize-1], &ev) {
		t.Error("a short record decoded")
	}
	raw[0] = byte(event.Error)
	if Decode(raw, &ev) {
		t.Error("a record of another type decoded")
	}
	r.Owner.Pid = 0
	if !Decode(record(&r), &ev) || ev.Conn.Pid != 0 || ev.Conn.Comm.Bytes() != nil && len(ev.Conn.Comm.Bytes()) != 0 {
		t.Errorf("no owner: %+v", ev.Conn)
	}
}
