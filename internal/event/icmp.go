package event

import "net/netip"

// ICMPInfo is one ICMP or ICMPv6 message entering or leaving a host stack
// (internal/icmp, -I).
type ICMPInfo struct {
	Rx     bool
	Family uint16 // AF_INET, AF_INET6
	Type   uint8  // ICMP / ICMPv6 type
	Code   uint8
	ID     uint16 // echo only
	Seq    uint16 // echo only
	Len    uint32 // ICMP message bytes
	// Local and Remote ends (the message goes Remote -> Local when Rx).
	Local, Remote netip.Addr
	// End (Rx): how the receive path ended: ICMPEndNone (an error type, or
	// an echo nobody copied or answered), ICMPEndCopy (read by an
	// application), ICMPEndKernel (a request the kernel answered).
	End uint8
	// Kernel: made (sent) or answered (received) by the kernel itself: no
	// owner.
	Kernel bool
	// Layer times in ns; Missing bit set when a boundary was not seen
	// (MissingMac, MissingIP, MissingTCP for the ICMP layer).
	MacNs, IPNs, ICMPNs uint64
	Missing             uint8
	// First and last boundary stamps seen (monotonic ns; 0: none): the echo
	// round trip is made from them.
	First, Last uint64
	// The quoted packet of an error type: its protocol (0: none), source
	// and destination (ports for TCP/UDP; for ICMP echo, Port() of Src is
	// the id and of Dst the seq).
	InnerProto         uint8
	InnerSrc, InnerDst netip.AddrPort
	// RttNs: the echo round trip as the kernel saw it, filled by the
	// pipeline on an echo reply: received (the pinging side): the request
	// leaving (driver, else IP) -> the reply arriving (link, else IP);
	// sent (the answering side): the request arriving -> the reply
	// leaving. 0: not paired.
	RttNs uint64
}

// ICMP receive ends (ICMPInfo.End).
const (
	ICMPEndNone   = 0
	ICMPEndCopy   = 1
	ICMPEndKernel = 2
)

// IsEcho: an echo request or reply.
func (i *ICMPInfo) IsEcho() bool { return i.IsRequest() || i.IsReply() }

// IsRequest: an echo request.
func (i *ICMPInfo) IsRequest() bool {
	if i.Family == 10 {
		return i.Type == 128
	}
	return i.Type == 8
}

// IsReply: an echo reply.
func (i *ICMPInfo) IsReply() bool {
	if i.Family == 10 {
		return i.Type == 129
	}
	return i.Type == 0
}
