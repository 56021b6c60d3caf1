package drops

import (
	"net/netip"
	"os"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf/btf"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
)

func TestReasonsSynthetic(t *testing.T) {
	// Numbering and members differ between kernels: only names matter.
	en := &btf.Enum{Name: "skb_drop_reason", Size: 4, Values: []btf.EnumValue{
		{Name: "SKB_NOT_DROPPED_YET", Value: 0},
		{Name: "SKB_CONSUMED", Value: 1},
		{Name: "SKB_DROP_REASON_NOT_SPECIFIED", Value: 2},
		{Name: "SKB_DROP_REASON_TCP_CSUM", Value: 7},
		{Name: "SKB_DROP_REASON_TCP_INVALID_SEQUENCE", Value: 9},
		{Name: "SKB_DROP_REASON_TCP_OLD_SEQUENCE", Value: 8},
		{Name: "SKB_DROP_REASON_TCP_NEW_THING", Value: 11},
		{Name: "SKB_DROP_REASON_TCP_OFO_DROP", Value: 12},
		{Name: "SKB_DROP_REASON_QUEUE_PURGE", Value: 13},
		{Name: "SKB_DROP_REASON_SOCKET_BACKLOG", Value: 14},
		{Name: "SKB_DROP_REASON_MAX", Value: 15},
		{Name: "SKB_DROP_REASON_SUBSYS_MASK", Value: 0xffff0000},
	}}
	r, err := reasonsFromEnum(en)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Name) != 15 || r.Csum != 7 {
		t.Fatalf("table of %d, csum %d: want 15, 7", len(r.Name), r.Csum)
	}
	for code, want := range map[uint32]struct {
		name string
		keep bool
	}{
		0: {"", false}, 1: {"", false}, 2: {"NOT_SPECIFIED", false}, 7: {InvalidCsum, true},
		8: {InvalidSeq, true}, 9: {InvalidSeq, true}, 11: {"TCP_NEW_THING", true},
		12: {"TCP_OFO_DROP", false}, 13: {"QUEUE_PURGE", false}, 14: {"SOCKET_BACKLOG", true},
		15: {"", false}, 0xffff0001: {"", false},
	} {
		keep := int(code) < len(r.Keep) && r.Keep[code]
		if got := r.NameOf(code); got != want.name || keep != want.keep {
			t.Errorf("code %d: %q keep=%v, want %q keep=%v", code, got, keep, want.name, want.keep)
		}
	}
}

func TestReasonsFromKernelBTF(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("no kernel BTF")
	}
	spec, err := kernel.KernelBTF()
	if err != nil {
		t.Fatal(err)
	}
	r, err := ReasonsFromBTF(spec)
	if err != nil {
		t.Fatal(err)
	}
	code := map[string]uint32{}
	var en *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &en); err != nil {
		t.Fatal(err)
	}
	for _, v := range en.Values {
		code[v.Name] = uint32(v.Value)
	}
	for name, want := range map[string]struct {
		name string
		keep bool
	}{
		"TCP_CSUM": {InvalidCsum, true}, "TCP_INVALID_SEQUENCE": {InvalidSeq, true},
		"TCP_OLD_SEQUENCE": {InvalidSeq, true}, "TCP_INVALID_END_SEQUENCE": {InvalidSeq, true},
		"TCP_INVALID_SYN": {"TCP_INVALID_SYN", true}, "TCP_RFC7323_PAWS": {"TCP_RFC7323_PAWS", true},
		"NOT_SPECIFIED": {"NOT_SPECIFIED", false}, "QUEUE_PURGE": {"QUEUE_PURGE", false},
		"NO_SOCKET": {"NO_SOCKET", false}, "NETFILTER_DROP": {"NETFILTER_DROP", false},
		"TCP_OFO_DROP": {"TCP_OFO_DROP", false},
	} {
		c, ok := code["SKB_DROP_REASON_"+name]
		if !ok {
			t.Logf("kernel has no %s", name)
			continue
		}
		if got := r.NameOf(c); got != want.name || r.Keep[c] != want.keep {
			t.Errorf("%s (%d): %q keep=%v, want %q keep=%v", name, c, got, r.Keep[c], want.name, want.keep)
		}
	}
	var kept []string
	for c, k := range r.Keep {
		if k {
			kept = append(kept, r.Name[c])
		}
	}
	t.Logf("%d of %d reasons reported: %v", len(kept), len(r.Keep), kept)
}

func TestDecode(t *testing.T) {
	c := &Concern{reasons: &Reasons{Name: []string{"", "", "NOT_SPECIFIED", InvalidCsum}, Keep: make([]bool, 4), Csum: 3}}
	var rec dropsNwErrEvent
	rec.Hdr.Type = uint8(event.Error)
	rec.Hdr.Netns = 4026531840
	rec.Hdr.Ts = 123
	rec.Hdr.Sk = 0xffff888100000000
	rec.Seq, rec.Ack, rec.Reason = 1000, 2000, 3
	rec.Family, rec.Sport, rec.Dport, rec.Rx = 10, 40000, 80, 1
	rec.Saddr = netip.MustParseAddr("fd00::1").As16()
	rec.Daddr = netip.MustParseAddr("fd00::2").As16()
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&rec)), unsafe.Sizeof(rec))

	var ev event.Event
	ev.Packet.Seq = 99 // stale data from a previous record must go
	if !c.Decode(raw, &ev) {
		t.Fatal("Decode refused an error record")
	}
	want := event.Event{Type: event.Error, TS: 123, Conn: event.Conn{Sock: 0xffff888100000000, Netns: 4026531840},
		Err: event.ErrorInfo{Seq: 1000, Ack: 2000, Reason: 3, Name: InvalidCsum, Rx: true,
			Src: netip.MustParseAddrPort("[fd00::1]:40000"), Dst: netip.MustParseAddrPort("[fd00::2]:80")}}
	if ev != want {
		t.Errorf("decoded %+v\nwant %+v", ev, want)
	}
	rec.Family, rec.Reason = 2, 77
	copy(rec.Saddr[:], []byte{10, 0, 0, 1})
	copy(rec.Daddr[:], []byte{10, 0, 0, 2})
	if !c.Decode(raw, &ev) || ev.Err.Src.String() != "10.0.0.1:40000" || ev.Err.Name != "" {
		t.Errorf("v4 / unknown reason: %+v", ev.Err)
	}
	if allocs := testing.AllocsPerRun(100, func() { c.Decode(raw, &ev) }); allocs != 0 {
		t.Errorf("Decode allocates %v times per record", allocs)
	}
	if c.Decode(raw[:len(raw)-1], &ev) {
		t.Error("Decode accepted a short record")
	}
	rec.Hdr.Type = uint8(event.Retrans)
	if c.Decode(raw, &ev) {
		t.Error("Decode accepted a record of another concern")
	}
}
