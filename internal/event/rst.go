package event

import "net/netip"

// RstInfo is one TCP reset sent or received (internal/rst, --rst).
type RstInfo struct {
	Rx bool // received (else sent)
	// State: the kernel's TCP state the connection was in (TCP_ESTABLISHED
	// = 1, ...); 0 when the reset was sent for no socket. For an active
	// reset (Aborted) it is the state the socket left for CLOSE just
	// before the RST went out.
	State   uint8
	Aborted bool
	// NoSocket: sent in reply to a segment no socket wanted.
	NoSocket bool
	// Reason: enum sk_rst_reason of a sent reset (Linux 6.10+; HasReason),
	// Name its kernel name without the SK_RST_REASON_ prefix.
	Reason    uint32
	HasReason bool
	Name      string
	Src, Dst  netip.AddrPort // local, remote (the RST goes Src -> Dst when sent)
	// EstLo: low 32 bits of the connection's establishment time (as
	// PacketInfo.EstLo) when the tracker still had it; 0 otherwise.
	EstLo uint32
	// ConnSent, ConnReceived: the connection's resets so far, this one
	// included (filled by the pipeline; 0 when the connection is unknown).
	ConnSent, ConnReceived uint32
}
