package redis

import "math/bits"

// hist is a latency histogram (ns) with 8 buckets per power of two: a
// value's bucket is its top 4 significant bits, so a percentile read back
// as the bucket's middle is within ±6.25% (values under 8 ns exact).
type hist struct {
	n   uint64
	max uint64
	b   [histBuckets]uint64
}

const histBuckets = 8 + 61*8

func histIndex(v uint64) int {
	if v < 8 {
		return int(v)
	}
	e := bits.Len64(v) - 1 // >= 3
	return 8 + (e-3)*8 + int(v>>(e-3)&7)
}

// histMid is the middle of bucket i.
func histMid(i int) uint64 {
	if i < 8 {
		return uint64(i)
	}
	e := (i-8)/8 + 3
	lo := uint64(8|(i-8)%8) << (e - 3)
	return lo + (uint64(1)<<(e-3))/2
}

func (h *hist) add(v uint64) {
	h.n++
	h.max = max(h.max, v)
	h.b[histIndex(v)]++
}

// quantile q (0..1): the middle of the bucket holding the value of rank
// ceil(q*n), at most the largest value seen; 0 when empty.
func (h *hist) quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	rank = min(max(rank, 1), h.n)
	var c uint64
	for i, x := range h.b {
		c += x
		if c >= rank {
			return min(histMid(i), h.max)
		}
	}
	return h.max
}

func (h *hist) reset() { *h = hist{} }
