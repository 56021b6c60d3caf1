package fault

import (
	"encoding/binary"
	"net/netip"
)

// TCP flag bits.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

// segment describes one TCP segment to build.
type segment struct {
	flow    Flow
	seq     uint32
	ack     uint32
	flags   uint8
	window  uint16
	payload []byte
	// csumXor, when non-zero, is XORed into the correct TCP checksum.
	csumXor uint16
}

// csumAdd adds b to a running one's-complement sum (not folded).
func csumAdd(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func csumFold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return ^uint16(sum)
}

// tcpChecksum computes the TCP checksum over the pseudo header and tcp
// (header with a zero checksum field, plus payload).
func tcpChecksum(src, dst netip.Addr, tcp []byte) uint16 {
	var sum uint32
	sum = csumAdd(sum, src.AsSlice())
	sum = csumAdd(sum, dst.AsSlice())
	if src.Is4() {
		sum += 6 + uint32(len(tcp))
	} else {
		l := uint32(len(tcp))
		sum += l>>16 + l&0xffff + 6
	}
	sum = csumAdd(sum, tcp)
	return csumFold(sum)
}

// build returns the IP packet and the correct and the written TCP checksum.
func (s segment) build(ipID uint16) (pkt []byte, good, written uint16) {
	tcp := make([]byte, 20+len(s.payload))
	binary.BigEndian.PutUint16(tcp[0:], s.flow.Src.Port())
	binary.BigEndian.PutUint16(tcp[2:], s.flow.Dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], s.seq)
	binary.BigEndian.PutUint32(tcp[8:], s.ack)
	tcp[12] = 5 << 4
	tcp[13] = s.flags
	binary.BigEndian.PutUint16(tcp[14:], s.window)
	copy(tcp[20:], s.payload)
	good = tcpChecksum(s.flow.Src.Addr(), s.flow.Dst.Addr(), tcp)
	written = good ^ s.csumXor
	binary.BigEndian.PutUint16(tcp[16:], written)

	src, dst := s.flow.Src.Addr().AsSlice(), s.flow.Dst.Addr().AsSlice()
	if s.flow.Src.Addr().Is4() {
		ip := make([]byte, 20, 20+len(tcp))
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		binary.BigEndian.PutUint16(ip[4:], ipID)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = 64
		ip[9] = 6
		copy(ip[12:], src)
		copy(ip[16:], dst)
		binary.BigEndian.PutUint16(ip[10:], csumFold(csumAdd(0, ip)))
		return append(ip, tcp...), good, written
	}
	ip := make([]byte, 40, 40+len(tcp))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
	ip[6] = 6
	ip[7] = 64
	copy(ip[8:], src)
	copy(ip[24:], dst)
	return append(ip, tcp...), good, written
}

// parsed is a TCP segment seen on the wire.
type parsed struct {
	src, dst netip.AddrPort
	seq, ack uint32
	flags    uint8
	window   uint16
	paylen   int    // TCP payload length (from the IP header)
	payload  []byte // captured part of the payload
}

// seglen is the sequence space the segment occupies.
func (p parsed) seglen() uint32 {
	n := uint32(p.paylen)
	if p.flags&tcpSYN != 0 {
		n++
	}
	if p.flags&tcpFIN != 0 {
		n++
	}
	return n
}

// parseIPTCP parses an IP packet of which b is the captured part and
// wireLen the real length. It returns false for anything but an unfragmented
// TCP segment.
func parseIPTCP(b []byte, wireLen int) (parsed, bool) {
	var p parsed
	if len(b) < 1 {
		return p, false
	}
	var l4 []byte
	var l4len int
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return p, false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl || b[9] != 6 {
			return p, false
		}
		if binary.BigEndian.Uint16(b[6:])&0x3fff != 0 { // MF or offset
			return p, false
		}
		tot := int(binary.BigEndian.Uint16(b[2:]))
		if tot == 0 { // BIG TCP
			tot = wireLen
		}
		s, _ := netip.AddrFromSlice(b[12:16])
		d, _ := netip.AddrFromSlice(b[16:20])
		p.src, p.dst = netip.AddrPortFrom(s, 0), netip.AddrPortFrom(d, 0)
		l4, l4len = b[ihl:], tot-ihl
	case 6:
		if len(b) < 40 || b[6] != 6 {
			return p, false
		}
		pl := int(binary.BigEndian.Uint16(b[4:]))
		if pl == 0 {
			pl = wireLen - 40
		}
		s, _ := netip.AddrFromSlice(b[8:24])
		d, _ := netip.AddrFromSlice(b[24:40])
		p.src, p.dst = netip.AddrPortFrom(s, 0), netip.AddrPortFrom(d, 0)
		l4, l4len = b[40:], pl
	default:
		return p, false
	}
	if len(l4) < 20 {
		return p, false
	}
	doff := int(l4[12]>>4) * 4
	if doff < 20 || l4len < doff {
		return p, false
	}
	p.src = netip.AddrPortFrom(p.src.Addr(), binary.BigEndian.Uint16(l4[0:]))
	p.dst = netip.AddrPortFrom(p.dst.Addr(), binary.BigEndian.Uint16(l4[2:]))
	p.seq = binary.BigEndian.Uint32(l4[4:])
	p.ack = binary.BigEndian.Uint32(l4[8:])
	p.flags = l4[13]
	p.window = binary.BigEndian.Uint16(l4[14:])
	p.paylen = l4len - doff
	if len(l4) > doff {
		p.payload = l4[doff:min(len(l4), doff+p.paylen)]
	}
	return p, true
}

// seqAfter reports whether a comes after b in sequence space (wrap-safe).
func seqAfter(a, b uint32) bool { return int32(a-b) > 0 }
