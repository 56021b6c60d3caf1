package main

import (
	"math"
	"sort"
)

// Summary statistics over the runs: medians, ranges, ratios to the
// baseline, and the per-cell aggregate of the main table.

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// minMax returns the smallest and largest value (+Inf, -Inf for none).
func minMax(v []float64) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

// offBaseline returns the throughput of the workload's successful `off`
// runs, by round and as a list.
func offBaseline(results []result, wl string) (map[int]float64, []float64) {
	off := map[int]float64{}
	var offs []float64
	for _, r := range results {
		if r.Workload == wl && r.Config == "off" && r.Err == "" {
			off[r.Round] = r.Thr
			offs = append(offs, r.Thr)
		}
	}
	return off, offs
}

// cell aggregates the runs of one workload under one configuration.
type cell struct {
	runs     []result
	thr      float64
	ratio    float64
	rLo, rHi float64 // range of the per-round ratios (run / same round's off run)
	hasRatio bool
	cpu      float64
	cpuPerM  float64
	hasPerM  bool
	rss      float64
	maps     float64
	hasMaps  bool
	events   float64
	hasEv    bool
	lost     float64
	busy     float64
	bpfNs    float64 // median kernel time in the tool's BPF programs, ns
	hasBPFNs bool
	share    float64 // median direct CPU share (see directShare)
	estRatio float64 // median of 1 - share/busy: the ratio the direct CPU alone predicts
	progs    float64
	failed   int
}

// aggregate computes the cell of workload wl under configuration c: medians
// over its successful runs, the ratio of its median throughput to offMed
// and the range of its per-round ratios (each run over the same round's off
// run, off[round]). nproc is the machine's CPU count (for directShare).
func aggregate(results []result, wl string, c config, off map[int]float64, offMed float64, nproc int) cell {
	var x cell
	var thr, cpu, perM, rss, maps, ev, busy, ratios, bpfNs, progs, shares, ests []float64
	for _, r := range results {
		if r.Workload != wl || r.Config != c.name {
			continue
		}
		if r.Err != "" || r.Skipped {
			x.failed++
			continue
		}
		x.runs = append(x.runs, r)
		thr = append(thr, r.Thr)
		busy = append(busy, r.Busy)
		if o, ok := off[r.Round]; ok && o > 0 {
			ratios = append(ratios, r.Thr/o)
		}
		if r.Tool {
			cpu = append(cpu, r.CPU)
			rss = append(rss, r.RSS)
			if c.kind != kindTcpdump {
				maps = append(maps, r.MapMem)
				progs = append(progs, float64(r.Progs))
			}
			if r.HasEv {
				ev = append(ev, r.Events)
				x.lost += r.Lost
				if r.Events > 0 {
					perM = append(perM, r.CPU/(r.Events/1e6))
				}
			}
			if r.HasBPFNs {
				bpfNs = append(bpfNs, r.bpfNsNet())
				if sh, ok := directShare(r, nproc); ok {
					shares = append(shares, sh)
					if r.Busy > 0 {
						ests = append(ests, 1-sh/(r.Busy/100))
					}
				}
			}
		}
	}
	x.thr = median(thr)
	if offMed > 0 && len(thr) > 0 {
		x.ratio, x.hasRatio = x.thr/offMed, true
		x.rLo, x.rHi = minMax(ratios)
	}
	x.cpu, x.rss, x.maps, x.events, x.busy = median(cpu), median(rss), median(maps), median(ev), median(busy)
	x.hasMaps, x.hasEv = len(maps) > 0, len(ev) > 0
	x.cpuPerM, x.hasPerM = median(perM), len(perM) > 0
	x.bpfNs, x.hasBPFNs = median(bpfNs), len(bpfNs) > 0
	x.share, x.estRatio = median(shares), median(ests)
	x.progs = median(progs)
	return x
}

// directShare is the share of the machine's CPU time during the workload
// that the tool used itself: its process (user+system) plus its BPF programs
// (run_time_ns, which they spend in the traced tasks and softirqs, less what
// the accounting itself adds: bpfNsNet). Unlike
// the throughput ratio it is not swayed by run-to-run noise; it leaves out
// what the tool costs without running (tracepoint dispatch, cache misses),
// so it is a lower bound of the cost.
func directShare(r result, nproc int) (float64, bool) {
	if !r.HasBPFNs || r.Window <= 0 {
		return 0, false
	}
	return (r.CPU + r.bpfNsNet()/1e9) / (r.Window * float64(nproc)), true
}
