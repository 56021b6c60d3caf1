package output

import (
	"net/netip"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// BenchmarkPacketRecord: the formatting of one packet record (no I/O):
// its packets.log line and its console line.
func BenchmarkPacketRecord(b *testing.B) {
	c := event.Conn{ID: 1234, Sock: 0xffff888104d9dc80, Netns: 4026531833, Pid: 4321, OwnerSrc: event.OwnerSrc(1),
		Src: netip.MustParseAddrPort("198.18.1.1:40012"), Dst: netip.MustParseAddrPort("198.18.1.2:80"), EstNs: 1}
	copy(c.Comm[:], "nginx")
	ev := &event.Event{Type: event.Packet, TS: 123456789012, Conn: c,
		Packet: event.PacketInfo{Seq: 3889652109, Ack: 4048233276, Len: 1000, Rx: true, MacNs: 1200, IPNs: 3400, TCPNs: 15000}}
	http := []byte("-")
	for _, mode := range []string{"log", "table", "json"} {
		b.Run(mode, func(b *testing.B) {
			p := &Printer{JSON: mode == "json", Timed: true, HTTP: true, Clock: fixedClock()}
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				ev.Packet.Seq = uint32(i)
				if mode == "log" {
					buf = AppendPacketLog(buf[:0], &ev.Conn, &ev.Packet, true, http, 1)
				} else {
					buf = p.Packet(buf[:0], ev, http)
				}
			}
		})
	}
}
