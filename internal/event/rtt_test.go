package event

import (
	"math"
	"testing"
)

func hist(samples ...uint32) RttInfo {
	var r RttInfo
	r.MinUs = math.MaxUint32
	for _, s := range samples {
		r.Buckets[RttBucket(s)]++
		r.SumUs += uint64(s)
		r.MinUs, r.MaxUs = min(r.MinUs, s), max(r.MaxUs, s)
	}
	return r
}

func TestRttBucket(t *testing.T) {
	for us, want := range map[uint32]int{0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 1023: 9, 1024: 10, math.MaxUint32: 31} {
		if got := RttBucket(us); got != want {
			t.Errorf("bucket of %d µs = %d, want %d", us, got, want)
		}
	}
}

// TestQuantileInBucket: the estimate lies in the bucket of the true
// quantile (so within a factor of 2 of it) and within [min, max].
func TestQuantileInBucket(t *testing.T) {
	for _, tc := range []struct {
		samples []uint32
		q       float64
		want    uint32 // the true quantile (sample of rank ceil(q*n))
	}{
		{[]uint32{1000}, 0.5, 1000},
		{[]uint32{700, 900, 5000}, 0.5, 900},
		{[]uint32{700, 900, 5000}, 0.99, 5000},
		{[]uint32{3, 3, 3, 3, 3, 3, 3, 3, 3, 100}, 0.5, 3},
		{[]uint32{3, 3, 3, 3, 3, 3, 3, 3, 3, 100}, 0.99, 100},
		{[]uint32{0, 0, 1}, 0.5, 0},
	} {
		r := hist(tc.samples...)
		got := r.QuantileUs(tc.q)
		b := RttBucket(tc.want)
		lo, hi := float64(uint64(1)<<b), float64(uint64(1)<<(b+1))
		if b == 0 {
			lo = 0
		}
		if got < lo || got >= hi || got < float64(r.MinUs) || got > float64(r.MaxUs) {
			t.Errorf("%v q%.2f = %.1f, want in [%v, %v) ∩ [min, max] (true %d)", tc.samples, tc.q, got, lo, hi, tc.want)
		}
	}
	// one value only: exact (clamped to min = max)
	r := hist(1234, 1234, 1234)
	if r.QuantileUs(0.5) != 1234 || r.QuantileUs(0.99) != 1234 || r.MeanUs() != 1234 {
		t.Errorf("constant samples: p50 %v p99 %v mean %v", r.QuantileUs(0.5), r.QuantileUs(0.99), r.MeanUs())
	}
	var empty RttInfo
	if empty.QuantileUs(0.5) != 0 || empty.MeanUs() != 0 || empty.Count() != 0 {
		t.Error("empty histogram")
	}
}
