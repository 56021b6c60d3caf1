package metrics

import "github.com/prometheus/client_golang/prometheus"

// ConstLog2Histogram turns a kernel log2 histogram into a Prometheus
// histogram: counts[i] counts values in [2^i, 2^(i+1)) units (bucket 0
// also holds 0; the last bucket everything above), unit is one unit in the
// metric's base unit (1e-6 for µs -> seconds, 1e-9 for ns), sum is the
// sum of the values in units. Bucket i gets the upper bound 2^(i+1)*unit
// ("le"); the last bucket has no bound of its own (+Inf). For a Collect.
func ConstLog2Histogram(desc *prometheus.Desc, counts []uint64, sum float64, unit float64, labelValues ...string) (prometheus.Metric, error) {
	buckets := make(map[float64]uint64, len(counts))
	var cum uint64
	for i, c := range counts {
		cum += c
		if i < len(counts)-1 {
			buckets[Log2Bound(i, unit)] = cum
		}
	}
	return prometheus.NewConstHistogram(desc, cum, sum*unit, buckets, labelValues...)
}

// Log2Bound is the upper bound of log2 bucket i: 2^(i+1) units.
func Log2Bound(i int, unit float64) float64 { return float64(uint64(1)<<(i+1)) * unit }
