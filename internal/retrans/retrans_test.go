package retrans

import (
	"net/netip"
	"testing"
	"unsafe"

	"github.com/netwatcher/netwatcher/internal/event"
)

func TestDecode(t *testing.T) {
	var rec retransNwRetransEvent
	rec.Hdr.Type = uint8(event.Cong)
	rec.Hdr.Netns, rec.Hdr.Ts, rec.Hdr.Sk = 7, 99, 0xffff1
	rec.CaState, rec.OldState = event.CaRecovery, event.CaDisorder
	rec.Family, rec.Sport, rec.Dport = 2, 5000, 80
	copy(rec.Saddr[:], []byte{198, 18, 0, 1})
	copy(rec.Daddr[:], []byte{198, 18, 0, 2})
	rec.Owner.Pid, rec.Owner.Src = 4242, uint8(event.OwnerSyscall)
	for i, b := range []byte("curl") {
		rec.Owner.Comm[i] = int8(b)
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&rec)), unsafe.Sizeof(rec))

	var ev event.Event
	ev.Err.Seq = 5 // stale
	if !Decode(raw, &ev) {
		t.Fatal("Decode refused a cong record")
	}
	want := event.Event{Type: event.Cong, TS: 99,
		Conn: event.Conn{Sock: 0xffff1, Netns: 7, Src: netip.MustParseAddrPort("198.18.0.1:5000"), Dst: netip.MustParseAddrPort("198.18.0.2:80"),
			Pid: 4242, Comm: event.Comm{'c', 'u', 'r', 'l'}, OwnerSrc: event.OwnerSyscall},
		Retrans: event.RetransInfo{CaState: event.CaRecovery, OldState: event.CaDisorder}}
	if ev != want {
		t.Errorf("decoded %+v\nwant %+v", ev, want)
	}
	rec.PreEst = 1
	if !Decode(raw, &ev) || !ev.Retrans.PreEst {
		t.Errorf("record of a connection not established yet: PreEst not set: %+v", ev.Retrans)
	}
	rec.PreEst = 0

	rec.Hdr.Type = uint8(event.Retrans)
	rec.Seq, rec.CaState, rec.OldState, rec.Family = 123456, event.CaLoss, 0, 0
	if !Decode(raw, &ev) || ev.Type != event.Retrans || ev.Retrans.Seq != 123456 || ev.Retrans.CaState != event.CaLoss {
		t.Errorf("retrans record: %+v", ev)
	}
	if ev.Conn.Src.IsValid() || ev.Conn.Dst.IsValid() {
		t.Errorf("no tuple in the record, but addresses decoded: %v %v", ev.Conn.Src, ev.Conn.Dst)
	}
	if allocs := testing.AllocsPerRun(100, func() { Decode(raw, &ev) }); allocs != 0 {
		t.Errorf("Decode allocates %v times per record", allocs)
	}
	if Decode(raw[:len(raw)-1], &ev) {
		t.Error("short record accepted")
	}
	rec.Hdr.Type = uint8(event.Error)
	if Decode(raw, &ev) {
		t.Error("record of another concern accepted")
	}
}
