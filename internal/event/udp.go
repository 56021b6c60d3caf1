package event

import "net/netip"

// UDPInfo is a UDP record (internal/udp, -u): a flow's counters
// (Type UDPFlow, made in user space every --interval and at exit) or, with
// -t, one datagram with its layer times (Type UDP). Src is the local end,
// Dst the remote one, in both directions (ev.Conn carries them too).
type UDPInfo struct {
	Src, Dst netip.AddrPort // local, remote

	// Datagram (-t).
	Rx  bool
	Len uint32 // payload bytes (all datagrams of a GSO/GRO skb)
	// Dgrams: datagrams in the skb (more than 1 for UDP_SEGMENT/UDP_GRO).
	Dgrams uint16
	// Layer times in ns as for TCP packets (MissingMac, MissingIP, and
	// MissingTCP for udp_time); receive: mac link -> IP, ip IP -> UDP,
	// udp UDP -> recvmsg; send: udp (never observed), ip IP -> device
	// queue, mac queue -> driver.
	MacNs, IPNs, UDPNs uint64
	Missing            uint8

	// Flow: datagrams and payload bytes since the previous record of the
	// flow (Rx*/Tx*) and since its first datagram (*Total); FirstNs/LastNs
	// its first and latest datagram (monotonic ns).
	RxDgrams, RxBytes, TxDgrams, TxBytes                     uint64
	RxDgramsTotal, RxBytesTotal, TxDgramsTotal, TxBytesTotal uint64
	FirstNs, LastNs                                          uint64
	// RxDrops, RxDropsTotal: datagrams the kernel dropped for the socket
	// from this peer (receive buffer full, bad checksum, socket filter):
	// counted in Rx* too when they were dropped after the UDP hook (the
	// usual case), so Rx - RxDrops were delivered. HasDrops: counted at all
	// (kfree_skb names the socket from Linux 6.11).
	RxDrops, RxDropsTotal uint64
	HasDrops              bool
	// Why a flow record was made: UDPInterval (the flow changed since its
	// previous record), UDPIdle (its last record: idle, it leaves the
	// kernel's table), UDPExit (its last record: netwatcher stops).
	Why uint8
}

// UDPInfo.Why values.
const (
	UDPInterval = iota
	UDPIdle
	UDPExit
)
