package main

import (
	"fmt"
	"strings"
)

// result is one run: one workload under one configuration in one round.
// It is also the format of the results file (bench/results/*.json).
type result struct {
	Round    int     `json:"round"`
	Workload string  `json:"workload"`
	Config   string  `json:"config"`
	Thr      float64 `json:"throughput"`
	Busy     float64 `json:"host_busy_pct"`
	Window   float64 `json:"window_s"`                  // the workload's wall time
	Foreign  float64 `json:"foreign_cpu_s"`             // CPU of other processes on the host meanwhile
	Tracers  string  `json:"foreign_tracers,omitempty"` // other tracers running at the end of the window
	Tool     bool    `json:"tool"`
	CPU      float64 `json:"tool_cpu_s"`       // during the measuring window
	CPUTotal float64 `json:"tool_cpu_total_s"` // whole process life (rusage)
	RSS      float64 `json:"peak_rss_bytes"`
	MapMem   float64 `json:"bpf_map_bytes"`
	Maps     int     `json:"bpf_maps"`
	Progs    int     `json:"bpf_progs"`
	HasEv    bool    `json:"has_events"`
	Events   float64 `json:"events"`
	Lost     float64 `json:"lost"`
	LostWhat string  `json:"lost_detail,omitempty"`
	LogBytes float64 `json:"log_bytes"`
	BPFNs    float64 `json:"bpf_prog_ns"`
	BPFCnt   float64 `json:"bpf_prog_runs"`
	HasBPFNs bool    `json:"has_bpf_ns"`
	// BPFStatsNs: what the run-time accounting added to each run's
	// run_time_ns on this machine (statsNsPerRun); 0: not measured.
	BPFStatsNs float64 `json:"bpf_stats_ns_per_run,omitempty"`
	Note       string  `json:"note,omitempty"`
	Err        string  `json:"error,omitempty"`
	Skipped    bool    `json:"skipped,omitempty"`
}

// bpfNsNet is the time the tool's programs ran in the window without what
// the run-time accounting itself added to it (BPFStatsNs per run).
func (r result) bpfNsNet() float64 {
	return max(0, r.BPFNs-r.BPFCnt*r.BPFStatsNs)
}

// summary is the run's progress line on stderr.
func (r result) summary(rounds int) string {
	s := fmt.Sprintf("[round %d/%d] %-5s %-10s ", r.Round+1, rounds, r.Workload, r.Config)
	if r.Err != "" {
		return s + "FAILED: " + r.Err
	}
	s += fmt.Sprintf("%12.1f  busy %3.0f%%  other procs %.2fs", r.Thr, r.Busy, r.Foreign)
	if r.Tool {
		s += fmt.Sprintf("  cpu %.2fs rss %.1fMiB maps %.2fMiB", r.CPU, r.RSS/mib, r.MapMem/mib)
		if r.HasEv {
			s += fmt.Sprintf(" events %.0f lost %.0f", r.Events, r.Lost)
		}
	}
	if r.Note != "" {
		s += "  (" + r.Note + ")"
	}
	return s
}

// addNote appends n to the run's note ("; "-separated).
func addNote(r *result, n string) {
	if n == "" {
		return
	}
	if r.Note != "" {
		r.Note += "; "
	}
	r.Note += n
}

// where names a run in the report's notes: "churn `-q` round 2".
func (r result) where() string {
	return fmt.Sprintf("%s `%s` round %d", r.Workload, r.Config, r.Round+1)
}

// isNW: the run is a netwatcher configuration (their names start with -).
func (r result) isNW() bool { return strings.HasPrefix(r.Config, "-") }
