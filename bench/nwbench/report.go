package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// The markdown report: a header, the host's quietness, the main table of
// medians, the targets (targets.go), notes, and every run (folded). And the
// results file next to it.

// reportMeta is what the report says about when and where it ran.
type reportMeta struct {
	now      time.Time
	machine  string
	revision string
	nproc    int
}

// reportInput is everything else the report is made of.
type reportInput struct {
	o       options
	notes   []string // the env's notes
	wls     []workload
	cfgs    []config
	results []result
	elapsed time.Duration
}

func report(e *env, wls []workload, cfgs []config, results []result, elapsed time.Duration) string {
	meta := reportMeta{now: time.Now(), machine: machine(), revision: revision(), nproc: runtime.NumCPU()}
	return renderReport(meta, reportInput{o: e.o, notes: e.notes, wls: wls, cfgs: cfgs, results: results, elapsed: elapsed})
}

func renderReport(meta reportMeta, in reportInput) string {
	var b strings.Builder
	writeHeader(&b, meta, in.o, in.elapsed)
	writeHostQuiet(&b, in.results, meta.nproc)
	cells, failed := writeMainTable(&b, in.wls, in.cfgs, in.results, meta.nproc)
	tot := netwatcherTotals(in.results)
	writeTargets(&b, cells, tot)
	var notes []string
	notes = append(notes, in.notes...)
	notes = append(notes, failed...)
	notes = append(notes, tot.lostWhere...)
	notes = append(notes, progNotes(in.wls, in.cfgs, cells)...)
	notes = append(notes, runNotes(in.results)...)
	writeNotes(&b, notes)
	writeRuns(&b, in.wls, in.results)
	return b.String()
}

// writeResults writes the report to out and the results as JSON next to it
// (out without .md, plus .json).
func writeResults(out, rep string, results []result) {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return
	}
	if err := os.WriteFile(out, []byte(rep), 0o644); err != nil {
		logf("write %s: %v", out, err)
	} else {
		logf("report written to %s", out)
	}
	if js, err := resultsJSON(results); err == nil {
		_ = os.WriteFile(strings.TrimSuffix(out, ".md")+".json", js, 0o644)
	}
}

// resultsJSON is the results file: every run, indented, one space.
func resultsJSON(results []result) ([]byte, error) {
	js, err := json.MarshalIndent(results, "", " ")
	if err != nil {
		return nil, err
	}
	return append(js, '\n'), nil
}

func machine() string {
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		model = cpuModel(string(b))
	}
	nproc := runtime.NumCPU()
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = memTotal(string(b))
	}
	return fmt.Sprintf("Linux %s, nproc %d, %s%s", strings.TrimSpace(string(rel)), nproc, model, mem)
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo string) string {
	for _, l := range strings.Split(cpuinfo, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// memTotal is ", N GiB RAM" from the first line of /proc/meminfo, "" if
// it cannot be read.
func memTotal(meminfo string) string {
	var kb float64
	if _, err := fmt.Sscanf(strings.SplitN(meminfo, "\n", 2)[0], "MemTotal: %f kB", &kb); err == nil {
		return fmt.Sprintf(", %.0f GiB RAM", kb/(1<<20))
	}
	return ""
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

// writeHeader: title, machine, and what the run was.
func writeHeader(b *strings.Builder, meta reportMeta, o options, elapsed time.Duration) {
	fmt.Fprintf(b, "## netwatcher overhead — %s\n\n", meta.now.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(b, "Machine: %s. netwatcher %s.\n", meta.machine, meta.revision)
	mode := ""
	if o.quick {
		mode = " (`--quick`)"
	}
	fmt.Fprintf(b, "Run%s: %d alternating round(s), churn/rr/http %s each, bulk %s bytes, took %s. Two namespaces joined by a veth pair; clients in one, servers in the other.\n\n",
		mode, o.rounds, o.dur, thousands(float64(o.bulkBytes)), elapsed.Round(time.Second))
}

// writeHostQuiet: how much CPU other processes used during the measuring
// windows, which runs shared the host with another tracer, and a warning if
// the host was not quiet.
func writeHostQuiet(b *strings.Builder, results []result, nproc int) {
	var fTot, fMax, fMaxShare float64
	var fMaxRun string
	for _, r := range results {
		if r.Err != "" {
			continue
		}
		fTot += r.Foreign
		if r.Window > 0 {
			if share := r.Foreign / (r.Window * float64(nproc)); share > fMaxShare {
				fMax, fMaxShare, fMaxRun = r.Foreign, share, r.where()
			}
		}
	}
	fmt.Fprintf(b, "Other processes on the host (not the bench's) used %.1f CPU-s during the measuring windows", fTot)
	if fMaxRun != "" {
		fmt.Fprintf(b, "; the most in %s: %.2f CPU-s, %.0f%% of that window's CPU", fMaxRun, fMax, 100*fMaxShare)
	}
	b.WriteString(".")
	var traced []string
	for _, r := range results {
		if r.Err == "" && r.Tracers != "" {
			traced = append(traced, r.where())
		}
	}
	if len(traced) > 0 {
		fmt.Fprintf(b, " In %d of %d runs another tracer (e.g. a test's netwatcher, which traces every namespace) was running: %s.", len(traced), len(results), strings.Join(traced, ", "))
	}
	if fMaxShare > 0.05 || len(traced) > 0 {
		b.WriteString(" **The host was not quiet: ratios are less reliable than usual.**")
	}
	b.WriteString("\n\n")
}

// anyBPFStats: some run has BPF program times (--bpf-stats), so the main
// table has their two columns.
func anyBPFStats(results []result) bool {
	for _, r := range results {
		if r.HasBPFNs {
			return true
		}
	}
	return false
}

// writeMainTable writes the table of medians, one row per workload and
// configuration, and returns the cells by workload and configuration name,
// and a note for each cell with failed or skipped runs.
func writeMainTable(b *strings.Builder, wls []workload, cfgs []config, results []result, nproc int) (map[string]map[string]cell, []string) {
	anyBPF := anyBPFStats(results)
	b.WriteString(mainTableHeader(anyBPF))
	cells := map[string]map[string]cell{}
	var failed []string
	for _, w := range wls {
		off, offs := offBaseline(results, w.name)
		offMed := median(offs)
		cells[w.name] = map[string]cell{}
		for _, c := range cfgs {
			if !c.runsWith(w.name) {
				continue
			}
			x := aggregate(results, w.name, c, off, offMed, nproc)
			cells[w.name][c.name] = x
			b.WriteString(mainRow(w, c, x, offs, offMed, anyBPF))
			if len(x.runs) > 0 && x.failed > 0 {
				failed = append(failed, fmt.Sprintf("%s / %s: %d run(s) failed or skipped (see per-run table)", w.name, c.name, x.failed))
			}
		}
	}
	return cells, failed
}

func mainTableHeader(anyBPF bool) string {
	s := "| workload | config | throughput (median) | vs off [range] | tool CPU s | CPU s / 1M events | peak RSS MiB | BPF maps MiB | events | lost | host busy |"
	if anyBPF {
		s += " BPF prog s | direct CPU share → ratio |"
	}
	s += "\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	if anyBPF {
		s += "--:|--:|"
	}
	return s + "\n"
}

// mainRow is the main table's row of cell x (workload w, configuration c).
// offs are the workload's off throughputs and offMed their median.
func mainRow(w workload, c config, x cell, offs []float64, offMed float64, anyBPF bool) string {
	label := c.label()
	if len(x.runs) == 0 {
		s := fmt.Sprintf("| %s | %s | no successful run (%d failed) | | | | | | | | |", w.name, label, x.failed)
		if anyBPF {
			s += " | |"
		}
		return s + "\n"
	}
	thr := thousands(x.thr) + " " + w.unit
	tool := c.kind != kindOff
	ev, lost := "–", "–"
	if x.hasEv {
		ev, lost = thousands(x.events), thousands(x.lost)
	}
	s := fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% |", w.name, label, thr, ratioText(x, c, offs, offMed),
		fmtOr(tool, "%.2f", x.cpu), fmtOr(x.hasPerM, "%.2f", x.cpuPerM),
		fmtOr(tool, "%.1f", x.rss/mib), fmtOr(x.hasMaps, "%.2f", x.maps/mib), ev, lost, x.busy)
	if anyBPF {
		est := "–"
		if x.hasBPFNs && x.share > 0 {
			est = fmt.Sprintf("%.1f%% → %.3f", 100*x.share, x.estRatio)
		}
		s += fmt.Sprintf(" %s | %s |", fmtOr(x.hasBPFNs, "%.2f", x.bpfNs/1e9), est)
	}
	return s + "\n"
}

// ratioText is the "vs off [range]" cell: the median ratio and the range of
// the per-round ratios; for off itself, the range of its runs over their
// median.
func ratioText(x cell, c config, offs []float64, offMed float64) string {
	if !x.hasRatio {
		return "–"
	}
	ratio := fmt.Sprintf("%.3f", x.ratio)
	if c.kind != kindOff && !math.IsInf(x.rLo, 0) {
		ratio += fmt.Sprintf(" [%.2f–%.2f]", x.rLo, x.rHi)
	} else if c.kind == kindOff && len(offs) > 1 {
		lo, hi := minMax(offs)
		ratio += fmt.Sprintf(" [%.2f–%.2f]", lo/offMed, hi/offMed)
	}
	return ratio
}

// progNotes: netwatcher configurations with features beyond -q that loaded
// no more BPF programs than -q (features probably not built yet).
func progNotes(wls []workload, cfgs []config, cells map[string]map[string]cell) []string {
	var notes []string
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
	return notes
}

// runNotes: each run's note, once.
func runNotes(results []result) []string {
	var notes []string
	seen := map[string]bool{}
	for _, r := range results {
		if r.Note != "" {
			n := r.where() + ": " + r.Note
			if !seen[n] {
				notes = append(notes, n)
				seen[n] = true
			}
		}
	}
	return notes
}

// writeNotes writes the notes as a list, each once.
func writeNotes(b *strings.Builder, notes []string) {
	if len(notes) == 0 {
		return
	}
	b.WriteString("\nNotes:\n")
	dedup := map[string]bool{}
	for _, n := range notes {
		if !dedup[n] {
			fmt.Fprintf(b, "- %s\n", n)
			dedup[n] = true
		}
	}
}

// writeRuns writes every run, by workload (in table order) then round,
// folded.
func writeRuns(b *strings.Builder, wls []workload, results []result) {
	b.WriteString("\n<details><summary>Every run</summary>\n\n")
	b.WriteString("| round | workload | config | throughput | host busy | other procs CPU s (+ tracers) | tool CPU s (window / whole life) | RSS MiB | maps (n / MiB) | progs | events | lost | log MiB | note |\n")
	b.WriteString("|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	sorted := append([]result(nil), results...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Workload != sorted[j].Workload {
			return wlIndex(wls, sorted[i].Workload) < wlIndex(wls, sorted[j].Workload)
		}
		return sorted[i].Round < sorted[j].Round
	})
	for _, r := range sorted {
		b.WriteString(runRow(r))
	}
	b.WriteString("\n</details>\n")
}

// runRow is one run's row in the per-run table.
func runRow(r result) string {
	if r.Err != "" {
		return fmt.Sprintf("| %d | %s | %s | failed | | | | | | | | | | %s |\n", r.Round+1, r.Workload, r.Config, mdEscape(r.Err))
	}
	tool := r.Tool
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
	return fmt.Sprintf("| %d | %s | %s | %s | %.0f%% | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Round+1, r.Workload, r.Config,
		thousands(r.Thr), r.Busy, other,
		fmtOr(tool, "%.2f", r.CPU)+" / "+fmtOr(tool, "%.2f", r.CPUTotal), fmtOr(tool, "%.1f", r.RSS/mib), maps,
		fmtOr(tool && r.Config != "tcpdump", "%.0f", float64(r.Progs)), ev, lost, fmtOr(r.isNW(), "%.1f", r.LogBytes/mib), mdEscape(r.Note))
}

func wlIndex(wls []workload, name string) int {
	for i, w := range wls {
		if w.name == name {
			return i
		}
	}
	return len(wls)
}
