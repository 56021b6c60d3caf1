package event

import (
	"net/netip"
	"strconv"
)

// StateInfo is one TCP state transition (internal/tcpstate, -P).
type StateInfo struct {
	Old, New uint8 // the kernel's TCP states (TCP_ESTABLISHED = 1, ...)
	// InOldNs: how long the socket was in Old, in ns; 0 when the record
	// is its first transition seen (started before netwatcher, or a
	// child socket born in SYN_RECV from its listener).
	InOldNs  uint64
	Src, Dst netip.AddrPort // the socket's own tuple at the transition
	// EstLo: low 32 bits of the connection's establishment time (as
	// PacketInfo.EstLo) once the connection tracker had it; 0 before.
	EstLo uint32
	// Pid/Comm: the task in whose context the transition ran, when that
	// is the socket's owner (connect(), close(), shutdown()); 0 otherwise.
	Pid  uint32
	Comm Comm
}

// TCP states of the kernel's enum (include/net/tcp_states.h) that the
// code names; tcpStateNames has all of them.
const (
	TCPEstablished uint8 = 1
	TCPSynSent     uint8 = 2
	TCPSynRecv     uint8 = 3
	TCPClose       uint8 = 7
)

var tcpStateNames = [...]string{
	1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
	6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
	11: "CLOSING", 12: "NEW_SYN_RECV", 13: "BOUND_INACTIVE",
}

// TCPStateName is the kernel's name of TCP state s without its TCP_
// prefix, as ss prints them ("state12" for a number this table lacks).
func TCPStateName(s uint8) string {
	if int(s) < len(tcpStateNames) && tcpStateNames[s] != "" {
		return tcpStateNames[s]
	}
	return "state" + strconv.Itoa(int(s))
}

// Handshake reports whether the transition completes a handshake
// (SYN_SENT or SYN_RECV -> ESTABLISHED): InOldNs is then its latency.
func (s *StateInfo) Handshake() bool {
	return s.New == TCPEstablished && (s.Old == TCPSynSent || s.Old == TCPSynRecv)
}
