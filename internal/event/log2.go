package event

// log2Quantile estimates the q-quantile (0 < q <= 1) of the samples in
// log2 buckets (bucket i holds [2^i, 2^(i+1)), bucket 0 [0, 2)): inside
// the bucket of the sample of rank ceil(q*n), linear interpolation, then
// clamped to [lo, hi] (no clamp where hi is 0). 0 without samples. Its
// error is bounded by the bucket: within a factor of 2. The one estimate
// of every in-kernel log2 histogram (RTT, netfilter hooks, layer times).
func log2Quantile[T uint32 | uint64](buckets []T, q float64, lo, hi uint64) float64 {
	var n uint64
	for _, c := range buckets {
		n += uint64(c)
	}
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999999)
	rank = min(max(rank, 1), n)
	var seen uint64
	for i, c := range buckets {
		if c == 0 || seen+uint64(c) < rank {
			seen += uint64(c)
			continue
		}
		bl, bh := float64(uint64(1)<<i), float64(uint64(1)<<(i+1))
		if i == 0 {
			bl = 0
		}
		v := bl + (bh-bl)*(float64(rank-seen)-0.5)/float64(c)
		if hi > 0 {
			v = min(max(v, float64(lo)), float64(hi))
		}
		return v
	}
	return float64(hi)
}
