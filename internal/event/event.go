// Package event holds the decoded, user-space form of what the BPF side
// reports. Values only (no pointers into ring memory, no per-event heap
// allocation): an Event is copied through a bounded queue by value.
package event

import (
	"net/netip"
)

// The kernel side's enums are the source of truth: gen.go has bpf2go
// generate them from internal/bpf/include/nw_types.h (event_x86_bpfel.go),
// and the constants below are defined from, or checked against, those.

// Type is enum nw_event_type: the first byte of a ring record.
type Type uint8

const (
	ConnOpen  = Type(eventNwEventTypeNW_EV_CONN_OPEN)
	ConnOwner = Type(eventNwEventTypeNW_EV_CONN_OWNER)
	ConnClose = Type(eventNwEventTypeNW_EV_CONN_CLOSE)
	State     = Type(eventNwEventTypeNW_EV_STATE) // internal/tcpstate
	Rst       = Type(eventNwEventTypeNW_EV_RST)   // internal/rst (--rst)
	Rtt       = Type(eventNwEventTypeNW_EV_RTT)   // internal/rtt (also made in user space: periodic lines)
	Packet    = Type(eventNwEventTypeNW_EV_PACKET)
	Retrans   = Type(eventNwEventTypeNW_EV_RETRANS)
	Cong      = Type(eventNwEventTypeNW_EV_CONG)
	Error     = Type(eventNwEventTypeNW_EV_ERROR)
	Drop      = Type(eventNwEventTypeNW_EV_DROP)     // internal/dropreason (-k)
	UDP       = Type(eventNwEventTypeNW_EV_UDP)      // internal/udp (-u -t): a datagram, packet ring
	UDPFlow   = Type(eventNwEventTypeNW_EV_UDP_FLOW) // internal/udp (-u): a flow's counters (made in user space)
	NF        = Type(eventNwEventTypeNW_EV_NF)       // internal/netfilter (-n), packet ring
	DNS       = Type(eventNwEventTypeNW_EV_DNS)      // internal/dns (-N), packet ring
	Redis     = Type(eventNwEventTypeNW_EV_REDIS)    // internal/redis (-R): application capture, packet ring
	MySQL     = Type(eventNwEventTypeNW_EV_MYSQL)    // internal/mysql (-M): application capture, packet ring
	ICMP      = Type(eventNwEventTypeNW_EV_ICMP)     // internal/icmp (-I), packet ring
	// ConnExisting is produced in user space by the start-up walk, never
	// by the ring buffer.
	ConnExisting Type = 101
	// LayerSum: --summary's per-direction summary (internal/packet, made
	// in user space from its kernel histograms), never a ring record.
	LayerSum Type = 102
)

// MaxRingType bounds ring-buffer event types (NW_EV__MAX).
const MaxRingType = 32

// Stat indices are enum nw_stat (untyped: they index arrays of any type).
const (
	StatRingFull       = 0 // + event type
	StatConnMapFull    = 32
	StatConnFiltered   = 33 // connections -s/-d/-S/-D left out
	StatPktMapFull     = 34 // -t: sent-segment stamps, table full
	StatPktQueueAlloc  = 35 // -t: a socket's stamp queue could not be made
	StatPktRxUnread    = 36 // -t: receive stamps queue full (application not reading)
	StatPktTxChunks    = 37 // -t: send chunk ring full
	StatListenMapFull  = 38 // -x: a listener the listener table refused
	StatUDPFlowFull    = 39 // -u: a UDP flow the flow table refused
	StatUDPRxUnread    = 40 // -u -t: a socket's receive FIFO full
	StatUDPTxFull      = 41 // -u -t: sent-datagram stamps table full
	StatICMPRxPendFull = 42 // -I: a received echo recorded without its end (table full, duplicate)
	StatICMPTxPendFull = 43 // -I: a sent ICMP message recorded without queue/driver stamps (table full)
	StatNfUnmatched    = 48 // -n: a hook end that found another packet's start stamp
	StatNfEvicted      = 49 // -n: a packet's pending hook times evicted (no record)
	StatConnAggFull    = 59 // --metrics-addr: a connection counted under port class 0, or not at all (nw_conn_agg full)
	StatRetransUnseen  = 60 // -r: retransmitted segments of closed connections (total_retrans) the hook did not see
	StatMax            = 64
)

// The untyped constants above must equal the generated ones: a constant
// index out of range [0, 1) fails the build.
var (
	_ = [1]struct{}{}[MaxRingType-int(eventNwEventTypeNW_EV__MAX)]
	_ = [1]struct{}{}[StatRingFull-int(eventNwStatNW_STAT_RB_FULL)]
	_ = [1]struct{}{}[StatConnMapFull-int(eventNwStatNW_STAT_CONN_MAP_FULL)]
	_ = [1]struct{}{}[StatConnFiltered-int(eventNwStatNW_STAT_CONN_FILTERED)]
	_ = [1]struct{}{}[StatPktMapFull-int(eventNwStatNW_STAT_PKT_MAP_FULL)]
	_ = [1]struct{}{}[StatPktQueueAlloc-int(eventNwStatNW_STAT_PKT_QUEUE_ALLOC)]
	_ = [1]struct{}{}[StatPktRxUnread-int(eventNwStatNW_STAT_PKT_RX_UNREAD)]
	_ = [1]struct{}{}[StatPktTxChunks-int(eventNwStatNW_STAT_PKT_TX_CHUNKS)]
	_ = [1]struct{}{}[StatListenMapFull-int(eventNwStatNW_STAT_LISTEN_MAP_FULL)]
	_ = [1]struct{}{}[StatUDPFlowFull-int(eventNwStatNW_STAT_UDP_FLOW_FULL)]
	_ = [1]struct{}{}[StatUDPRxUnread-int(eventNwStatNW_STAT_UDP_RX_UNREAD)]
	_ = [1]struct{}{}[StatUDPTxFull-int(eventNwStatNW_STAT_UDP_TX_FULL)]
	_ = [1]struct{}{}[StatICMPRxPendFull-int(eventNwStatNW_STAT_ICMP_RX_PEND_FULL)]
	_ = [1]struct{}{}[StatICMPTxPendFull-int(eventNwStatNW_STAT_ICMP_TX_PEND_FULL)]
	_ = [1]struct{}{}[StatNfUnmatched-int(eventNwStatNW_STAT_NF_UNMATCHED)]
	_ = [1]struct{}{}[StatNfEvicted-int(eventNwStatNW_STAT_NF_EVICTED)]
	_ = [1]struct{}{}[StatConnAggFull-int(eventNwStatNW_STAT_CONN_AGG_FULL)]
	_ = [1]struct{}{}[StatRetransUnseen-int(eventNwStatNW_STAT_RETRANS_UNSEEN)]
	_ = [1]struct{}{}[StatMax-int(eventNwStatNW_STAT__MAX)]
)

// OwnerSrc is enum nw_owner_src: how the owner was learned.
type OwnerSrc uint8

const (
	OwnerNone        = OwnerSrc(eventNwOwnerSrcNW_OWNER_NONE)
	OwnerListener    = OwnerSrc(eventNwOwnerSrcNW_OWNER_LISTENER)
	OwnerIO          = OwnerSrc(eventNwOwnerSrcNW_OWNER_IO)
	OwnerPreexisting = OwnerSrc(eventNwOwnerSrcNW_OWNER_PREEXIST)
	OwnerSyscall     = OwnerSrc(eventNwOwnerSrcNW_OWNER_SYSCALL)
)

func (o OwnerSrc) String() string {
	switch o {
	case OwnerListener:
		return "listener"
	case OwnerIO:
		return "io"
	case OwnerPreexisting:
		return "preexisting"
	case OwnerSyscall:
		return "syscall"
	}
	return "none"
}

// Comm is a task command name, NUL padded.
type Comm [16]byte

// Bytes returns the name without padding.
func (c *Comm) Bytes() []byte {
	for i, b := range c {
		if b == 0 {
			return c[:i]
		}
	}
	return c[:]
}

// Conn identifies a connection and its owner.
type Conn struct {
	// ID is the connection's number in this run, given by user space
	// (internal/track) when it first learns of the connection; 0: unknown.
	// A socket's memory is reused at once, so the socket alone does not
	// name a connection: (Sock, EstNs) does, and ID is its short name.
	ID       uint64
	Sock     uint64
	Netns    uint32
	Src      netip.AddrPort // local
	Dst      netip.AddrPort // remote
	IsServer bool
	Pid      uint32
	Comm     Comm
	OwnerSrc OwnerSrc
	EstNs    uint64 // monotonic ns when seen established (0: unknown, pre-existing)

	FastRetrans    uint32
	TimeoutRetrans uint32
	RetransSegs    uint32
}

// SetOwner fills the owner from a record's struct nw_owner (pid, source,
// the C char[16] comm).
func (c *Conn) SetOwner(pid uint32, src uint8, comm *[16]int8) {
	c.Pid, c.OwnerSrc = pid, OwnerSrc(src)
	for i, b := range comm {
		c.Comm[i] = byte(b)
	}
}

// Stats are raw tcp_sock values (-x).
type Stats struct {
	SrttUs8       uint32
	Cwnd          uint32
	Ssthresh      uint32
	RcvWnd        uint32
	SndWnd        uint32
	Sndbuf        uint32
	WmemQueued    uint32
	Backlog       uint32
	MaxBacklog    uint32
	TotalRetrans  uint32
	BytesReceived uint64
	BytesAcked    uint64
	State         uint8
	CaState       uint8
}

// SrttUs is the smoothed RTT in microseconds (tp->srtt_us >> 3, as tcp_info).
func (s *Stats) SrttUs() uint32 { return s.SrttUs8 >> 3 }

// Event is one decoded record.
type Event struct {
	Type     Type
	TS       uint64 // monotonic ns (bpf_ktime_get_ns)
	Conn     Conn
	Stats    Stats
	HasStats bool
	Packet   PacketInfo
	Err      ErrorInfo
	Retrans  RetransInfo
	// Ext: the payload of an optional concern's record (TCP state, reset,
	// drop, RTT histogram), nil for the others. See Ext.
	Ext *Ext
}

// Ext holds the payloads of the optional concerns' records: rare next to
// packet records, and together larger than the rest of an Event. Inline,
// they more than doubled the Event (570 -> 1,256 bytes), and every packet
// record paid for it: measured on loopback request/response, the same
// binary with a 688-byte pad in Event spent ~250 ns more user CPU per
// packet record (slots of the reader's batches that no longer share cache
// lines and pages). The reader gives each event a slot of its batch's Ext
// array; a decoder fills the one it was handed (a decoder that does not
// need it leaves it untouched). Each optional concern has one field here,
// its Info type in internal/event/<concern>.go.
type Ext struct {
	State StateInfo
	Rst   RstInfo
	Drop  DropInfo
	Rtt   RttInfo
	UDP   UDPInfo
	NF    NFInfo
	App   AppInfo // internal/l7cap: DNS, Redis, MySQL packets (event.DNS, Redis, MySQL)
	ICMP  ICMPInfo
	Layer LayerSumInfo // --summary (event.LayerSum)
}

// PacketInfo is one TCP data segment (internal/packet).
type PacketInfo struct {
	Seq, Ack uint32
	Len      uint32
	EstLo    uint32 // low 32 bits of the connection's EstNs (which connection of the socket)
	Rx       bool
	// Layer times in ns; Missing bit i set when boundary i was not seen.
	MacNs, IPNs, TCPNs uint64
	Missing            uint8
	HTTP               [160]byte
	HTTPLen            uint8
	HTTPCut            bool
}

const (
	MissingMac = 1 << iota
	MissingIP
	MissingTCP
)

// ErrorInfo is one rejected segment (internal/drops).
type ErrorInfo struct {
	Seq, Ack uint32
	Reason   uint32 // enum skb_drop_reason code (kernel's numbering)
	Name     string // reason for people: "Invalid SEQ", "Invalid checksum", or the kernel name
	Src, Dst netip.AddrPort
	Rx       bool
}

// RetransInfo is one retransmission / congestion-state event (internal/retrans).
type RetransInfo struct {
	Seq      uint32
	CaState  uint8  // new (Cong) or current (Retrans) icsk_ca_state
	OldState uint8  // Cong: previous icsk_ca_state
	Segs     uint16 // Retrans: segments in the retransmitted skb (tcp_skb_pcount)
	// PreEst: the connection was not established yet (its kernel entry
	// had no establishment time): a retransmitted SYN (or SYN-ACK). The
	// record's Conn then has the tuple and netns read from the socket and
	// the owner of the kernel entry, but no EstNs.
	PreEst bool
}

// TCP congestion-avoidance states (icsk_ca_state: the kernel's enum
// tcp_ca_state), as RetransInfo carries them.
const (
	CaDisorder = uint8(eventTcpCaStateTCP_CA_Disorder)
	CaRecovery = uint8(eventTcpCaStateTCP_CA_Recovery)
	CaLoss     = uint8(eventTcpCaStateTCP_CA_Loss)
)
