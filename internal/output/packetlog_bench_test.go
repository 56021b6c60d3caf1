package output

import (
	"net/netip"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// BenchmarkPacketLogDefault is one packets.log line of the default mode
// (no -t, no -i: the times and the HTTP text are "-"), rx and tx in turn,
// ten-digit sequence numbers as a real connection has them.
func BenchmarkPacketLogDefault(b *testing.B) {
	c := event.Conn{ID: 12, Sock: 0xffff888104d9dc80, Netns: 4026531833, Pid: 4321, OwnerSrc: event.OwnerSrc(1),
		Src: netip.MustParseAddrPort("10.77.0.1:41000"), Dst: netip.MustParseAddrPort("10.77.0.2:7000"), EstNs: 1}
	pk := event.PacketInfo{Seq: 3889652109, Ack: 1048233276, Len: 1024, Missing: missingAll}
	http := []byte("-")
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pk.Seq += 1024
		pk.Rx = i&1 == 0
		buf = AppendPacketLog(buf[:0], &c, &pk, false, http, 1)
	}
}

// missingAll: an untimed record's Missing bits (packet.Decode).
const missingAll = event.MissingMac | event.MissingIP | event.MissingTCP
