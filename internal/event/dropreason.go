package event

import "net/netip"

// DropStackMax bounds DropInfo.Stack (NW_DROP_STACK in dropreason.bpf.c).
const DropStackMax = 16

// DropInfo is one packet the kernel freed as dropped (internal/dropreason, -k).
type DropInfo struct {
	Reason   uint32 // enum skb_drop_reason code (kernel's numbering)
	Name     string // the kernel's name without SKB_DROP_REASON_ ("" if unknown)
	Location uint64 // kernel address that freed the skb
	Family   uint16 // AF_INET, AF_INET6; 0: not IP
	L3       uint16 // ethertype of the skb (skb->protocol)
	Proto    uint8  // IPPROTO_* (IP only)
	ICMPType uint8  // ICMP/ICMPv6 only
	ICMPCode uint8
	// FromSock: the skb had no IP header yet (e.g. a socket's queue purged
	// before IP output); Src/Dst are its socket's local and remote ends.
	FromSock bool
	SkState  uint8          // TCP state of the socket (0: no inet socket)
	EstLo    uint32         // low 32 bits of the tracked connection's EstNs (0: not one)
	Src, Dst netip.AddrPort // the packet's (ports 0 when it has none)
	NStack   uint8          // frames in Stack (-A)
	Stack    [DropStackMax]uint64
}

// IP protocol numbers DropInfo.Proto names.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// HasPorts: the protocol has ports (TCP, UDP).
func (d *DropInfo) HasPorts() bool { return d.Proto == ProtoTCP || d.Proto == ProtoUDP }
