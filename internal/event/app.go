package event

import "net/netip"

// AppMax is how many bytes of a packet's payload the application capture
// copies at most (NW_L7_MAX in internal/l7cap/l7cap.bpf.c); each protocol
// asks for as many as its parser needs (DNS 512).
const AppMax = 2048

// AppInfo is one UDP datagram or TCP segment to or from an application
// port (internal/l7cap: DNS -N, Redis -R, MySQL -M), as the kernel saw it:
// the packet's addresses, and the first bytes of its payload. The record's
// type (ev.Type) is the protocol's; the protocol's package takes the
// messages out of it (internal/l7cap/stream for TCP) and pairs.
type AppInfo struct {
	Rx       bool           // received (ingress), else sent
	TCP      bool           // TCP segment, else UDP datagram
	Src, Dst netip.AddrPort // the packet's source and destination
	Seq      uint32         // TCP: sequence number of the payload's first byte
	PayLen   uint16         // payload bytes in the packet (capped at 65535)
	Len      uint16         // of them copied into Data (at most AppMax)
	// Tick: no packet; made every --interval by the l7cap concern
	// (engine.Ticker) for each protocol that is on: the pipeline expires
	// what waits too long and prints counters or summaries.
	Tick bool
	// Final (with Tick): the run's end (l7cap.Finisher): the pipeline
	// gives up what still waits and prints the exit summaries.
	Final bool
	Data  [AppMax]byte
}

// Payload is the copied part of the payload.
func (d *AppInfo) Payload() []byte { return d.Data[:d.Len] }

// AppSide: which end of an application exchange a record was seen at (a
// host that runs both ends sees each exchange twice): the client's socket
// sends requests and receives responses, the server's (its local port is
// the service port) the other way round. DNSSide is the same type.
type AppSide = DNSSide

const (
	AppClient = DNSClient
	AppServer = DNSServer
)
