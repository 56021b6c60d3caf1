package main

import (
	"fmt"
	"math"
	"strings"
)

// Targets from the issues (16: leave it running; 17: the per-event path on
// a diet). Ratios are medians of throughput vs off in the same run; each
// row also shows the direct-CPU estimate when --bpf-stats measured it.
const (
	targetDefault   = 0.95 // default mode (packets on, -ax)
	targetNoPackets = 0.97 // --no-packets
	targetSummary   = 0.97 // --summary with every aggregate on
	targetSample    = 0.93 // -tixre --sample 100 on rr
	targetUserNs    = 300  // user-space ns of CPU per event
	targetRSS       = 100  // MiB
	targetMaps      = 64   // MiB
)

// nwTotals sums the successful netwatcher runs for the targets.
type nwTotals struct {
	runs      int
	lost      float64
	rssMax    float64 // bytes
	mapMax    float64 // bytes
	lostWhere []string
}

func netwatcherTotals(results []result) nwTotals {
	var t nwTotals
	for _, r := range results {
		if r.Err != "" || !r.HasEv || !r.isNW() {
			continue
		}
		t.runs++
		t.lost += r.Lost
		t.rssMax = math.Max(t.rssMax, r.RSS)
		t.mapMax = math.Max(t.mapMax, r.MapMem)
		if r.Lost > 0 {
			t.lostWhere = append(t.lostWhere, r.where()+": "+r.LostWhat)
		}
	}
	return t
}

// targetCell is the cell of a workload and configuration, if it has a
// ratio to off.
func targetCell(cells map[string]map[string]cell, wl, cfg string) (cell, bool) {
	x, ok := cells[wl][cfg]
	return x, ok && x.hasRatio
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**NO**"
}

// ratioTarget is one row: cfg (the first of cfgs measured on a workload)
// reaches min on every workload of wls that measured it.
type ratioTarget struct {
	what string
	cfgs []string
	wls  []string
	min  float64
}

var ratioTargets = []ratioTarget{
	{"default mode (packets on)", []string{"-q -ax", "-q"}, []string{"churn", "rr", "http", "bulk"}, targetDefault},
	{"connection tracking", []string{"-q --no-packets"}, []string{"churn", "rr", "http", "bulk"}, targetNoPackets},
	{"every aggregate on", []string{"-q --summary --metrics-addr", "-q --summary"}, []string{"churn", "rr", "http"}, targetSummary},
	{"sampled layer times", []string{"-q -tixre --sample 100"}, []string{"rr"}, targetSample},
}

// writeTargets writes the targets table: each target, the measured value,
// and whether it is met ("by CPU" when only the direct-CPU estimate
// reaches it: the throughput ratio is within the run's noise).
func writeTargets(b *strings.Builder, cells map[string]map[string]cell, t nwTotals) {
	b.WriteString("\n### Targets\n\n| target | measured | met |\n|---|---|---|\n")
	for _, rt := range ratioTargets {
		for _, wl := range rt.wls {
			var x cell
			cfg, ok := "", false
			for _, c := range rt.cfgs {
				if x, ok = targetCell(cells, wl, c); ok {
					cfg = c
					break
				}
			}
			if !ok {
				fmt.Fprintf(b, "| %s (`%s`) ≥ %.2f on %s | not measured | n/a |\n", rt.what, rt.cfgs[0], rt.min, wl)
				continue
			}
			fmt.Fprintf(b, "| %s (`%s`) ≥ %.2f on %s | %.3f%s | %s |\n", rt.what, cfg, rt.min, wl, x.ratio, estNote(x), met(x, rt.min))
		}
	}
	for _, wl := range []string{"rr", "http"} {
		xt, okT := targetCell(cells, wl, "-q -tixre")
		xd, okD := targetCell(cells, wl, "tcpdump")
		if !okT || !okD {
			fmt.Fprintf(b, "| `-q -tixre` at or above tcpdump on %s | not measured | n/a |\n", wl)
			continue
		}
		fmt.Fprintf(b, "| `-q -tixre` at or above tcpdump on %s | %.3f%s vs tcpdump %.3f | %s |\n", wl, xt.ratio, estNote(xt), xd.ratio, yes(xt.ratio >= xd.ratio))
	}
	if cfg, wl, x, ok := userNsMax(cells); ok {
		ns := x.cpuPerM * 1e3 // CPU s per 1M events -> ns per event
		fmt.Fprintf(b, "| user space ≤ %d ns of CPU per event | max %.0f ns (%s `%s`) | %s |\n", targetUserNs, ns, wl, cfg, yes(ns <= targetUserNs))
	} else {
		fmt.Fprintf(b, "| user space ≤ %d ns of CPU per event | not measured | n/a |\n", targetUserNs)
	}
	if t.runs > 0 {
		fmt.Fprintf(b, "| no event lost | %s lost in %d netwatcher runs | %s |\n", thousands(t.lost), t.runs, yes(t.lost == 0))
		fmt.Fprintf(b, "| peak RSS < %d MiB | max %.1f MiB | %s |\n", targetRSS, t.rssMax/mib, yes(t.rssMax/mib < targetRSS))
		fmt.Fprintf(b, "| BPF map memory < %d MiB | max %.2f MiB | %s |\n", targetMaps, t.mapMax/mib, yes(t.mapMax/mib < targetMaps))
	} else {
		b.WriteString("| no event lost / RSS / BPF maps | no successful netwatcher run | n/a |\n")
	}
}

// met: "yes" when the measured ratio reaches min, "by CPU" when only the
// direct-CPU estimate does.
func met(x cell, min float64) string {
	switch {
	case x.ratio >= min:
		return "yes"
	case x.hasBPFNs && x.share > 0 && x.estRatio >= min:
		return "by CPU"
	}
	return "**NO**"
}

// userNsMax is the cell with the most user-space CPU per event among
// netwatcher's configurations that send events at a rate worth judging (≥ 100k events
// per run).
func userNsMax(cells map[string]map[string]cell) (cfg, wl string, x cell, ok bool) {
	for w, m := range cells {
		for c, y := range m {
			if !y.hasPerM || y.events < 100_000 || !strings.HasPrefix(c, "-") { // netwatcher's configurations only
				continue
			}
			if !ok || y.cpuPerM > x.cpuPerM || (y.cpuPerM == x.cpuPerM && w+c < wl+cfg) {
				cfg, wl, x, ok = c, w, y, true
			}
		}
	}
	return cfg, wl, x, ok
}

// estNote is the direct-CPU estimate next to a measured ratio (--bpf-stats).
func estNote(x cell) string {
	if !x.hasBPFNs || x.share <= 0 {
		return ""
	}
	return fmt.Sprintf(" (direct CPU %.1f%% of the machine → ≈%.3f)", 100*x.share, x.estRatio)
}
