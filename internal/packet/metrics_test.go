package packet

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// TestSummaryCollector: the collector reads a per-CPU nw_pkt_summary map
// like the kernel's (values summed over CPUs) and exposes the layer
// histograms with log2 bounds in seconds, cumulative, and the connection
// walk's counts; promlint is clean.
func TestSummaryCollector(t *testing.T) {
	nstest.RequireRoot(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4,
		ValueSize: uint32(unsafe.Sizeof(packetNwPktSum{})), MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	// received: 3 segments on every CPU, tcp layer 2 in [1024, 2048) ns + 1 missing
	per := make([]packetNwPktSum, ncpu)
	for i := range per {
		per[i].Segs, per[i].Bytes = 3, 300
		tcp := &per[i].L[event.LayerTCP]
		tcp.Buckets[10], tcp.SumNs, tcp.MaxNs, tcp.Missing = 2, 3000, 1600, 1
	}
	if err := m.Put(uint32(0), per); err != nil {
		t.Fatal(err)
	}
	c := &Concern{cfg: &config.Config{Summary: true, Time: true}}
	c.Coll = &ebpf.Collection{Maps: map[string]*ebpf.Map{sumMap: m}}
	// counts: the connection walk's (conn.SumWalk; its arithmetic is
	// tested in internal/conn)
	c.walk.counts = func() (conn.SumCounts, error) { return conn.SumCounts{SegsIn: 7}, nil }
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c.Collectors()...)
	n := float64(ncpu)
	want := strings.NewReader(`
# HELP netwatcher_tcp_data_segments_total TCP data segments of tracked connections since the start (--summary), by direction: the sockets' data_segs_in/data_segs_out (as ss -ti), wire segments (a TSO/GSO or GRO packet counts its segments), retransmitted and duplicate segments included.
# TYPE netwatcher_tcp_data_segments_total counter
netwatcher_tcp_data_segments_total{direction="rx"} 7
netwatcher_tcp_data_segments_total{direction="tx"} 0
`)
	if err := testutil.GatherAndCompare(reg, want, "netwatcher_tcp_data_segments_total"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "netwatcher_layer_time_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			lv := map[string]string{}
			for _, l := range mt.GetLabel() {
				lv[l.GetName()] = l.GetValue()
			}
			if lv["direction"] != "rx" || lv["layer"] != "tcp" {
				continue
			}
			found = true
			h := mt.GetHistogram()
			if h.GetSampleCount() != uint64(2*ncpu) || h.GetSampleSum() != 3000e-9*n {
				t.Errorf("count %d sum %g, want %d, %g", h.GetSampleCount(), h.GetSampleSum(), 2*ncpu, 3000e-9*n)
			}
			for _, b := range h.GetBucket() {
				// bucket 10 is [1024, 2048) ns: le 2.048e-06 holds them, le 1.024e-06 not
				switch b.GetUpperBound() {
				case 1.024e-06:
					if b.GetCumulativeCount() != 0 {
						t.Errorf("le 1.024e-06: %d", b.GetCumulativeCount())
					}
				case 2.048e-06:
					if b.GetCumulativeCount() != uint64(2*ncpu) {
						t.Errorf("le 2.048e-06: %d, want %d", b.GetCumulativeCount(), 2*ncpu)
					}
				}
			}
		}
	}
	if !found {
		t.Error("no netwatcher_layer_time_seconds{direction=rx,layer=tcp}")
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Errorf("lint: %v %v", err, probs)
	}
	// without --summary: no collector
	if cs := (&Concern{cfg: &config.Config{}}).Collectors(); len(cs) != 0 {
		t.Errorf("collectors without --summary: %d", len(cs))
	}
}
