package oracle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// TCP flag bits, as in Segment.Flags.
const (
	FIN uint8 = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

// Segment is one captured TCP segment.
type Segment struct {
	Src, Dst   netip.AddrPort
	Seq, Ack   uint32
	Flags      uint8
	Window     uint16 // as on the wire, unscaled
	PayloadLen int    // from the IP length fields, so right even when the snap length cut the packet
	TS         time.Time
}

// Has reports whether all of the given flags are set.
func (s Segment) Has(flags uint8) bool { return s.Flags&flags == flags }

func (s Segment) String() string {
	var f strings.Builder
	for i, c := range "FSRPAUEC" {
		if s.Flags&(1<<i) != 0 {
			f.WriteRune(c)
		}
	}
	return fmt.Sprintf("%s %s > %s [%s] seq %d ack %d win %d len %d",
		s.TS.Format("15:04:05.000000"), s.Src, s.Dst, f.String(), s.Seq, s.Ack, s.Window, s.PayloadLen)
}

// Link types this reader understands (LINKTYPE_* values of pcap files).
const (
	LinkNull     = 0
	LinkEthernet = 1
	LinkRaw      = 101
	LinkSLL      = 113
	LinkSLL2     = 276
	linkRawAlt   = 12 // DLT_RAW on some systems
	linkRawAlt2  = 14
)

// ReadPcap reads a classic pcap file (either byte order, µs or ns
// timestamps; not pcapng) and returns its TCP segments over IPv4 or IPv6.
// Other packets are skipped.
func ReadPcap(r io.Reader) ([]Segment, error) {
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	var bo binary.ByteOrder
	var nanos bool
	switch magic := binary.LittleEndian.Uint32(hdr[:4]); magic {
	case 0xa1b2c3d4:
		bo = binary.LittleEndian
	case 0xa1b23c4d:
		bo, nanos = binary.LittleEndian, true
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	case 0x4d3cb2a1:
		bo, nanos = binary.BigEndian, true
	case 0x0a0d0d0a:
		return nil, errors.New("pcapng is not supported: write classic pcap")
	default:
		return nil, fmt.Errorf("not a pcap file (magic %#x)", magic)
	}
	linktype := bo.Uint32(hdr[20:24]) & 0x0fffffff // upper bits: FCS info
	var segs []Segment
	var rec [16]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return segs, nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return segs, nil // capture cut off mid-record: keep what is whole
			}
			return segs, err
		}
		sec, frac := bo.Uint32(rec[0:4]), bo.Uint32(rec[4:8])
		capLen, origLen := bo.Uint32(rec[8:12]), bo.Uint32(rec[12:16])
		if capLen > 1<<18 {
			return segs, fmt.Errorf("record of %d bytes: corrupt file", capLen)
		}
		if cap(buf) < int(capLen) {
			buf = make([]byte, capLen)
		}
		buf = buf[:capLen]
		if _, err := io.ReadFull(r, buf); err != nil {
			return segs, nil
		}
		ns := int64(frac)
		if !nanos {
			ns *= 1000
		}
		seg, ok := ParsePacket(linktype, buf, int(origLen))
		if ok {
			seg.TS = time.Unix(int64(sec), ns)
			segs = append(segs, seg)
		}
	}
}

// ParsePacket decodes one captured frame of the given link type. origLen
// is the frame's length on the wire (used when the IP length field is 0,
// as in GSO/BIG TCP packets). ok is false if it is not a TCP segment.
func ParsePacket(linktype uint32, b []byte, origLen int) (seg Segment, ok bool) {
	var proto uint16 // ethertype
	var off int
	switch linktype {
	case LinkEthernet:
		if len(b) < 14 {
			return seg, false
		}
		proto, off = binary.BigEndian.Uint16(b[12:14]), 14
		for (proto == 0x8100 || proto == 0x88a8) && len(b) >= off+4 {
			proto, off = binary.BigEndian.Uint16(b[off+2:off+4]), off+4
		}
	case LinkSLL:
		if len(b) < 16 {
			return seg, false
		}
		proto, off = binary.BigEndian.Uint16(b[14:16]), 16
	case LinkSLL2:
		if len(b) < 20 {
			return seg, false
		}
		proto, off = binary.BigEndian.Uint16(b[0:2]), 20
	case LinkNull:
		if len(b) < 4 {
			return seg, false
		}
		// Address family in host byte order: 2 = AF_INET; AF_INET6 varies.
		fam := binary.LittleEndian.Uint32(b[:4])
		if fam > 0xffff {
			fam = binary.BigEndian.Uint32(b[:4])
		}
		proto, off = 0x86dd, 4
		if fam == 2 {
			proto = 0x0800
		}
	case LinkRaw, linkRawAlt, linkRawAlt2:
		if len(b) < 1 {
			return seg, false
		}
		proto = 0x0800
		if b[0]>>4 == 6 {
			proto = 0x86dd
		}
	default:
		return seg, false
	}
	b = b[off:]
	wire := origLen - off // bytes from the IP header on, on the wire
	var src, dst netip.Addr
	var tcpLen int // TCP header + payload
	switch proto {
	case 0x0800:
		if len(b) < 20 || b[0]>>4 != 4 {
			return seg, false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl || b[9] != 6 {
			return seg, false
		}
		if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
			return seg, false // non-first fragment: no TCP header
		}
		total := int(binary.BigEndian.Uint16(b[2:4]))
		if total == 0 {
			total = wire
		}
		src, dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		tcpLen = total - ihl
		b = b[ihl:]
	case 0x86dd:
		if len(b) < 40 || b[0]>>4 != 6 {
			return seg, false
		}
		plen := int(binary.BigEndian.Uint16(b[4:6]))
		if plen == 0 {
			plen = wire - 40
		}
		src, dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		next, pos := b[6], 40
		// Skip hop-by-hop, routing and destination options headers.
		for next == 0 || next == 43 || next == 60 {
			if len(b) < pos+8 {
				return seg, false
			}
			next, pos = b[pos], pos+(int(b[pos+1])+1)*8
		}
		if next != 6 || len(b) < pos {
			return seg, false
		}
		tcpLen = plen - (pos - 40)
		b = b[pos:]
	default:
		return seg, false
	}
	if len(b) < 16 {
		return seg, false
	}
	dataOff := int(b[12]>>4) * 4
	seg = Segment{
		Src:        netip.AddrPortFrom(src, binary.BigEndian.Uint16(b[0:2])),
		Dst:        netip.AddrPortFrom(dst, binary.BigEndian.Uint16(b[2:4])),
		Seq:        binary.BigEndian.Uint32(b[4:8]),
		Ack:        binary.BigEndian.Uint32(b[8:12]),
		Flags:      b[13],
		Window:     binary.BigEndian.Uint16(b[14:16]),
		PayloadLen: max(tcpLen-dataOff, 0),
	}
	return seg, true
}
