package netfilter

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/event"
)

func record(r *netfilterNwNfEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(r)), RecordSize)...)
}

func TestDecode(t *testing.T) {
	var r netfilterNwNfEvent
	r.Hdr.Type, r.Hdr.Netns, r.Hdr.Ts, r.Hdr.Sk = uint8(event.NF), 4026531840, 123, 0xffff888145661280
	p := &r.P
	p.Family, p.Proto, p.Sport, p.Dport = unix.AF_INET, event.ProtoTCP, 40000, 8080
	p.Saddr = [16]uint8{10, 0, 0, 1}
	p.Daddr = [16]uint8{10, 0, 0, 2}
	p.Hooks, p.Dur, p.Start = 1<<event.NFPreRouting|1<<event.NFLocalIn, [5]uint32{412, 3810}, 100
	p.IcmpType = 8 // ignored: not ICMP
	r.EstLo = 0xdeadbeef
	r.Owner.Pid, r.Owner.Src = 6089, uint8(event.OwnerSyscall)
	for i, c := range "curl" {
		r.Owner.Comm[i] = int8(c)
	}
	ev := event.Event{Ext: new(event.Ext)}
	if !Decode(record(&r), &ev) {
		t.Fatal("not decoded")
	}
	n := ev.Ext.NF
	if ev.Type != event.NF || ev.TS != 123 || ev.Conn.Sock != r.Hdr.Sk || ev.Conn.Netns != r.Hdr.Netns ||
		n.Src != netip.MustParseAddrPort("10.0.0.1:40000") || n.Dst != netip.MustParseAddrPort("10.0.0.2:8080") ||
		n.Hooks != 3 || n.DurNs[event.NFPreRouting] != 412 || n.DurNs[event.NFLocalIn] != 3810 || n.StartNs != 100 ||
		n.EstLo != 0xdeadbeef || n.Dropped || n.Summary || n.ICMPType != 0 ||
		ev.Conn.Pid != 6089 || string(ev.Conn.Comm.Bytes()) != "curl" || ev.Conn.OwnerSrc != event.OwnerSyscall {
		t.Errorf("decoded %+v %+v", ev, n)
	}

	// an ICMPv6 echo dropped in LOCAL_IN, no owner: no ports, type/code
	p.Family, p.Proto, p.IcmpType, p.IcmpCode = unix.AF_INET6, event.ProtoICMPv6, 128, 0
	p.Saddr, p.Daddr = [16]uint8{15: 1}, [16]uint8{15: 2}
	r.Verdict, r.DropHook, r.Reason, r.Owner.Pid = 1, event.NFLocalIn, 6, 0
	c := &Concern{}
	if !c.Decode(record(&r), &ev) {
		t.Fatal("not decoded")
	}
	n = ev.Ext.NF
	if !n.Dropped || n.DropHook != event.NFLocalIn || n.Reason != 6 || n.Name != "" || n.ICMPType != 128 ||
		n.Src != netip.MustParseAddrPort("[::1]:0") || n.Dst != netip.MustParseAddrPort("[::2]:0") || ev.Conn.Pid != 0 {
		t.Errorf("drop decoded %+v %+v", ev.Conn, n)
	}

	// seen by the nf_hook_slow return only (no reason before 5.17)
	r.Reason = 0
	if !c.Decode(record(&r), &ev) || ev.Ext.NF.Name != "NETFILTER_DROP" {
		t.Errorf("verdict-only drop named %q", ev.Ext.NF.Name)
	}

	raw := record(&r)
	if Decode(raw[:RecordSize-1], &ev) {
		t.Error("a short record decoded")
	}
	raw[0] = byte(event.Error)
	if Decode(raw, &ev) {
		t.Error("a record of another type decoded")
	}
	if Decode(record(&r), &event.Event{}) {
		t.Error("decoded without an Ext slot")
	}
}

// The summaries: the run's totals, per CPU summed (max: the largest), and
// an interval is the difference from the previous totals.
func TestSummaryFill(t *testing.T) {
	var a, b, tot netfilterNwNfHookHist
	a.Buckets[8], a.SumNs, a.MaxNs, a.Drops = 2, 600, 400, 1
	b.Buckets[12], b.SumNs, b.MaxNs = 1, 5000, 5000
	Add(&tot, &a)
	Add(&tot, &b)
	var s event.NFSummary
	Fill(&s, &tot, nil)
	if s.Count() != 3 || s.SumNs != 5600 || s.MaxNs != 5000 || s.Drops != 1 || s.QuantileNs(0.99) != 5000 {
		t.Errorf("whole run: %+v", s)
	}
	// p50: the 2nd of 3 samples is the 2nd of the 2 in [256, 512): 256 + 256*1.5/2
	if q := s.QuantileNs(0.5); q != 448 {
		t.Errorf("p50 %v, want 448", q)
	}
	prev := tot
	tot.Buckets[12]++
	tot.SumNs += 6000
	tot.MaxNs = 6000
	Fill(&s, &tot, &prev)
	if s.Count() != 1 || s.SumNs != 6000 || s.Drops != 0 || s.MaxNs != 6000 || s.MeanNs() != 6000 {
		t.Errorf("interval: %+v", s)
	}
}
