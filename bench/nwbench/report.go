package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

const mib = 1 << 20

// Targets from the issue.
const (
	targetChurnRatio = 0.97 // connection tracking costs <= 3% on churn
	targetRRRatio    = 0.90 // -tixre costs <= 10% on rr
	targetRSS        = 100  // MiB
	targetMaps       = 64   // MiB
)

func parseStats(line string) (map[string]float64, bool) {
	var raw map[string]any
	if err := json.Unmarshal([]byte(line), &raw); err != nil || raw["type"] != "stats" {
		return nil, false
	}
	m := map[string]float64{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			m[k] = f
		}
	}
	return m, true
}

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

func minMax(v []float64) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

// thousands formats v with no decimals and comma separators.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtOr(ok bool, format string, v float64) string {
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf(format, v)
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

func aggregate(results []result, wl string, c config, off map[int]float64, offMed float64) cell {
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
				bpfNs = append(bpfNs, r.BPFNs)
				if sh, ok := directShare(r); ok {
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
// (run_time_ns, which they spend in the traced tasks and softirqs). Unlike
// the throughput ratio it is not swayed by run-to-run noise; it leaves out
// what the tool costs without running (tracepoint dispatch, cache misses),
// so it is a lower bound of the cost.
func directShare(r result) (float64, bool) {
	if !r.HasBPFNs || r.Window <= 0 {
		return 0, false
	}
	return (r.CPU + r.BPFNs/1e9) / (r.Window * float64(runtime.NumCPU())), true
}

func machine() string {
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	nproc := runtime.NumCPU()
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %f kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB RAM", kb/(1<<20))
		}
	}
	return fmt.Sprintf("Linux %s, nproc %d, %s%s", strings.TrimSpace(string(rel)), nproc, model, mem)
}

func revision() string {
	head, err := runCmd(5*time.Second, "", "git", "rev-parse", "--short", "HEAD")
	if err != nil {
		return "unknown revision"
	}
	s := strings.TrimSpace(head)
	if st, err := runCmd(10*time.Second, "", "git", "status", "--porcelain", "--untracked-files=no"); err == nil && strings.TrimSpace(st) != "" {
		s += " + uncommitted changes"
	}
	return s
}

func report(e *env, wls []workload, cfgs []config, results []result, elapsed time.Duration) string {
	o := e.o
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## netwatcher overhead — %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	p("Machine: %s. netwatcher %s.\n", machine(), revision())
	mode := ""
	if o.quick {
		mode = " (`--quick`)"
	}
	p("Run%s: %d alternating round(s), churn/rr/http %s each, bulk %s bytes, took %s. Two namespaces joined by a veth pair; clients in one, servers in the other.\n\n",
		mode, o.rounds, o.dur, thousands(float64(o.bulkBytes)), elapsed.Round(time.Second))

	var fTot, fMax, fMaxShare float64
	var fMaxRun string
	nproc := float64(runtime.NumCPU())
	for _, r := range results {
		if r.Err != "" {
			continue
		}
		fTot += r.Foreign
		if r.Window > 0 {
			if share := r.Foreign / (r.Window * nproc); share > fMaxShare {
				fMax, fMaxShare, fMaxRun = r.Foreign, share, fmt.Sprintf("%s `%s` round %d", r.Workload, r.Config, r.Round+1)
			}
		}
	}
	p("Other processes on the host (not the bench's) used %.1f CPU-s during the measuring windows", fTot)
	if fMaxRun != "" {
		p("; the most in %s: %.2f CPU-s, %.0f%% of that window's CPU", fMaxRun, fMax, 100*fMaxShare)
	}
	p(".")
	var traced []string
	for _, r := range results {
		if r.Err == "" && r.Tracers != "" {
			traced = append(traced, fmt.Sprintf("%s `%s` round %d", r.Workload, r.Config, r.Round+1))
		}
	}
	if len(traced) > 0 {
		p(" In %d of %d runs another tracer (e.g. a test's netwatcher, which traces every namespace) was running: %s.", len(traced), len(results), strings.Join(traced, ", "))
	}
	if fMaxShare > 0.05 || len(traced) > 0 {
		p(" **The host was not quiet: ratios are less reliable than usual.**")
	}
	p("\n\n")

	anyBPF := false
	for _, r := range results {
		anyBPF = anyBPF || r.HasBPFNs
	}
	p("| workload | config | throughput (median) | vs off [range] | tool CPU s | CPU s / 1M events | peak RSS MiB | BPF maps MiB | events | lost | host busy |")
	if anyBPF {
		p(" BPF prog s | direct CPU share → ratio |")
	}
	p("\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	if anyBPF {
		p("--:|--:|")
	}
	p("\n")

	cells := map[string]map[string]cell{}
	var noted []string
	for _, w := range wls {
		off := map[int]float64{}
		var offs []float64
		for _, r := range results {
			if r.Workload == w.name && r.Config == "off" && r.Err == "" {
				off[r.Round] = r.Thr
				offs = append(offs, r.Thr)
			}
		}
		offMed := median(offs)
		cells[w.name] = map[string]cell{}
		for _, c := range cfgs {
			if c.only != "" && !slices.Contains(strings.Split(c.only, ","), w.name) {
				continue
			}
			x := aggregate(results, w.name, c, off, offMed)
			cells[w.name][c.name] = x
			label := c.name
			switch c.kind {
			case kindNW:
				label = "nw `" + c.name + "`"
			case kindTcpdump:
				label = "tcpdump -w /dev/null"
			case kindBpftrace:
				label = "bpftrace set_state"
			}
			if len(x.runs) == 0 {
				p("| %s | %s | no successful run (%d failed) | | | | | | | | |", w.name, label, x.failed)
				if anyBPF {
					p(" | |")
				}
				p("\n")
				continue
			}
			thr := thousands(x.thr) + " " + w.unit
			ratio := "–"
			if x.hasRatio {
				ratio = fmt.Sprintf("%.3f", x.ratio)
				if c.kind != kindOff && !math.IsInf(x.rLo, 0) {
					ratio += fmt.Sprintf(" [%.2f–%.2f]", x.rLo, x.rHi)
				} else if c.kind == kindOff && len(offs) > 1 {
					lo, hi := minMax(offs)
					ratio += fmt.Sprintf(" [%.2f–%.2f]", lo/offMed, hi/offMed)
				}
			}
			tool := c.kind != kindOff
			ev, lost := "–", "–"
			if x.hasEv {
				ev, lost = thousands(x.events), thousands(x.lost)
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% |", w.name, label, thr, ratio,
				fmtOr(tool, "%.2f", x.cpu), fmtOr(x.hasPerM, "%.2f", x.cpuPerM),
				fmtOr(tool, "%.1f", x.rss/mib), fmtOr(x.hasMaps, "%.2f", x.maps/mib), ev, lost, x.busy)
			if anyBPF {
				est := "–"
				if x.hasBPFNs && x.share > 0 {
					est = fmt.Sprintf("%.1f%% → %.3f", 100*x.share, x.estRatio)
				}
				p(" %s | %s |", fmtOr(x.hasBPFNs, "%.2f", x.bpfNs/1e9), est)
			}
			p("\n")
			if x.failed > 0 {
				noted = append(noted, fmt.Sprintf("%s / %s: %d run(s) failed or skipped (see per-run table)", w.name, c.name, x.failed))
			}
		}
	}

	// Targets.
	p("\n### Targets\n\n| target | measured | met |\n|---|---|---|\n")
	get := func(wl, cfg string) (cell, bool) {
		x, ok := cells[wl][cfg]
		return x, ok && x.hasRatio
	}
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**NO**"
	}
	if x, ok := get("churn", "-q --no-packets"); ok {
		p("| connection tracking (`-q --no-packets`) costs ≤ 3%% on churn (ratio ≥ %.2f) | %.3f%s | %s |\n", targetChurnRatio, x.ratio, estNote(x), yes(x.ratio >= targetChurnRatio))
	} else {
		p("| connection tracking (`-q --no-packets`) costs ≤ 3%% on churn | not measured | n/a |\n")
	}
	xt, okT := get("rr", "-q -tixre")
	if okT {
		p("| `-q -tixre` costs ≤ 10%% on rr (ratio ≥ %.2f) | %.3f%s | %s |\n", targetRRRatio, xt.ratio, estNote(xt), yes(xt.ratio >= targetRRRatio))
	} else {
		p("| `-q -tixre` costs ≤ 10%% on rr | not measured | n/a |\n")
	}
	if xd, okD := get("rr", "tcpdump"); okT && okD {
		p("| `-q -tixre` cheaper than tcpdump on rr (higher ratio) | %.3f vs tcpdump %.3f | %s |\n", xt.ratio, xd.ratio, yes(xt.ratio >= xd.ratio))
	} else {
		p("| `-q -tixre` cheaper than tcpdump on rr | not measured | n/a |\n")
	}
	var lostSum, rssMax, mapMax float64
	var nwRuns int
	var lostWhere []string
	for _, r := range results {
		if r.Err != "" || !r.HasEv || !strings.HasPrefix(r.Config, "-") {
			continue
		}
		nwRuns++
		lostSum += r.Lost
		rssMax = math.Max(rssMax, r.RSS)
		mapMax = math.Max(mapMax, r.MapMem)
		if r.Lost > 0 {
			lostWhere = append(lostWhere, fmt.Sprintf("%s `%s` round %d: %s", r.Workload, r.Config, r.Round+1, r.LostWhat))
		}
	}
	if nwRuns > 0 {
		p("| no event lost | %s lost in %d netwatcher runs | %s |\n", thousands(lostSum), nwRuns, yes(lostSum == 0))
		p("| peak RSS < %d MiB | max %.1f MiB | %s |\n", targetRSS, rssMax/mib, yes(rssMax/mib < targetRSS))
		p("| BPF map memory < %d MiB | max %.2f MiB | %s |\n", targetMaps, mapMax/mib, yes(mapMax/mib < targetMaps))
	} else {
		p("| no event lost / RSS / BPF maps | no successful netwatcher run | n/a |\n")
	}

	// Notes.
	var notes []string
	notes = append(notes, e.notes...)
	notes = append(notes, noted...)
	notes = append(notes, lostWhere...)
	for _, w := range wls {
		q, ok := cells[w.name]["-q"]
		if !ok || len(q.runs) == 0 {
			continue
		}
		for _, c := range cfgs {
			x, ok := cells[w.name][c.name]
			if c.kind != kindNW || c.name == "-q" || !ok || len(x.runs) == 0 {
				continue
			}
			if x.progs == q.progs && (strings.Contains(c.name, "t") || strings.Contains(c.name, "i") || strings.Contains(c.name, "e")) {
				notes = append(notes, fmt.Sprintf("%s: `%s` loaded the same number of BPF programs (%.0f) as `-q`: some of its features are probably not built yet, so its row measures less than it will", w.name, c.name, x.progs))
			}
		}
	}
	seen := map[string]bool{}
	for _, r := range results {
		if r.Note != "" {
			n := fmt.Sprintf("%s `%s` round %d: %s", r.Workload, r.Config, r.Round+1, r.Note)
			if !seen[n] {
				notes = append(notes, n)
				seen[n] = true
			}
		}
	}
	if len(notes) > 0 {
		p("\nNotes:\n")
		dedup := map[string]bool{}
		for _, n := range notes {
			if !dedup[n] {
				p("- %s\n", n)
				dedup[n] = true
			}
		}
	}

	// Per-run detail.
	p("\n<details><summary>Every run</summary>\n\n")
	p("| round | workload | config | throughput | host busy | other procs CPU s (+ tracers) | tool CPU s (window / whole life) | RSS MiB | maps (n / MiB) | progs | events | lost | log MiB | note |\n")
	p("|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	sorted := append([]result(nil), results...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Workload != sorted[j].Workload {
			return wlIndex(wls, sorted[i].Workload) < wlIndex(wls, sorted[j].Workload)
		}
		return sorted[i].Round < sorted[j].Round
	})
	for _, r := range sorted {
		if r.Err != "" {
			p("| %d | %s | %s | failed | | | | | | | | | | %s |\n", r.Round+1, r.Workload, r.Config, mdEscape(r.Err))
			continue
		}
		tool := r.Tool
		isNW := strings.HasPrefix(r.Config, "-")
		maps := "–"
		if tool && r.Config != "tcpdump" {
			maps = fmt.Sprintf("%d / %.2f", r.Maps, r.MapMem/mib)
		}
		ev, lost := "–", "–"
		if r.HasEv {
			ev, lost = thousands(r.Events), thousands(r.Lost)
		}
		other := fmt.Sprintf("%.2f", r.Foreign)
		if r.Tracers != "" {
			other += " + " + r.Tracers
		}
		p("| %d | %s | %s | %s | %.0f%% | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Round+1, r.Workload, r.Config,
			thousands(r.Thr), r.Busy, other,
			fmtOr(tool, "%.2f", r.CPU)+" / "+fmtOr(tool, "%.2f", r.CPUTotal), fmtOr(tool, "%.1f", r.RSS/mib), maps,
			fmtOr(tool && r.Config != "tcpdump", "%.0f", float64(r.Progs)), ev, lost, fmtOr(isNW, "%.1f", r.LogBytes/mib), mdEscape(r.Note))
	}
	p("\n</details>\n")
	return b.String()
}

func wlIndex(wls []workload, name string) int {
	for i, w := range wls {
		if w.name == name {
			return i
		}
	}
	return len(wls)
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}

// estNote is the direct-CPU estimate next to a measured ratio (--bpf-stats).
func estNote(x cell) string {
	if !x.hasBPFNs || x.share <= 0 {
		return ""
	}
	return fmt.Sprintf(" (direct CPU %.1f%% of the machine → ≈%.3f)", 100*x.share, x.estRatio)
}
