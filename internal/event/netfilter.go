package event

import "net/netip"

// Netfilter hooks (enum nf_inet_hooks), the indices of NFInfo.DurNs.
const (
	NFPreRouting = iota
	NFLocalIn
	NFForward
	NFLocalOut
	NFPostRouting
	NFHooks
)

// NFHookNames are the hooks' names, by index.
var NFHookNames = [NFHooks]string{"PRE_ROUTING", "LOCAL_IN", "FORWARD", "LOCAL_OUT", "POST_ROUTING"}

// NFBetween is NFInfo.DropHook for a packet dropped between two hooks.
const NFBetween = 0xff

// NFSlots is the number of buckets of a hook's histogram: bucket i counts
// traversals that took [2^i, 2^(i+1)) ns (bucket 0 also holds 0 ns).
const NFSlots = 32

// NFInfo is one packet's netfilter hook times (internal/netfilter, -n),
// or, with Summary set, one hook's histogram (made in user space every
// --interval and at exit).
type NFInfo struct {
	Family   uint16 // AF_INET, AF_INET6
	Proto    uint8  // IPPROTO_*
	ICMPType uint8  // ICMP/ICMPv6 only
	ICMPCode uint8
	Hooks    uint8 // bit i: hook i crossed (NFPreRouting...)
	// DurNs[i]: ns spent in hook i by the hook's other functions (bit i of
	// Hooks); for the hook a packet was dropped in, until the drop.
	DurNs    [NFHooks]uint32
	StartNs  uint64         // entry into its first hook (monotonic ns)
	Src, Dst netip.AddrPort // as the packet had them at its first hook; port 0: not TCP/UDP
	EstLo    uint32         // low 32 bits of the tracked TCP connection's EstNs (0: none)
	Dropped  bool
	DropHook uint8  // Dropped: the hook it was dropped in, NFBetween
	Reason   uint32 // Dropped: enum skb_drop_reason code
	Name     string // Dropped: the reason's kernel name ("" if unknown); the concern's table

	Summary bool // a hook's histogram, not a packet
	Sum     NFSummary
}

// NFSummary is the histogram of one (family, hook): the traversals of an
// interval, or of the whole run (Final).
type NFSummary struct {
	Final   bool
	Family  uint16 // AF_INET, AF_INET6
	Hook    uint8
	Buckets [NFSlots]uint64
	SumNs   uint64
	MaxNs   uint64 // the largest traversal of the whole run so far (bounds the buckets)
	Drops   uint64 // packets dropped inside the hook
}

// HasPorts: the packet is TCP or UDP.
func (n *NFInfo) HasPorts() bool { return n.Proto == ProtoTCP || n.Proto == ProtoUDP }

// Count is the number of traversals.
func (s *NFSummary) Count() uint64 {
	var n uint64
	for _, c := range s.Buckets {
		n += c
	}
	return n
}

// MeanNs is the exact mean (0 without traversals).
func (s *NFSummary) MeanNs() float64 {
	n := s.Count()
	if n == 0 {
		return 0
	}
	return float64(s.SumNs) / float64(n)
}

// QuantileNs estimates the q-quantile (0 < q <= 1) in ns from the buckets,
// as RttInfo.QuantileUs does: inside the bucket of the sample of rank
// ceil(q*n), linear interpolation, clamped to MaxNs. 0 without traversals.
func (s *NFSummary) QuantileNs(q float64) float64 {
	return log2Quantile(s.Buckets[:], q, 0, s.MaxNs)
}
