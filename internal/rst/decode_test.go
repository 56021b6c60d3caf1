package rst

import (
	"net/netip"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/ringtest"
)

func record(r *rstNwRstEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(r)), RecordSize)...)
}

func TestDecode(t *testing.T) {
	var r rstNwRstEvent
	r.Hdr.Type, r.Hdr.Netns, r.Hdr.Ts, r.Hdr.Sk = uint8(event.Rst), 4026531840, 123, 0xffff888145661280
	r.EstLo, r.Reason, r.Flags, r.State = 0xdeadbeef, 11, flagReason|flagAborted, event.TCPEstablished
	r.Family, r.Sport, r.Dport = unix.AF_INET6, 7001, 51404
	r.Saddr[15], r.Daddr[15] = 1, 1
	r.Owner.Pid, r.Owner.Src = 6089, uint8(event.OwnerSyscall)
	for i, c := range "curl" {
		r.Owner.Comm[i] = int8(c)
	}
	c := &Concern{reasons: Reasons{11: "TCP_ABORT_ON_CLOSE"}}
	ev := event.Event{Ext: new(event.Ext)}
	if !c.Decode(record(&r), &ev) {
		t.Fatal("not decoded")
	}
	s := ev.Ext.Rst
	if ev.Type != event.Rst || ev.TS != 123 || ev.Conn.Sock != r.Hdr.Sk || ev.Conn.Netns != r.Hdr.Netns ||
		s.Rx || !s.Aborted || s.NoSocket || !s.HasReason || s.Reason != 11 || s.Name != "TCP_ABORT_ON_CLOSE" ||
		s.State != event.TCPEstablished || s.EstLo != 0xdeadbeef ||
		s.Src != netip.MustParseAddrPort("[::1]:7001") || s.Dst != netip.MustParseAddrPort("[::1]:51404") ||
		ev.Conn.Pid != 6089 || string(ev.Conn.Comm.Bytes()) != "curl" || ev.Conn.OwnerSrc != event.OwnerSyscall {
		t.Errorf("decoded %+v", ev)
	}
	// a reason this table lacks (a newer kernel's): named by number
	r.Reason = 99
	if !c.Decode(record(&r), &ev) || ev.Ext.Rst.Name != "reason99" {
		t.Errorf("unknown reason: %+v", ev.Ext.Rst)
	}
	// received, no reason, no owner
	r.Flags, r.Owner.Pid = flagRx, 0
	if !c.Decode(record(&r), &ev) || !ev.Ext.Rst.Rx || ev.Ext.Rst.HasReason || ev.Ext.Rst.Name != "" || ev.Conn.Pid != 0 {
		t.Errorf("received: %+v", ev)
	}
	r.Flags, r.State, r.Hdr.Sk = flagNoSocket|flagReason, 0, 0
	if !c.Decode(record(&r), &ev) || !ev.Ext.Rst.NoSocket || ev.Ext.Rst.State != 0 {
		t.Errorf("no socket: %+v", ev)
	}
	raw := record(&r)
	if c.Decode(raw[:RecordSize-1], &ev) {
		t.Error("a short record decoded")
	}
	raw[0] = byte(event.Error)
	if c.Decode(raw, &ev) {
		t.Error("a record of another type decoded")
	}
}

func TestReasonsFromEnum(t *testing.T) {
	en := &btf.Enum{Name: "sk_rst_reason", Values: []btf.EnumValue{
		{Name: "SK_RST_REASON_NOT_SPECIFIED", Value: 0}, {Name: "SK_RST_REASON_NO_SOCKET", Value: 1},
		{Name: "SK_RST_REASON_TCP_ABORT_ON_CLOSE", Value: 11}, {Name: "SK_RST_REASON_MAX", Value: 25},
	}}
	r := reasonsFromEnum(en)
	if len(r) != 12 || r.NameOf(1) != "NO_SOCKET" || r.NameOf(11) != "TCP_ABORT_ON_CLOSE" || r.NameOf(5) != "reason5" || r.NameOf(25) != "reason25" {
		t.Errorf("table %q", r)
	}
	// the running kernel: 6.10+ has the enum with the reasons the e2e test sees
	spec, err := kernel.KernelBTF()
	if err != nil {
		t.Skip(err)
	}
	if kernel.TracepointArgs(spec, "tcp_send_reset") < 3 {
		t.Skip("tcp_send_reset has no reason here (before 6.10)")
	}
	kr, err := ReasonsFromBTF(spec)
	if err != nil || kr == nil {
		t.Fatalf("kernel reasons: %v %v", kr, err)
	}
	for code, want := range map[uint32]string{1: "NO_SOCKET"} {
		if kr.NameOf(code) != want {
			t.Errorf("kernel reason %d = %s, want %s", code, kr.NameOf(code), want)
		}
	}
	for _, want := range []string{"TCP_ABORT_ON_CLOSE", "TCP_STATE"} {
		found := false
		for _, n := range kr {
			found = found || n == want
		}
		if !found {
			t.Errorf("kernel reasons lack %s: %q", want, kr)
		}
	}
}

// Every program of the object passes this kernel's verifier: both twins of
// each boundary, whichever this kernel would attach.
func TestEveryCandidateLoads(t *testing.T) {
	nstest.RequireRoot(t)
	cfg := &config.Config{Rst: true}
	c := New(cfg)
	ringtest.Load(t, conn.Options{}, cfg, c)
	for _, b := range []string{BoundarySend, BoundaryRecv, BoundaryClose} {
		for _, cand := range kernel.Hooks[b].Candidates {
			if c.Coll.Programs[cand.Prog] == nil {
				t.Errorf("%s: candidate %s %s: program %s not loaded", b, cand.Kind, cand.Target, cand.Prog)
			}
		}
	}
}
