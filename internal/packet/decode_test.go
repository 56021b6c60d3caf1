package packet

import (
	"net/netip"
	"testing"
	"unsafe"

	"github.com/netwatcher/netwatcher/internal/event"
)

// rawEvent returns the record as the ring would: a fresh buffer of exactly
// the record's size (short without -i).
func rawEvent(r *packetNwPktEvent, full bool) []byte {
	n := shortSize
	if full {
		n = eventSize
	}
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(r)), eventSize)[:n]...)
}

func sample() *packetNwPktEvent {
	r := &packetNwPktEvent{}
	r.Hdr.Type = uint8(event.Packet)
	r.Hdr.Netns = 4026531833
	r.Hdr.Ts = 1e9
	r.Hdr.Sk = 0xffff888104d9dc80
	r.Seq, r.Ack, r.Len = 3889652109, 4048233276, 79
	r.Family = 2
	r.Sport, r.Dport = 53172, 8080
	copy(r.Saddr[:], []byte{10, 0, 0, 1})
	copy(r.Daddr[:], []byte{10, 0, 0, 2})
	return r
}

func TestDecodeReceive(t *testing.T) {
	r := sample()
	r.Rx = 1
	r.T = [4]uint64{1000, 1500, 4000, 0} // copy not seen
	var ev event.Event
	if !Decode(rawEvent(r, false), &ev) {
		t.Fatal("not decoded")
	}
	p := ev.Packet
	if ev.Type != event.Packet || ev.Conn.Sock != r.Hdr.Sk || ev.Conn.Netns != r.Hdr.Netns || ev.TS != 1e9 {
		t.Fatalf("header: %+v", ev)
	}
	if p.Seq != r.Seq || p.Ack != r.Ack || p.Len != 79 || !p.Rx {
		t.Fatalf("packet: %+v", p)
	}
	if ev.Conn.Src != netip.MustParseAddrPort("10.0.0.1:53172") || ev.Conn.Dst != netip.MustParseAddrPort("10.0.0.2:8080") {
		t.Fatalf("addresses %v %v", ev.Conn.Src, ev.Conn.Dst)
	}
	if p.MacNs != 500 || p.IPNs != 2500 || p.Missing != event.MissingTCP {
		t.Fatalf("times: mac %d ip %d missing %b", p.MacNs, p.IPNs, p.Missing)
	}
	if p.HTTPLen != 0 {
		t.Fatal("short record has no payload")
	}
}

func TestDecodeSend(t *testing.T) {
	r := sample()
	r.Family = 10
	r.Saddr = netip.MustParseAddr("fd00::1").As16()
	r.Daddr = netip.MustParseAddr("fd00::2").As16()
	// tcp 100, ip missing (stamp 0), mac: queue after xmit -> missing, never wrapped
	r.T = [4]uint64{100, 200, 0, 0}
	copy(r.Http[:], "GET / HTTP/1.1\r\n")
	r.HttpLen, r.HttpCut = 16, 1
	var ev event.Event
	ev.Packet.Missing = 0xff // stale state must be reset
	if !Decode(rawEvent(r, true), &ev) {
		t.Fatal("not decoded")
	}
	p := ev.Packet
	if p.Rx || p.TCPNs != 100 || p.Missing != event.MissingIP|event.MissingMac {
		t.Fatalf("send times: %+v", p)
	}
	if !ev.Conn.Src.Addr().Is6() || ev.Conn.Dst.Addr() != netip.MustParseAddr("fd00::2") {
		t.Fatalf("v6 addresses %v %v", ev.Conn.Src, ev.Conn.Dst)
	}
	if string(p.HTTP[:p.HTTPLen]) != "GET / HTTP/1.1\r\n" || !p.HTTPCut {
		t.Fatalf("payload %q cut %v", p.HTTP[:p.HTTPLen], p.HTTPCut)
	}
	// Out-of-order stamps are missing, never a huge number.
	r.T = [4]uint64{500, 400, 600, 700}
	Decode(rawEvent(r, true), &ev)
	if ev.Packet.Missing != event.MissingTCP || ev.Packet.IPNs != 200 || ev.Packet.MacNs != 100 {
		t.Fatalf("out of order: %+v", ev.Packet)
	}
}

func TestDecodeRejects(t *testing.T) {
	r := sample()
	var ev event.Event
	if Decode(rawEvent(r, false)[:shortSize-1], &ev) {
		t.Fatal("short record decoded")
	}
	r.Hdr.Type = uint8(event.Error)
	if Decode(rawEvent(r, false), &ev) {
		t.Fatal("other type decoded")
	}
}

func TestLayout(t *testing.T) {
	// Must match struct nw_pkt_event in packet.bpf.c (bpf2go generated).
	if eventSize != 272 || shortSize != 112 || httpOff != shortSize {
		t.Fatalf("record sizes %d/%d/%d, want 272/112/112", eventSize, shortSize, httpOff)
	}
	var g packetNwPktEvent
	var r rawPkt
	if unsafe.Offsetof(g.T) != unsafe.Offsetof(r.T) || unsafe.Offsetof(g.Saddr) != unsafe.Offsetof(r.Saddr) ||
		unsafe.Offsetof(g.Family) != unsafe.Offsetof(r.Family) || unsafe.Offsetof(g.Sport) != unsafe.Offsetof(r.Sport) {
		t.Fatal("rawPkt does not match the generated record layout")
	}
}

func BenchmarkDecode(b *testing.B) {
	r := sample()
	r.Rx = 1
	r.T = [4]uint64{1000, 1500, 4000, 9000}
	copy(r.Http[:], "HTTP/1.1 200 OK\r\n")
	r.HttpLen = 17
	raw := rawEvent(r, true)
	var ev event.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if !Decode(raw, &ev) {
			b.Fatal("not decoded")
		}
	}
}
