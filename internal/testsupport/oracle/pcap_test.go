package oracle

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
)

// tcpHeader returns a TCP header with optWords 32-bit words of options.
func tcpHeader(src, dst netip.AddrPort, seq, ack uint32, flags uint8, optWords int) []byte {
	h := make([]byte, 20+4*optWords)
	binary.BigEndian.PutUint16(h[0:], src.Port())
	binary.BigEndian.PutUint16(h[2:], dst.Port())
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12] = byte(5+optWords) << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 512)
	for i := 20; i < len(h); i++ {
		h[i] = 1 // NOP
	}
	return h
}

// ipv4 builds an IPv4 packet (ihlWords >= 5) around tcp and payload bytes.
func ipv4(src, dst netip.Addr, ihlWords int, proto byte, fragOff uint16, tcp []byte, payload int) []byte {
	p := make([]byte, 4*ihlWords, 4*ihlWords+len(tcp)+payload)
	p[0] = 0x40 | byte(ihlWords)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)+len(tcp)+payload))
	binary.BigEndian.PutUint16(p[6:], fragOff)
	p[8], p[9] = 64, proto
	copy(p[12:], src.AsSlice())
	copy(p[16:], dst.AsSlice())
	p = append(p, tcp...)
	return append(p, make([]byte, payload)...)
}

// ipv6 builds an IPv6 packet, optionally with a hop-by-hop header.
func ipv6(src, dst netip.Addr, hbh bool, tcp []byte, payload int) []byte {
	p := make([]byte, 40)
	p[0] = 0x60
	p[6], p[7] = 6, 64
	var ext []byte
	if hbh {
		p[6] = 0
		ext = []byte{6, 0, 1, 4, 0, 0, 0, 0} // next: TCP, len 8 bytes, PadN
	}
	binary.BigEndian.PutUint16(p[4:], uint16(len(ext)+len(tcp)+payload))
	copy(p[8:], src.AsSlice())
	copy(p[24:], dst.AsSlice())
	p = append(p, ext...)
	p = append(p, tcp...)
	return append(p, make([]byte, payload)...)
}

func ether(ethertype uint16, vlan bool, pkt []byte) []byte {
	h := make([]byte, 12)
	if vlan {
		h = append(h, 0x81, 0x00, 0x00, 0x07)
	}
	h = binary.BigEndian.AppendUint16(h, ethertype)
	return append(h, pkt...)
}

type record struct {
	ts     time.Time
	data   []byte
	snap   int // captured length (0: all)
	orig   int // wire length (0: len(data))
	broken bool
}

func writePcap(bo binary.ByteOrder, nanos bool, linktype uint32, recs []record) []byte {
	var b bytes.Buffer
	magic := uint32(0xa1b2c3d4)
	if nanos {
		magic = 0xa1b23c4d
	}
	hdr := make([]byte, 24)
	bo.PutUint32(hdr[0:], magic)
	bo.PutUint16(hdr[4:], 2)
	bo.PutUint16(hdr[6:], 4)
	bo.PutUint32(hdr[16:], 65535)
	bo.PutUint32(hdr[20:], linktype)
	b.Write(hdr)
	for _, r := range recs {
		data := r.data
		if r.snap > 0 && r.snap < len(data) {
			data = data[:r.snap]
		}
		orig := r.orig
		if orig == 0 {
			orig = len(r.data)
		}
		frac := uint32(r.ts.Nanosecond() / 1000)
		if nanos {
			frac = uint32(r.ts.Nanosecond())
		}
		rh := make([]byte, 16)
		bo.PutUint32(rh[0:], uint32(r.ts.Unix()))
		bo.PutUint32(rh[4:], frac)
		bo.PutUint32(rh[8:], uint32(len(data)))
		bo.PutUint32(rh[12:], uint32(orig))
		b.Write(rh)
		if r.broken {
			b.Write(data[:len(data)/2])
			break
		}
		b.Write(data)
	}
	return b.Bytes()
}

func TestReadPcapSynthetic(t *testing.T) {
	c4, s4 := ap("198.18.1.1:40000"), ap("198.18.1.2:80")
	c6, s6 := ap("[fd00:4e57:1::1]:40001"), ap("[fd00:4e57:1::2]:443")
	ts := time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)

	synV4 := ipv4(c4.Addr(), s4.Addr(), 7 /* 8 bytes of IP options */, 6, 0, tcpHeader(c4, s4, 1000, 0, SYN, 5), 0)
	dataV4 := ipv4(c4.Addr(), s4.Addr(), 5, 6, 0x4000 /* DF */, tcpHeader(c4, s4, 1001, 77, ACK|PSH, 3), 1000)
	dataV6 := ipv6(c6.Addr(), s6.Addr(), true, tcpHeader(c6, s6, 5, 6, ACK, 3), 300)
	gsoV4 := ipv4(s4.Addr(), c4.Addr(), 5, 6, 0, tcpHeader(s4, c4, 77, 2001, ACK, 0), 100)
	binary.BigEndian.PutUint16(gsoV4[2:], 0) // IPv4 total length 0: GSO/BIG TCP
	want := []Segment{
		{Src: c4, Dst: s4, Seq: 1000, Flags: SYN, Window: 512},
		{Src: c4, Dst: s4, Seq: 1001, Ack: 77, Flags: ACK | PSH, Window: 512, PayloadLen: 1000},
		{Src: c6, Dst: s6, Seq: 5, Ack: 6, Flags: ACK, Window: 512, PayloadLen: 300},
		{Src: s4, Dst: c4, Seq: 77, Ack: 2001, Flags: ACK, Window: 512, PayloadLen: 100},
	}
	skipped := [][]byte{
		ipv4(c4.Addr(), s4.Addr(), 5, 17, 0, make([]byte, 8), 10),                       // UDP
		ipv4(c4.Addr(), s4.Addr(), 5, 6, 185, tcpHeader(c4, s4, 1, 1, ACK, 0), 10),      // later fragment
		ipv6(c6.Addr(), s6.Addr(), false, tcpHeader(c6, s6, 1, 1, ACK, 0), 0)[:50],      // truncated
		append([]byte{0x45}, make([]byte, 10)...),                                       // short IPv4
		ipv4(c4.Addr(), s4.Addr(), 5, 6, 0, tcpHeader(c4, s4, 1, 1, ACK, 0), 0)[:20+12], // TCP header cut
		ipv6(c6.Addr(), s6.Addr(), false, tcpHeader(c6, s6, 1, 1, ACK, 0), 0)[:40],      // no TCP header
		ipv4(c4.Addr(), s4.Addr(), 5, 6, 0, tcpHeader(c4, s4, 1, 1, ACK, 0), 0)[:19],    // short header
		ipv6(c6.Addr(), s6.Addr(), true, tcpHeader(c6, s6, 1, 1, ACK, 0), 0)[:44],       // ext header cut
		{0x60, 0, 0, 0}, // short IPv6
		ipv4(c4.Addr(), s4.Addr(), 5, 6, 0, tcpHeader(c4, s4, 1, 1, ACK, 0), 0)[:20], /* no TCP */ // header only
	}
	pkts := [][]byte{synV4, dataV4, dataV6, gsoV4}
	ethertype := func(p []byte) uint16 {
		if p[0]>>4 == 6 {
			return 0x86dd
		}
		return 0x0800
	}
	frame := map[uint32]func(p []byte) []byte{
		LinkEthernet: func(p []byte) []byte { return ether(ethertype(p), len(p)%2 == 0, p) },
		LinkSLL: func(p []byte) []byte {
			h := make([]byte, 16)
			binary.BigEndian.PutUint16(h[14:], ethertype(p))
			return append(h, p...)
		},
		LinkSLL2: func(p []byte) []byte {
			h := make([]byte, 20)
			binary.BigEndian.PutUint16(h[0:], ethertype(p))
			return append(h, p...)
		},
		LinkRaw: func(p []byte) []byte { return p },
		LinkNull: func(p []byte) []byte {
			fam := uint32(2)
			if p[0]>>4 == 6 {
				fam = 10
			}
			return append(binary.LittleEndian.AppendUint32(nil, fam), p...)
		},
	}
	for lt, mk := range frame {
		for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			for _, nanos := range []bool{false, true} {
				var recs []record
				for i, p := range pkts {
					f := mk(p)
					r := record{ts: ts.Add(time.Duration(i) * time.Millisecond), data: f, snap: 128}
					if i == 3 {
						r.orig = len(f) // GSO: wire length is all we have
					}
					recs = append(recs, r)
				}
				for _, p := range skipped {
					recs = append(recs, record{ts: ts, data: mk(p)})
				}
				if lt == LinkEthernet {
					recs = append(recs, record{ts: ts, data: ether(0x0806, false, make([]byte, 28))}) // ARP
				}
				recs = append(recs, record{ts: ts, data: mk(dataV4), broken: true}) // cut off mid-record
				segs, err := ReadPcap(bytes.NewReader(writePcap(bo, nanos, lt, recs)))
				if err != nil {
					t.Fatalf("linktype %d %v nanos=%v: %v", lt, bo, nanos, err)
				}
				if len(segs) != len(want) {
					t.Fatalf("linktype %d %v nanos=%v: %d segments: %v", lt, bo, nanos, len(segs), segs)
				}
				for i, s := range segs {
					wantTS := ts.Add(time.Duration(i) * time.Millisecond)
					if !nanos {
						wantTS = wantTS.Truncate(time.Microsecond)
					}
					if !s.TS.Equal(wantTS) {
						t.Errorf("linktype %d nanos=%v seg %d: TS %v, want %v", lt, nanos, i, s.TS, wantTS)
					}
					s.TS = time.Time{}
					if s != want[i] {
						t.Errorf("linktype %d %v nanos=%v seg %d:\n got %+v\nwant %+v", lt, bo, nanos, i, s, want[i])
					}
				}
			}
		}
	}
	for _, bad := range [][]byte{nil, []byte("not a pcap file at all!!"), {0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := ReadPcap(bytes.NewReader(bad)); err == nil {
			t.Errorf("ReadPcap(%q): no error", bad)
		}
	}
	if s := want[1].String(); !strings.Contains(s, "[PA]") || !strings.Contains(s, "len 1000") {
		t.Errorf("String() = %q", s)
	}
}

// flow sums what a capture shows for one connection in one direction.
type flow struct {
	syn, synAck, fin, rst int
	isn                   uint32
	end                   uint32 // highest seq+len of a segment with data
	segs                  int
}

func flows(segs []Segment) map[[2]netip.AddrPort]*flow {
	m := map[[2]netip.AddrPort]*flow{}
	for _, s := range segs {
		k := [2]netip.AddrPort{s.Src, s.Dst}
		f := m[k]
		if f == nil {
			f = &flow{}
			m[k] = f
		}
		f.segs++
		if s.Has(SYN) {
			f.isn = s.Seq
			if s.Has(ACK) {
				f.synAck++
			} else {
				f.syn++
			}
		}
		if s.Has(FIN) {
			f.fin++
		}
		if s.Has(RST) {
			f.rst++
		}
		if e := s.Seq + uint32(s.PayloadLen); s.PayloadLen > 0 && (int32(e-f.end) > 0 || f.end == 0) {
			f.end = e
		}
	}
	return m
}

// TestTcpdumpLive captures real connections (IPv4 and IPv6) on A's veth
// (Ethernet frames) and on "any" in B (Linux cooked v2), and checks both
// against what nwpeer did.
func TestTcpdumpLive(t *testing.T) {
	p := nstest.NewPair(t)
	capA := StartTcpdump(t, p.A, p.IfA, "tcp")
	capB := StartTcpdump(t, p.B, "any", "tcp and not port 9")
	var conns [][2]netip.AddrPort
	for _, host := range []netip.Addr{p.B4, p.B6} {
		_, addr := peer.Serve(t, p.B, "-l", net.JoinHostPort(host.String(), "0"), "--echo")
		lines := peer.Run(t, p.A, 10*time.Second, "connect", "-r", addr, "--send", "5000")
		f := strings.Fields(lines[0])
		conns = append(conns, [2]netip.AddrPort{ap(f[1]), ap(f[2])})
	}
	time.Sleep(20 * time.Millisecond) // the server's FIN
	start := time.Now()
	for name, segs := range map[string][]Segment{"veth A": capA.Stop(), "any in B": capB.Stop()} {
		if len(segs) == 0 {
			t.Errorf("%s: nothing captured", name)
			continue
		}
		if d := time.Since(segs[0].TS); d < 0 || d > 30*time.Second+time.Since(start) {
			t.Errorf("%s: first timestamp %v is %v ago", name, segs[0].TS, d)
		}
		m := flows(segs)
		for _, c := range conns {
			fwd, rev := m[[2]netip.AddrPort{c[0], c[1]}], m[[2]netip.AddrPort{c[1], c[0]}]
			if fwd == nil || rev == nil {
				t.Errorf("%s: connection %v missing (flows %v)", name, c, len(m))
				continue
			}
			if fwd.syn != 1 || rev.synAck != 1 || fwd.fin != 1 || rev.fin != 1 || fwd.rst+rev.rst != 0 {
				t.Errorf("%s %v: syn %d synack %d fin %d/%d rst %d/%d", name, c, fwd.syn, rev.synAck, fwd.fin, rev.fin, fwd.rst, rev.rst)
			}
			// Data = highest sequence reached - ISN - 1 (SYN); FIN has no payload.
			if got := fwd.end - fwd.isn - 1; got != 5000 {
				t.Errorf("%s %v: client sent %d bytes, want 5000", name, c, got)
			}
			if got := rev.end - rev.isn - 1; got != 5000 {
				t.Errorf("%s %v: server sent %d bytes, want 5000", name, c, got)
			}
		}
	}
	if _, err := os.Stat(capA.Path); err != nil {
		t.Error(err)
	}
	if !strings.Contains(capB.Stderr(), "LINUX_SLL2") {
		t.Errorf("capture on any is not Linux cooked v2: %s", capB.Stderr())
	}
}
