package packet

import (
	"testing"
	"unsafe"

	"github.com/netwatcher/netwatcher/internal/event"
)

// Record lengths as the ring delivers them.
const (
	lenBase  = 0 // without -t, no payload bytes
	lenTimed = 1 // -t, no payload bytes
	lenFull  = 2 // payload bytes
)

// rawEvent returns the record as the ring would: a fresh buffer of exactly
// the record's size.
func rawEvent(r *packetNwPktEvent, form int) []byte {
	n := []int{baseSize, httpOff, eventSize}[form]
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(r)), eventSize)[:n]...)
}

func sample() *packetNwPktEvent {
	r := &packetNwPktEvent{}
	r.Type = uint8(event.Packet)
	r.Netns = 4026531833
	r.Ts = 1e9
	r.Sk = 0xffff888104d9dc80
	r.Seq, r.Ack, r.Len = 3889652109, 4048233276, 79
	r.EstLo = 0xdeadbeef
	return r
}

func TestDecodeReceive(t *testing.T) {
	r := sample()
	r.Rx = 1
	r.T = [4]uint64{1000, 1500, 4000, 0} // copy not seen
	var ev event.Event
	if !Decode(rawEvent(r, lenTimed), &ev) {
		t.Fatal("not decoded")
	}
	p := ev.Packet
	if ev.Type != event.Packet || ev.Conn.Sock != r.Sk || ev.Conn.Netns != r.Netns || ev.TS != 1e9 {
		t.Fatalf("header: %+v", ev)
	}
	if p.Seq != r.Seq || p.Ack != r.Ack || p.Len != 79 || !p.Rx || p.EstLo != 0xdeadbeef {
		t.Fatalf("packet: %+v", p)
	}
	if ev.Conn.Src.IsValid() || ev.Conn.Dst.IsValid() {
		t.Fatalf("records carry no addresses, got %v %v", ev.Conn.Src, ev.Conn.Dst)
	}
	if p.MacNs != 500 || p.IPNs != 2500 || p.Missing != event.MissingTCP {
		t.Fatalf("times: mac %d ip %d missing %b", p.MacNs, p.IPNs, p.Missing)
	}
	if p.HTTPLen != 0 {
		t.Fatal("record without payload bytes has none")
	}
	// Without -t the record ends before the stamps: every layer missing.
	if !Decode(rawEvent(r, lenBase), &ev) || ev.Packet.Missing != event.MissingMac|event.MissingIP|event.MissingTCP ||
		ev.Packet.Seq != r.Seq {
		t.Fatalf("base record: %+v", ev.Packet)
	}
}

func TestDecodeSend(t *testing.T) {
	r := sample()
	// tcp 100, ip missing (stamp 0), mac: queue after xmit -> missing, never wrapped
	r.T = [4]uint64{100, 200, 0, 0}
	copy(r.Http[:], "GET / HTTP/1.1\r\n")
	r.HttpLen, r.HttpCut = 16, 1
	var ev event.Event
	ev.Packet.Missing = 0xff // stale state must be reset
	if !Decode(rawEvent(r, lenFull), &ev) {
		t.Fatal("not decoded")
	}
	p := ev.Packet
	if p.Rx || p.TCPNs != 100 || p.Missing != event.MissingIP|event.MissingMac {
		t.Fatalf("send times: %+v", p)
	}
	if string(p.HTTP[:p.HTTPLen]) != "GET / HTTP/1.1\r\n" || !p.HTTPCut {
		t.Fatalf("payload %q cut %v", p.HTTP[:p.HTTPLen], p.HTTPCut)
	}
	// Out-of-order stamps are missing, never a huge number.
	r.T = [4]uint64{500, 400, 600, 700}
	Decode(rawEvent(r, lenFull), &ev)
	if ev.Packet.Missing != event.MissingTCP || ev.Packet.IPNs != 200 || ev.Packet.MacNs != 100 {
		t.Fatalf("out of order: %+v", ev.Packet)
	}
	// A timed record without payload bytes: no payload, even if http_len says so.
	Decode(rawEvent(r, lenTimed), &ev)
	if ev.Packet.HTTPLen != 0 || ev.Packet.IPNs != 200 {
		t.Fatalf("timed record: %+v", ev.Packet)
	}
}

func TestDecodeRejects(t *testing.T) {
	r := sample()
	var ev event.Event
	if Decode(rawEvent(r, lenBase)[:baseSize-1], &ev) {
		t.Fatal("short record decoded")
	}
	r.Type = uint8(event.Error)
	if Decode(rawEvent(r, lenBase), &ev) {
		t.Fatal("other type decoded")
	}
}

func TestLayout(t *testing.T) {
	// Must match struct nw_pkt_event in packet.bpf.c (bpf2go generated).
	if eventSize != 232 || baseSize != 40 || tOff != baseSize || httpOff != 72 {
		t.Fatalf("record sizes %d/%d/%d/%d, want 232/40/40/72", eventSize, baseSize, tOff, httpOff)
	}
	var g packetNwPktEvent
	var r rawPkt
	if unsafe.Offsetof(g.Netns) != unsafe.Offsetof(r.Netns) || unsafe.Offsetof(g.Sk) != unsafe.Offsetof(r.Sk) ||
		unsafe.Offsetof(g.Len) != unsafe.Offsetof(r.Len) || unsafe.Offsetof(g.HttpCut) != unsafe.Offsetof(r.HttpCut) ||
		unsafe.Offsetof(g.EstLo) != unsafe.Offsetof(r.EstLo) {
		t.Fatal("rawPkt does not match the generated record layout")
	}
}

func BenchmarkDecode(b *testing.B) {
	r := sample()
	r.Rx = 1
	r.T = [4]uint64{1000, 1500, 4000, 9000}
	copy(r.Http[:], "HTTP/1.1 200 OK\r\n")
	r.HttpLen = 17
	raw := rawEvent(r, lenFull)
	var ev event.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if !Decode(raw, &ev) {
			b.Fatal("not decoded")
		}
	}
}
