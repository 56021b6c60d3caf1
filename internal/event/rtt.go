package event

import "net/netip"

// RttSlots is the number of buckets of an RTT histogram: bucket i counts
// samples in [2^i, 2^(i+1)) µs (bucket 0 also holds 0 µs, the last one
// everything above 2^31 µs).
const RttSlots = 32

// RttInfo is a connection's histogram of the kernel's RTT samples
// (internal/rtt, --rtt): for one --interval (Close false: made in user
// space from the kernel map) or for the whole connection (Close true: the
// ring record at close).
type RttInfo struct {
	Buckets [RttSlots]uint32
	SumUs   uint64 // sum of the samples in Buckets, µs
	// MinUs, MaxUs: the smallest and largest sample of the connection's
	// whole life so far (the kernel keeps no per-interval extremes); they
	// bound this record's samples too.
	MinUs, MaxUs uint32
	EstLo        uint32         // low 32 bits of the connection's EstNs (0: not known)
	Src, Dst     netip.AddrPort // the socket's own tuple
	Close        bool
	// Srtt: the samples are the socket's smoothed RTT, not measurements
	// (kernels that pass no sample to the callback; see internal/rtt).
	Srtt bool
}

// Count is the number of samples.
func (r *RttInfo) Count() uint64 {
	var n uint64
	for _, c := range r.Buckets {
		n += uint64(c)
	}
	return n
}

// MeanUs is the exact mean of the samples (0 without samples).
func (r *RttInfo) MeanUs() float64 {
	n := r.Count()
	if n == 0 {
		return 0
	}
	return float64(r.SumUs) / float64(n)
}

// QuantileUs estimates the q-quantile (0 < q <= 1) of the samples, in µs,
// from the buckets: the sample of rank ceil(q*n) lies in some bucket
// [lo, hi); the estimate interpolates linearly inside that bucket, as if
// its samples were spread evenly (the k-th of m samples at
// lo + (hi-lo)*(k-0.5)/m), then clamps to [MinUs, MaxUs], which bound every
// sample. So the estimate is always inside the right bucket: off by less
// than a factor of 2, and exact when the bucket holds a single value at
// the connection's minimum or maximum. 0 without samples.
func (r *RttInfo) QuantileUs(q float64) float64 {
	lo, hi := uint64(r.MinUs), uint64(r.MaxUs)
	if r.MaxUs < r.MinUs {
		hi = 0 // no clamp
	}
	return log2Quantile(r.Buckets[:], q, lo, hi)
}

// RttBucket is the bucket of a sample of us µs.
func RttBucket(us uint32) int {
	i := 0
	for us > 1 {
		us >>= 1
		i++
	}
	return i
}
