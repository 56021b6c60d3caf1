package main

import (
	"fmt"
	"math"
	"strings"
)

// Targets from the issue.
const (
	targetChurnRatio = 0.97 // connection tracking costs <= 3% on churn
	targetRRRatio    = 0.90 // -tixre costs <= 10% on rr
	targetRSS        = 100  // MiB
	targetMaps       = 64   // MiB
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

// writeTargets writes the targets table: each target, the measured value,
// and whether it is met.
func writeTargets(b *strings.Builder, cells map[string]map[string]cell, t nwTotals) {
	b.WriteString("\n### Targets\n\n| target | measured | met |\n|---|---|---|\n")
	if x, ok := targetCell(cells, "churn", "-q --no-packets"); ok {
		fmt.Fprintf(b, "| connection tracking (`-q --no-packets`) costs ≤ 3%% on churn (ratio ≥ %.2f) | %.3f%s | %s |\n", targetChurnRatio, x.ratio, estNote(x), yes(x.ratio >= targetChurnRatio))
	} else {
		b.WriteString("| connection tracking (`-q --no-packets`) costs ≤ 3% on churn | not measured | n/a |\n")
	}
	xt, okT := targetCell(cells, "rr", "-q -tixre")
	if okT {
		fmt.Fprintf(b, "| `-q -tixre` costs ≤ 10%% on rr (ratio ≥ %.2f) | %.3f%s | %s |\n", targetRRRatio, xt.ratio, estNote(xt), yes(xt.ratio >= targetRRRatio))
	} else {
		b.WriteString("| `-q -tixre` costs ≤ 10% on rr | not measured | n/a |\n")
	}
	if xd, okD := targetCell(cells, "rr", "tcpdump"); okT && okD {
		fmt.Fprintf(b, "| `-q -tixre` cheaper than tcpdump on rr (higher ratio) | %.3f vs tcpdump %.3f | %s |\n", xt.ratio, xd.ratio, yes(xt.ratio >= xd.ratio))
	} else {
		b.WriteString("| `-q -tixre` cheaper than tcpdump on rr | not measured | n/a |\n")
	}
	if t.runs > 0 {
		fmt.Fprintf(b, "| no event lost | %s lost in %d netwatcher runs | %s |\n", thousands(t.lost), t.runs, yes(t.lost == 0))
		fmt.Fprintf(b, "| peak RSS < %d MiB | max %.1f MiB | %s |\n", targetRSS, t.rssMax/mib, yes(t.rssMax/mib < targetRSS))
		fmt.Fprintf(b, "| BPF map memory < %d MiB | max %.2f MiB | %s |\n", targetMaps, t.mapMax/mib, yes(t.mapMax/mib < targetMaps))
	} else {
		b.WriteString("| no event lost / RSS / BPF maps | no successful netwatcher run | n/a |\n")
	}
}

// estNote is the direct-CPU estimate next to a measured ratio (--bpf-stats).
func estNote(x cell) string {
	if !x.hasBPFNs || x.share <= 0 {
		return ""
	}
	return fmt.Sprintf(" (direct CPU %.1f%% of the machine → ≈%.3f)", 100*x.share, x.estRatio)
}
