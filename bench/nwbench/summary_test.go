package main

import (
	"math"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{-1, 5}, 2},
	} {
		in := append([]float64(nil), tc.in...)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("median sorted its argument: %v", in)
			}
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) is not NaN")
	}
}

func TestMinMax(t *testing.T) {
	lo, hi := minMax([]float64{0.9, 1.2, 0.7})
	if lo != 0.7 || hi != 1.2 {
		t.Fatalf("got %v %v", lo, hi)
	}
	lo, hi = minMax(nil)
	if !math.IsInf(lo, 1) || !math.IsInf(hi, -1) {
		t.Fatalf("empty: %v %v", lo, hi)
	}
}

func TestOffBaseline(t *testing.T) {
	rs := []result{
		{Round: 0, Workload: "rr", Config: "off", Thr: 100},
		{Round: 1, Workload: "rr", Config: "off", Err: "failed"},
		{Round: 2, Workload: "rr", Config: "off", Thr: 120},
		{Round: 0, Workload: "churn", Config: "off", Thr: 5},
		{Round: 0, Workload: "rr", Config: "-q", Thr: 90},
	}
	off, offs := offBaseline(rs, "rr")
	if len(off) != 2 || off[0] != 100 || off[2] != 120 || len(offs) != 2 {
		t.Fatalf("got %v %v", off, offs)
	}
}

func TestDirectShare(t *testing.T) {
	r := result{HasBPFNs: true, CPU: 0.5, BPFNs: 1.5e9, Window: 5}
	if sh, ok := directShare(r, 2); !ok || sh != 0.2 {
		t.Fatalf("got %v %v", sh, ok)
	}
	if _, ok := directShare(result{CPU: 1, Window: 5}, 2); ok {
		t.Error("share without BPF times")
	}
	if _, ok := directShare(result{HasBPFNs: true, BPFNs: 1}, 2); ok {
		t.Error("share without a window")
	}
	// 1e7 runs, 40 ns of each the accounting's: 0.4 s less
	r = result{HasBPFNs: true, CPU: 0.5, BPFNs: 1.9e9, BPFCnt: 1e7, BPFStatsNs: 40, Window: 5}
	if sh, ok := directShare(r, 2); !ok || math.Abs(sh-0.2) > 1e-12 {
		t.Fatalf("net of the accounting: got %v %v", sh, ok)
	}
	if n := (result{BPFNs: 100, BPFCnt: 10, BPFStatsNs: 41}).bpfNsNet(); n != 0 {
		t.Errorf("net time below 0: %v", n)
	}
}

func TestAggregate(t *testing.T) {
	c := config{name: "-q", kind: kindNW}
	off := map[int]float64{0: 100, 1: 200}
	rs := []result{
		{Round: 0, Workload: "rr", Config: "-q", Thr: 90, Busy: 90, Window: 5, Tool: true, CPU: 0.5, RSS: 10 * mib, MapMem: 2 * mib, Progs: 30,
			HasEv: true, Events: 1e6, Lost: 3, HasBPFNs: true, BPFNs: 1.5e9},
		{Round: 1, Workload: "rr", Config: "-q", Thr: 160, Busy: 100, Window: 5, Tool: true, CPU: 1.0, RSS: 20 * mib, MapMem: 4 * mib, Progs: 30,
			HasEv: true, Events: 0, Lost: 1},
		{Round: 2, Workload: "rr", Config: "-q", Err: "netwatcher exited"},
		{Round: 2, Workload: "rr", Config: "-q", Skipped: true},
		{Round: 0, Workload: "churn", Config: "-q", Thr: 1},
		{Round: 0, Workload: "rr", Config: "off", Thr: 100},
	}
	x := aggregate(rs, "rr", c, off, 150, 2)
	if len(x.runs) != 2 || x.failed != 2 {
		t.Fatalf("runs %d failed %d", len(x.runs), x.failed)
	}
	if x.thr != 125 || !x.hasRatio || x.ratio != 125.0/150 || x.rLo != 0.8 || x.rHi != 0.9 {
		t.Fatalf("thr %v ratio %v [%v–%v]", x.thr, x.ratio, x.rLo, x.rHi)
	}
	if x.cpu != 0.75 || x.rss != 15*mib || x.maps != 3*mib || !x.hasMaps || x.progs != 30 || x.busy != 95 {
		t.Fatalf("cpu %v rss %v maps %v progs %v busy %v", x.cpu, x.rss, x.maps, x.progs, x.busy)
	}
	// Events: median over both runs; CPU per 1M events only where events > 0.
	if !x.hasEv || x.events != 5e5 || x.lost != 4 || !x.hasPerM || x.cpuPerM != 0.5 {
		t.Fatalf("events %v lost %v perM %v", x.events, x.lost, x.cpuPerM)
	}
	// BPF: one run with stats: share (0.5+1.5)/(5*2) = 0.2, estimate 1-0.2/0.9.
	if !x.hasBPFNs || x.bpfNs != 1.5e9 || x.share != 0.2 || math.Abs(x.estRatio-(1-0.2/0.9)) > 1e-12 {
		t.Fatalf("bpf %v share %v est %v", x.bpfNs, x.share, x.estRatio)
	}

	// tcpdump has no BPF maps or programs of its own.
	td := aggregate([]result{{Round: 0, Workload: "rr", Config: "tcpdump", Thr: 80, Tool: true, MapMem: 5, Progs: 3}},
		"rr", config{name: "tcpdump", kind: kindTcpdump}, off, 150, 2)
	if td.hasMaps || !math.IsNaN(td.progs) || td.hasEv {
		t.Fatalf("tcpdump: %+v", td)
	}
	// Without an off baseline there is no ratio.
	if n := aggregate(rs, "rr", c, nil, math.NaN(), 2); n.hasRatio {
		t.Fatal("ratio without off")
	}
	if n := aggregate(rs, "http", c, off, 150, 2); len(n.runs) != 0 || n.hasRatio || !math.IsNaN(n.thr) {
		t.Fatalf("no runs: %+v", n)
	}
}
