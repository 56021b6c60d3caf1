package output

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// A packet line made from a connection's slot is the line made without
// one, while connections share slots, change owner, addresses or number,
// and wider addresses widen the columns.
func TestPacketLineFromConnTextSlots(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	addrs := goldenAddrs()
	pool := make([]event.Conn, 150)
	for i := range pool {
		pool[i] = event.Conn{ID: uint64(i % 120), Sock: 0xffff888100000000 + uint64(i%90)*0x100, Netns: 4026531833,
			Src: addrs[4], Dst: addrs[5], Pid: uint32(i), OwnerSrc: event.OwnerSrc(i % 3)}
		copy(pool[i].Comm[:], "nginx")
	}
	for _, json := range []bool{false, true} {
		p := &Printer{JSON: json, Timed: true, HTTP: true, Clock: fixedClock()}
		var got, want []byte
		for n := 0; n < 30000; n++ {
			c := &pool[r.IntN(len(pool))]
			switch r.IntN(40) {
			case 0:
				c.Pid++
			case 1:
				c.Comm[r.IntN(len(c.Comm))] = byte('a' + r.IntN(26))
			case 2:
				c.OwnerSrc = event.OwnerSrc(r.IntN(3))
			case 3:
				c.Src = addrs[r.IntN(len(addrs))]
			case 4:
				c.Dst = addrs[r.IntN(len(addrs))]
			case 5:
				c.ID = uint64(r.IntN(1000)) // numbers that share a slot
			case 6:
				c.Netns++
			case 7:
				c.Sock += 0x100
			case 8:
				c.Pid = 0
			}
			ev := &event.Event{Type: event.Packet, TS: uint64(n) * 1e6, Conn: *c,
				Packet: event.PacketInfo{Seq: uint32(n), Ack: 9, Len: 10, Rx: n%2 == 0}}
			fresh := *p
			fresh.texts = nil
			want = fresh.Packet(want[:0], ev, nil)
			got = p.Packet(got[:0], ev, nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("json %v, record %d:\n got %q\nwant %q", json, n, got, want)
			}
			p.addrW, p.pktHd = fresh.addrW, fresh.pktHd
		}
	}
}
