package event

import "math"

// Layers of --summary's histograms (internal/packet), the indices of
// LayerSumInfo.L: the same layers as a packet record's (SPEC §2).
const (
	LayerMac = iota
	LayerIP
	LayerTCP
	Layers
)

// LayerNames are the layers' names, by index.
var LayerNames = [Layers]string{"mac", "ip", "tcp"}

// LayerSlots is the number of buckets of a layer histogram: bucket i counts
// layer times in [2^i, 2^(i+1)) ns (bucket 0 also holds 0 ns), as the
// kernel's nw_pkt_sum (packet.bpf.c) has them.
const LayerSlots = 32

// LayerHist is one layer's times of one direction.
type LayerHist struct {
	Buckets [LayerSlots]uint64
	SumNs   uint64
	// MaxNs: the largest layer time of the run so far (the kernel keeps no
	// per-interval maximum); MaxInNs gives an interval's bound.
	MaxNs   uint64
	Missing uint64 // records whose boundaries of this layer were not both seen
}

// LayerSumInfo is --summary's aggregate of one direction: the data
// segments the packet hooks saw (records they would have made) and, with
// -t (Timed), each layer's histogram; of one --interval, or of the whole
// run (Final).
type LayerSumInfo struct {
	Final bool
	Rx    bool
	Timed bool
	Segs  uint64 // data segments as the sockets count them (tcp_sock data_segs_in/out: wire segments, a TSO/GRO skb counts its segments)
	Bytes uint64 // rx: bytes_received (each byte once, + 1 per FIN); tx: bytes_sent (retransmissions included)
	L     [Layers]LayerHist
}

// Count is the number of layer times in the histogram.
func (h *LayerHist) Count() uint64 {
	var n uint64
	for _, c := range h.Buckets {
		n += c
	}
	return n
}

// MeanNs is the exact mean (0 without layer times).
func (h *LayerHist) MeanNs() float64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	return float64(h.SumNs) / float64(n)
}

// MaxInNs bounds the largest layer time of these buckets: the run's
// maximum, or the top of the highest non-empty bucket if that is lower
// (an interval's histogram). 0 without layer times.
func (h *LayerHist) MaxInNs() uint64 {
	for i := LayerSlots - 1; i >= 0; i-- {
		if h.Buckets[i] == 0 {
			continue
		}
		top := uint64(math.MaxUint64)
		if i < 63 {
			top = uint64(1)<<(i+1) - 1
		}
		if h.MaxNs > 0 && h.MaxNs < top {
			return h.MaxNs
		}
		return top
	}
	return 0
}

// QuantileNs estimates the q-quantile (0 < q <= 1) in ns from the log2
// buckets, as NFSummary.QuantileNs does: inside the bucket of the sample of
// rank ceil(q*n), linear interpolation, clamped to MaxNs. 0 without layer
// times. Its error is bounded by the bucket: within a factor of 2.
func (h *LayerHist) QuantileNs(q float64) float64 {
	return log2Quantile(h.Buckets[:], q, 0, h.MaxNs)
}

// Sub sets h to a minus prev (counters since prev); MaxNs stays a's.
func (h *LayerHist) Sub(a, prev *LayerHist) {
	for i := range h.Buckets {
		h.Buckets[i] = a.Buckets[i] - prev.Buckets[i]
	}
	h.SumNs = a.SumNs - prev.SumNs
	h.Missing = a.Missing - prev.Missing
	h.MaxNs = a.MaxNs
}
