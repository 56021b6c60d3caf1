package packet

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/metrics"
)

// Collectors implements engine.MetricsSource: with --summary, the tracked
// connections' segment and byte counts (the sockets' own counters, one
// walk of the connection table per scrape) and, with -t, the layer-time
// histograms (nw_pkt_summary), cumulative since the start. Without
// --summary there is none (packet records are not aggregated into
// metrics).
func (c *Concern) Collectors() []prometheus.Collector {
	if c.cfg == nil || !c.cfg.Summary {
		return nil
	}
	n := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(metrics.Namespace+"_"+name, help, labels, nil)
	}
	return []prometheus.Collector{&sumCollector{c: c,
		segs:  n("tcp_data_segments_total", "TCP data segments of tracked connections since the start (--summary), by direction: the sockets' data_segs_in/data_segs_out (as ss -ti), wire segments (a TSO/GSO or GRO packet counts its segments), retransmitted and duplicate segments included.", "direction"),
		bytes: n("tcp_data_bytes_total", "TCP payload bytes of tracked connections since the start (--summary), by direction: the sockets' bytes_received (each byte once, plus one per FIN) and bytes_sent (retransmitted bytes included).", "direction"),
		hist: n("layer_time_seconds", "Time a TCP data segment spent in each layer (--summary -t; SPEC §2 boundaries), by layer and direction: log2 buckets kept in the kernel (bucket bounds 2^(i+1) ns); one sample per skb (a TSO/GRO packet once).",
			"layer", "direction"),
		missing: n("layer_time_missing_total", "Data segments whose layer time is not known (a boundary not seen), by layer and direction (--summary -t).", "layer", "direction"),
	}}
}

// sumCollector reads the counts and histograms on every scrape (Totals:
// its own buffer, and walks one at a time: safe beside the pipeline's
// ticks).
type sumCollector struct {
	c                          *Concern
	segs, bytes, hist, missing *prometheus.Desc
}

func (s *sumCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.segs
	ch <- s.bytes
	ch <- s.hist
	ch <- s.missing
}

func (s *sumCollector) Collect(ch chan<- prometheus.Metric) {
	tot, err := s.c.Totals()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(s.segs, err)
		return
	}
	for i := range tot {
		d := &tot[i]
		dir := "tx"
		if d.Rx {
			dir = "rx"
		}
		ch <- prometheus.MustNewConstMetric(s.segs, prometheus.CounterValue, float64(d.Segs), dir)
		ch <- prometheus.MustNewConstMetric(s.bytes, prometheus.CounterValue, float64(d.Bytes), dir)
		if !d.Timed {
			continue
		}
		for l := range d.L {
			h := &d.L[l]
			m, err := metrics.ConstLog2Histogram(s.hist, h.Buckets[:], float64(h.SumNs), 1e-9, event.LayerNames[l], dir)
			if err != nil {
				ch <- prometheus.NewInvalidMetric(s.hist, err)
				continue
			}
			ch <- m
			ch <- prometheus.MustNewConstMetric(s.missing, prometheus.CounterValue, float64(h.Missing), event.LayerNames[l], dir)
		}
	}
}
