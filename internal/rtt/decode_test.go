package rtt

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/event"
)

func record(r *rttNwRttEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(r)), RecordSize)...)
}

func TestDecodeClose(t *testing.T) {
	var r rttNwRttEvent
	r.Hdr.Type, r.Hdr.Netns, r.Hdr.Ts, r.Hdr.Sk = uint8(event.Rtt), 4026531840, 123, 0xffff888145661280
	r.H.SumUs, r.H.MinUs, r.H.MaxUs, r.H.EstLo = 700+900+5000, 700, 5000, 0xdeadbeef
	r.H.Family, r.H.Sport, r.H.Dport = unix.AF_INET, 59108, 47147
	copy(r.H.Saddr[:], []byte{127, 0, 0, 1})
	copy(r.H.Daddr[:], []byte{127, 0, 0, 2})
	r.H.Slots[9], r.H.Slots[12] = 2, 1 // 700, 900 in [512, 1024); 5000 in [4096, 8192)
	ev := event.Event{Ext: new(event.Ext)}
	if !Decode(record(&r), &ev) {
		t.Fatal("not decoded")
	}
	x := ev.Ext.Rtt
	if ev.Type != event.Rtt || ev.TS != 123 || ev.Conn.Sock != r.Hdr.Sk || ev.Conn.Netns != r.Hdr.Netns ||
		!x.Close || x.Srtt || x.Count() != 3 || x.SumUs != 6600 || x.MinUs != 700 || x.MaxUs != 5000 || x.EstLo != 0xdeadbeef ||
		x.Src != netip.MustParseAddrPort("127.0.0.1:59108") || x.Dst != netip.MustParseAddrPort("127.0.0.2:47147") {
		t.Errorf("decoded %+v", ev)
	}
	raw := record(&r)
	if Decode(raw[:RecordSize-1], &ev) {
		t.Error("a short record decoded")
	}
	raw[0] = uint8(event.State)
	if Decode(raw, &ev) {
		t.Error("another type decoded")
	}
}

// TestDiff: a periodic record is what the histogram gained since the
// previous read; none when nothing was added.
func TestDiff(t *testing.T) {
	var prev, h rttNwRttHist
	h.Family, h.Netns = unix.AF_INET6, 7
	h.Slots[3], h.Slots[4], h.SumUs, h.MinUs, h.MaxUs = 5, 1, 5*10+20, 10, 20
	ev := event.Event{Ext: new(event.Ext)}
	if !Diff(&h, &prev, 99, 0x10, &ev) || ev.Ext.Rtt.Count() != 6 || ev.Ext.Rtt.SumUs != 70 || ev.Ext.Rtt.Close || ev.TS != 99 || ev.Conn.Netns != 7 {
		t.Fatalf("first diff %+v", ev)
	}
	prev = h
	if Diff(&h, &prev, 100, 0x10, &ev) {
		t.Error("a record without new samples")
	}
	h.Slots[3] += 2
	h.SumUs += 24
	if !Diff(&h, &prev, 101, 0x10, &ev) || ev.Ext.Rtt.Count() != 2 || ev.Ext.Rtt.Buckets[3] != 2 || ev.Ext.Rtt.Buckets[4] != 0 || ev.Ext.Rtt.MeanUs() != 12 {
		t.Errorf("second diff %+v", ev.Ext.Rtt)
	}
	// u32 buckets wrap: the difference is still right
	prev.Slots[5], h.Slots[5] = ^uint32(0), 1
	if !Diff(&h, &prev, 102, 0x10, &ev) || ev.Ext.Rtt.Buckets[5] != 2 {
		t.Errorf("wrapped bucket: %d", ev.Ext.Rtt.Buckets[5])
	}
}
