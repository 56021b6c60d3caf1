package output

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// The widest packets.log line (every number at its widest) fits
// PacketLogLen plus its HTTP text: the room PacketBuf is asked for.
func TestPacketLogLenBound(t *testing.T) {
	c := &event.Conn{Sock: math.MaxUint64, ID: math.MaxUint64}
	p := &event.PacketInfo{Seq: math.MaxUint32, Ack: math.MaxUint32, MacNs: math.MaxUint64, IPNs: math.MaxUint64, TCPNs: math.MaxUint64, Rx: true}
	http := []byte(strings.Repeat(`\x7f`, 160))
	if n := len(AppendPacketLog(nil, c, p, true, http, math.MaxUint32)) - len(http); n > PacketLogLen {
		t.Errorf("line of %d bytes without its HTTP text, PacketLogLen %d", n, PacketLogLen)
	}
}

// Lines formatted into packets.log's buffer (PacketBuf, PacketDone) are
// written whole and in order, across buffer drains, with lines written
// by Packet.
func TestPacketBufWritesWholeLines(t *testing.T) {
	dir := t.TempDir()
	fs, err := OpenFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	c := &event.Conn{Sock: 0xffff888100000000, ID: 7}
	for i := 0; i < 20000; i++ {
		p := &event.PacketInfo{Seq: uint32(i), Ack: 1}
		line := AppendPacketLog(nil, c, p, false, []byte("-"), 1)
		want = append(want, line...)
		if i%3 == 0 {
			fs.Packet(line)
			continue
		}
		b := fs.PacketBuf(PacketLogLen + 1)
		fs.PacketDone(AppendPacketLog(b, c, p, false, []byte("-"), 1))
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "packets.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 2*fileBuf || string(got) != string(want) {
		t.Errorf("packets.log: %d bytes, want %d (written: %d)", len(got), len(want), len(want))
	}
}
