package event

import (
	"math"
	"testing"
)

// hist: 100 layer times, 90 in [256, 512) ns and 10 in [4096, 8192) ns.
func layerHist() *LayerHist {
	h := &LayerHist{MaxNs: 6000}
	h.Buckets[8], h.Buckets[12] = 90, 10
	h.SumNs = 90*300 + 10*5000
	return h
}

func TestLayerQuantiles(t *testing.T) {
	h := layerHist()
	if n := h.Count(); n != 100 {
		t.Fatalf("count %d", n)
	}
	// p50: rank 50 of bucket 8's 90: 256 + 256*(49.5/90)
	if got, want := h.QuantileNs(0.5), 256+256*49.5/90; math.Abs(got-want) > 1e-9 {
		t.Errorf("p50 %v, want %v", got, want)
	}
	// p99: rank 99, 9th of bucket 12's 10: 4096 + 4096*8.5/10 = 7577.6, clamped to MaxNs
	if got := h.QuantileNs(0.99); got != 6000 {
		t.Errorf("p99 %v, want 6000 (clamped to the max)", got)
	}
	// p90: rank 90 is the last of bucket 8
	if got, want := h.QuantileNs(0.9), 256+256*89.5/90; math.Abs(got-want) > 1e-9 {
		t.Errorf("p90 %v, want %v", got, want)
	}
	if got := h.MeanNs(); got != (90*300+10*5000)/100.0 {
		t.Errorf("mean %v", got)
	}
	var empty LayerHist
	if empty.QuantileNs(0.5) != 0 || empty.MeanNs() != 0 || empty.MaxInNs() != 0 {
		t.Error("empty histogram: want zeros")
	}
	// bucket 0 holds 0 and 1 ns: its lower bound is 0
	z := &LayerHist{}
	z.Buckets[0] = 2
	if got := z.QuantileNs(0.5); got != 0.5 { // [0, 2): rank 1 of 2 at 2*(0.5/2)
		t.Errorf("bucket 0 p50 %v, want 0.5", got)
	}
}

func TestLayerMaxIn(t *testing.T) {
	h := layerHist()
	if got := h.MaxInNs(); got != 6000 {
		t.Errorf("max %d, want the run's 6000", got)
	}
	// an interval whose highest bucket lies below the run's maximum
	var iv LayerHist
	iv.Sub(h, &LayerHist{})
	iv.Buckets[12] = 0
	if got := iv.MaxInNs(); got != 511 {
		t.Errorf("interval max %d, want 511 (top of bucket 8)", got)
	}
}

func TestLayerSub(t *testing.T) {
	a, prev := layerHist(), &LayerHist{}
	prev.Buckets[8], prev.SumNs, prev.Missing = 40, 40*300, 1
	a.Missing = 3
	var d LayerHist
	d.Sub(a, prev)
	if d.Buckets[8] != 50 || d.Buckets[12] != 10 || d.SumNs != 50*300+10*5000 || d.Missing != 2 || d.MaxNs != 6000 {
		t.Errorf("sub: %+v", d)
	}
}
