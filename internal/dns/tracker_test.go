package dns

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

var (
	cli = netip.MustParseAddrPort("10.0.0.1:40000")
	srv = netip.MustParseAddrPort("10.0.0.2:53")
)

// rec makes a DNS record: payload b (TCP: sequence number seq), sent or
// received, between src and dst, on socket sk, owner pid.
func rec(ts uint64, rx, tcp bool, src, dst netip.AddrPort, sk uint64, pid uint32, seq uint32, b []byte) *event.Event {
	ev := &event.Event{Type: event.DNS, TS: ts, Conn: event.Conn{Sock: sk, Netns: 7, Pid: pid}, Ext: &event.Ext{}}
	copy(ev.Conn.Comm[:], "proc")
	d := &ev.Ext.App
	d.Rx, d.TCP, d.Src, d.Dst, d.Seq, d.PayLen = rx, tcp, src, dst, seq, uint16(len(b))
	d.Len = uint16(copy(d.Data[:], b))
	return ev
}

func framed(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
		b = append(b, m...)
	}
	return b
}

type results []event.DNSResult

func (r *results) emit(x *event.DNSResult) {
	c := *x
	c.Name = append([]byte(nil), x.Name...)
	*r = append(*r, c)
}

func TestPairUDPBothSides(t *testing.T) {
	tr := NewTracker()
	var got results
	query := msg(0x1234, 0x0100, 1, 0, wire("a.nwtest."), q(1))
	resp := msg(0x1234, 0x8183, 1, 0, wire("a.nwtest."), q(1))
	tr.Packet(rec(100, false, false, cli, srv, 0xc1, 11, 0, query), got.emit) // client sends
	tr.Packet(rec(150, true, false, cli, srv, 0x51, 0, 0, query), got.emit)   // server receives (owner not known yet)
	tr.Packet(rec(180, false, false, srv, cli, 0x51, 22, 0, resp), got.emit)  // server answers
	tr.Packet(rec(260, true, false, srv, cli, 0xc1, 11, 0, resp), got.emit)   // client receives
	if len(got) != 2 {
		t.Fatalf("results %+v", got)
	}
	s, c := got[0], got[1]
	if s.Kind != Answer || s.Side != Server || s.LatencyNs != 30 || s.Conn.Pid != 22 || s.Conn.Sock != 0x51 ||
		s.Conn.Src != srv || s.Conn.Dst != cli || s.Rcode != 3 || string(s.Name) != "a.nwtest." || s.QType != 1 || s.TS != 180 {
		t.Errorf("server %+v", s)
	}
	if c.Kind != Answer || c.Side != Client || c.LatencyNs != 160 || c.Conn.Pid != 11 || c.Conn.Src != cli || c.Conn.Dst != srv {
		t.Errorf("client %+v", c)
	}
	var procs []event.DNSProcCounters
	tr.Procs(true, func(p *event.DNSProcCounters) { procs = append(procs, *p) })
	if len(procs) != 2 || procs[0].Pid != 11 || procs[0].Side != Client || procs[0].Queries != 1 || procs[0].Answered != 1 ||
		procs[0].Rcodes[3] != 1 || procs[1].Pid != 22 || procs[1].Side != Server || procs[1].Answered != 1 {
		t.Errorf("procs %+v", procs)
	}
	n := 0
	tr.Procs(true, func(*event.DNSProcCounters) { n++ })
	if n != 0 {
		t.Errorf("%d unchanged processes listed as changed", n)
	}
	// another id on the same flow: not a pair; a response to nothing
	tr.Packet(rec(300, true, false, srv, cli, 0xc1, 11, 0, msg(0x9999, 0x8000, 0, 0)), got.emit)
	if r := got[len(got)-1]; len(got) != 3 || r.Kind != Unmatched || r.HasQuestion || r.Side != Client {
		t.Errorf("unmatched %+v", got)
	}
}

func TestExpireEvictFlush(t *testing.T) {
	tr := NewTracker()
	tr.TimeoutNs, tr.MaxPending = 1000, 2
	var got results
	for i := uint16(0); i < 3; i++ {
		tr.Packet(rec(uint64(i)*10, false, false, cli, srv, 1, 5, 0, msg(i, 0, 1, 0, wire("x."), q(1))), got.emit)
	}
	if len(got) != 1 || got[0].Kind != Unanswered || !got[0].Evicted || got[0].ID != 0 || tr.Evicted != 1 {
		t.Fatalf("eviction %+v", got)
	}
	// a repeated query restarts its clock
	tr.Packet(rec(500, false, false, cli, srv, 1, 5, 0, msg(1, 0, 1, 0, wire("x."), q(1))), got.emit)
	tr.Expire(1025, got.emit) // id 2 (ts 20) is due, id 1 (ts 500) is not
	if len(got) != 2 || got[1].ID != 2 || got[1].Evicted || tr.Repeats != 1 || tr.Pending() != 1 {
		t.Fatalf("expire %+v", got)
	}
	tr.Flush(got.emit)
	if len(got) != 3 || got[2].ID != 1 || got[2].TS != 500 || tr.Pending() != 0 {
		t.Fatalf("flush %+v", got)
	}
	var pc event.DNSProcCounters
	tr.Procs(false, func(p *event.DNSProcCounters) { pc = *p })
	if pc.Queries != 3 || pc.Unanswered != 3 || pc.Answered != 0 {
		t.Errorf("counters %+v", pc)
	}
}

// TestTCPStream: messages over TCP: one per segment, two in one segment,
// a length prefix alone in its segment, a message split over segments (its
// continuation and a retransmission skipped), a new connection on the same
// socket memory, a message whose start is beyond the captured bytes.
func TestTCPStream(t *testing.T) {
	tr := NewTracker()
	var got results
	m := func(id uint16, name string) []byte { return msg(id, 0, 1, 0, wire(name), q(28)) }
	seq := uint32(1000)
	send := func(b []byte) {
		tr.Packet(rec(1, false, true, cli, srv, 9, 3, seq, b), got.emit)
		seq += uint32(len(b))
	}
	send(framed(m(1, "a.")))
	send(framed(m(2, "b."), m(3, "c.")))
	send([]byte{0, byte(len(m(4, "d.")))}) // prefix alone
	send(m(4, "d."))
	long := framed(m(5, "e."))
	send(long[:20]) // the message split: its name cut
	send(long[20:])
	seq -= uint32(len(long) - 20) // a retransmission of the continuation
	send(long[20:])
	send(framed(m(6, "f.")))
	if tr.Pending() != 6 || tr.streams.Resync != 0 || tr.streams.Uncaptured != 0 {
		t.Fatalf("pending %d resync %d skipped %d", tr.Pending(), tr.streams.Resync, tr.streams.Uncaptured)
	}
	// the split message is kept until whole (its name read)
	if tr.BadQuestion != 0 || tr.pending[pairKey{netns: 7, tcp: true, client: cli, server: srv, id: 5}].name != "e." {
		t.Errorf("bad questions %d", tr.BadQuestion)
	}
	// a new connection from another port, on the same socket memory
	other := netip.MustParseAddrPort("10.0.0.1:40001")
	tr.Packet(rec(2, false, true, other, srv, 9, 3, 77, framed(m(7, "g."))), got.emit)
	// a jump in the stream (bytes missed): resynchronised on a segment start
	tr.Packet(rec(3, false, true, cli, srv, 9, 3, seq+5000, framed(m(8, "h."))), got.emit)
	if tr.Pending() != 8 || tr.streams.Resync != 1 {
		t.Errorf("pending %d resync %d", tr.Pending(), tr.streams.Resync)
	}
	// a segment whose second message starts after the copied bytes
	first := make([]byte, 520) // a query padded past the copy
	copy(first, m(9, "i."))
	big := framed(first, m(10, "j."))
	ev := rec(4, false, true, netip.MustParseAddrPort("10.0.0.1:40002"), srv, 10, 3, 1, big)
	ev.Ext.App.PayLen, ev.Ext.App.Len = uint16(len(big)), event.DNSMax
	tr.Packet(ev, got.emit)
	if tr.Pending() != 9 || tr.streams.Uncaptured != 1 {
		t.Errorf("pending %d skipped %d", tr.Pending(), tr.streams.Uncaptured)
	}
	// the response to 4 pairs (another direction of the same connection)
	tr.Packet(rec(5, true, true, srv, cli, 9, 3, 500, framed(msg(4, 0x8180, 1, 1, wire("d."), q(28)))), got.emit)
	if len(got) != 1 || got[0].Kind != Answer || string(got[0].Name) != "d." || got[0].Answers != 1 || !got[0].TCP {
		t.Errorf("results %+v", got)
	}
}

func TestPacketNoAlloc(t *testing.T) {
	tr := NewTracker()
	var n int
	emit := func(*event.DNSResult) { n++ }
	query := rec(1, false, false, cli, srv, 1, 5, 0, msg(1, 0, 1, 0, wire("a.nwtest."), q(1)))
	resp := rec(2, true, false, srv, cli, 1, 5, 0, msg(1, 0x8000, 1, 1, wire("a.nwtest."), q(1)))
	tr.Packet(query, emit)
	tr.Packet(resp, emit)
	// a pair costs the pending entry's name (one string); a response alone nothing
	if a := testing.AllocsPerRun(100, func() { tr.Packet(resp, emit) }); a != 0 {
		t.Errorf("%v allocations per unmatched response", a)
	}
}

// FuzzTCPStream: five queries over one TCP direction, cut into segments
// anywhere (cuts: each byte a segment length, 1..64 bytes, cycled).
// Every message is pending with its own name (a message split over
// segments is kept until whole): never lost, never misread, and the stream
// never loses its place.
func FuzzTCPStream(f *testing.F) {
	f.Add([]byte{1})
	f.Add([]byte{2, 1, 13})
	f.Add([]byte{33, 64, 7})
	f.Add([]byte{200})
	names := []string{"a.", "bb.nwtest.", "a-much-longer-name.example.nwtest.", "x.", "yy.zz."}
	var stream []byte
	for i, n := range names {
		stream = append(stream, framed(msg(uint16(100+i), 0x0100, 1, 0, wire(n), q(1)))...)
	}
	f.Fuzz(func(t *testing.T, cuts []byte) {
		if len(cuts) == 0 {
			return
		}
		tr := NewTracker()
		var got results
		seq := uint32(0xfffffff0) // the sequence numbers wrap inside the stream
		for off, i := 0, 0; off < len(stream); i++ {
			n := min(int(cuts[i%len(cuts)])%64+1, len(stream)-off)
			tr.Packet(rec(1, false, true, cli, srv, 9, 3, seq, stream[off:off+n]), got.emit)
			off += n
			seq += uint32(n)
		}
		if len(got) != 0 || tr.streams.Uncaptured != 0 || tr.streams.Resync != 0 || tr.Pending() != len(names) || tr.Unparsed != 0 {
			t.Fatalf("pending %d unparsed %d skipped %d resync %d results %d", tr.Pending(), tr.Unparsed, tr.streams.Uncaptured, tr.streams.Resync, len(got))
		}
		for k, p := range tr.pending {
			i := int(k.id) - 100
			if i < 0 || i >= len(names) || !p.hasQ || p.name != names[i] {
				t.Fatalf("query %d: %+v", k.id, p)
			}
		}
	})
}
