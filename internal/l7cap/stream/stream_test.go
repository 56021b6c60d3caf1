package stream

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
)

// lenFramer: 2-byte big-endian length, then the body (DNS over TCP).
func lenFramer(b []byte, cont uint32) (int, uint32, Status) {
	if len(b) < 2 {
		return 0, 0, More
	}
	return 2 + int(binary.BigEndian.Uint16(b)), 0, OK
}

// lineFramer: a line ending in '\n' whose first byte is '#'; "#N:" says N
// body bytes follow the line, skipped as a continuation (cont = N).
func lineFramer(b []byte, cont uint32) (int, uint32, Status) {
	if cont > 0 {
		return int(cont), 0, OK
	}
	if b[0] != '#' {
		return 0, 0, Bad
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return 0, 0, More
	}
	var n uint32
	if _, err := fmt.Sscanf(string(b[1:i]), "%d:", &n); err == nil && n > 0 {
		return i + 1, n, OK
	}
	return i + 1, 0, OK
}

func framed(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
		b = append(b, m...)
	}
	return b
}

type got struct {
	msgs [][]byte
	cut  []bool
	ts   []uint64
}

func (g *got) emit(b []byte, cut bool, ts uint64) {
	g.msgs = append(g.msgs, append([]byte(nil), b...))
	g.cut = append(g.cut, cut)
	g.ts = append(g.ts, ts)
}

var (
	cli = netip.MustParseAddrPort("10.0.0.1:40000")
	srv = netip.MustParseAddrPort("10.0.0.2:53")
	key = Key{Sock: 9, Src: cli, Dst: srv}
)

func body(i int, n int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, n) }

// TestSegments: one message per segment, two in one segment, a length
// prefix alone in its segment, a prefix split over two segments, a
// message split over segments (kept until whole, with its first
// segment's time), a retransmission and an overlap, a gap (resync), a new
// connection on the same socket memory, a message whose start is beyond
// the captured bytes.
func TestSegments(t *testing.T) {
	f := New()
	var g got
	seq := uint32(0xfffffff0) // wraps
	ts := uint64(0)
	send := func(b []byte) {
		ts++
		f.Segment(key, seq, len(b), b, ts, lenFramer, g.emit)
		seq += uint32(len(b))
	}
	send(framed(body(0, 10)))
	send(framed(body(1, 5), body(2, 7)))
	send([]byte{0, 9}) // prefix alone
	send(body(3, 9))
	send([]byte{0}) // prefix split
	send([]byte{4})
	send(body(4, 4))
	long := framed(body(5, 30))
	send(long[:20]) // split message
	send(long[20:])
	seq -= uint32(len(long) - 20) // a retransmission of the continuation
	send(long[20:])
	two := framed(body(6, 3), body(7, 3))
	seq -= 2 // overlaps the last 2 bytes seen
	send(append(long[len(long)-2:len(long):len(long)], two...))
	want := []string{"a10", "b5", "c7", "d9", "e4", "f30", "g3", "h3"}
	check := func() {
		t.Helper()
		if len(g.msgs) != len(want) {
			t.Fatalf("%d messages, want %d", len(g.msgs), len(want))
		}
		for i, m := range g.msgs {
			if w := want[i]; len(m) < 2 || string(m[2:]) != string(body(int(w[0]-'a'), len(m)-2)) || fmt.Sprint(len(m)-2) != w[1:] || g.cut[i] {
				t.Errorf("message %d: %q cut %v, want %s", i, m, g.cut[i], w)
			}
		}
	}
	check()
	if g.ts[5] != 8 { // the split message: its first segment's time
		t.Errorf("split message at %d", g.ts[5])
	}
	if f.Resync+f.Uncaptured+f.BadStart+f.CarryFull != 0 {
		t.Fatalf("counters %+v", f)
	}
	// a new connection on the same socket memory (another port)
	other := key
	other.Src = netip.MustParseAddrPort("10.0.0.1:40001")
	f.Segment(other, 77, 12, framed(body(8, 10)), 30, lenFramer, g.emit)
	// a gap: bytes missed, resynchronised on a segment start
	seq += 5000
	send(framed(body(9, 1)))
	want = append(want, "i10", "j1")
	check()
	if f.Resync != 1 || f.Flows() != 2 {
		t.Fatalf("resync %d flows %d", f.Resync, f.Flows())
	}
	// a message padded past the capture: its head cut, the next message's start lost
	big := framed(body(10, 520), body(11, 4))
	third := Key{Sock: 10, Src: netip.MustParseAddrPort("10.0.0.1:40002"), Dst: srv}
	f.Segment(third, 1, len(big), big[:512], 40, lenFramer, g.emit)
	if len(g.msgs) != 11 || !g.cut[10] || len(g.msgs[10]) != 512 || f.Uncaptured != 1 {
		t.Fatalf("cut: %d messages, uncaptured %d", len(g.msgs), f.Uncaptured)
	}
	// ... taken up again at the next segment
	f.Segment(third, 1+uint32(len(big)), 6, framed(body(12, 4)), 41, lenFramer, g.emit)
	if len(g.msgs) != 12 || string(g.msgs[11][2:]) != "mmmm" {
		t.Fatalf("after loss: %q", g.msgs[len(g.msgs)-1])
	}
}

// TestContinuation: a message with a body skipped as a continuation over
// segments; a bad start loses the stream until a good one.
func TestContinuation(t *testing.T) {
	f := New()
	var g got
	s := []byte("#5:\nxxxxx#\n#2:\nyy")
	seq := uint32(100)
	for _, n := range []int{2, 5, 1, 2, 4, 3} {
		f.Segment(key, seq, n, s[:n], 1, lineFramer, g.emit)
		seq += uint32(n)
		s = s[n:]
	}
	if len(g.msgs) != 3 || string(g.msgs[0]) != "#5:\n" || !g.cut[0] || string(g.msgs[1]) != "#\n" || g.cut[1] || string(g.msgs[2]) != "#2:\n" {
		t.Fatalf("%q %v", g.msgs, g.cut)
	}
	f.Segment(key, seq, 3, []byte("zz\n"), 1, lineFramer, g.emit) // not a message start: lost
	f.Segment(key, seq+3, 3, []byte("#a\n"), 1, lineFramer, g.emit)
	if f.BadStart != 1 || len(g.msgs) != 4 {
		t.Fatalf("bad %d, %q", f.BadStart, g.msgs)
	}
	f.Segment(Key{Sock: 1}, 0, 3, []byte("zz\n"), 1, lineFramer, g.emit)
	f.Segment(Key{Sock: 1}, 3, 3, []byte("#b\n"), 1, lineFramer, g.emit)
	if f.BadStart != 2 || len(g.msgs) != 5 || string(g.msgs[4]) != "#b\n" {
		t.Fatalf("bad %d, %q", f.BadStart, g.msgs)
	}
}

func TestCarryFull(t *testing.T) {
	f := New()
	var g got
	line := append([]byte("#"), bytes.Repeat([]byte("x"), MaxCarry+10)...)
	for i := 0; i < len(line); i += 1000 {
		n := min(1000, len(line)-i)
		f.Segment(key, uint32(i), n, line[i:i+n], 1, lineFramer, g.emit)
	}
	if f.CarryFull != 1 || len(g.msgs) != 0 {
		t.Fatalf("carry full %d, %d messages", f.CarryFull, len(g.msgs))
	}
}

func TestNoAlloc(t *testing.T) {
	f := New()
	n := 0
	emit := func([]byte, bool, uint64) { n++ }
	b := framed(body(0, 10), body(1, 3))
	seq := uint32(0)
	f.Segment(key, seq, 3, b[:3], 1, lenFramer, emit) // the carry's buffer is made once
	f.Segment(key, seq+3, len(b)-3, b[3:], 1, lenFramer, emit)
	seq += uint32(len(b))
	if a := testing.AllocsPerRun(100, func() {
		f.Segment(key, seq, 3, b[:3], 1, lenFramer, emit)
		f.Segment(key, seq+3, len(b)-3, b[3:], 1, lenFramer, emit)
		seq += uint32(len(b))
	}); a != 0 {
		t.Errorf("%v allocations per segment", a)
	}
}

// FuzzSegments: a stream of length-prefixed messages, cut into segments
// anywhere (each byte of cuts a segment length 1..64, cycled), some
// segments sent twice (retransmissions): every message comes out once,
// whole, in order.
func FuzzSegments(f *testing.F) {
	f.Add([]byte{1})
	f.Add([]byte{2, 1, 13})
	f.Add([]byte{33, 64 + 128, 7})
	f.Add([]byte{200})
	var stream []byte
	var want []string
	for i, n := range []int{12, 0, 40, 3, 600, 25, 1} {
		m := body(i, n)
		stream = append(stream, framed(m)...)
		want = append(want, string(m))
	}
	f.Fuzz(func(t *testing.T, cuts []byte) {
		if len(cuts) == 0 {
			return
		}
		fl := New()
		var g got
		seq := uint32(0xffffff00)
		for off, i := 0, 0; off < len(stream); i++ {
			c := cuts[i%len(cuts)]
			n := min(int(c)%64+1, len(stream)-off)
			fl.Segment(key, seq, n, stream[off:off+n], 1, lenFramer, g.emit)
			if c&0x80 != 0 {
				fl.Segment(key, seq, n, stream[off:off+n], 1, lenFramer, g.emit)
			}
			off += n
			seq += uint32(n)
		}
		if len(g.msgs) != len(want) {
			t.Fatalf("%d messages, want %d (%+v)", len(g.msgs), len(want), fl)
		}
		for i, m := range g.msgs {
			if string(m[2:]) != want[i] || g.cut[i] {
				t.Fatalf("message %d: %d bytes cut %v", i, len(m), g.cut[i])
			}
		}
	})
}
