package main

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

// Fixtures for the golden report tests. The environment-dependent lines of
// the report (date, machine, revision) are fixed by goldenMeta.

const goldenElapsed = 12*time.Minute + 23*time.Second

// goldenCase is one golden report: its options, notes, workloads,
// configurations and results.
type goldenCase struct {
	name    string
	o       options
	notes   []string
	wls     []string
	cfgs    []string
	results []result
}

func namesToWorkloads(t *testing.T, names []string) []workload {
	t.Helper()
	var out []workload
	for _, n := range names {
		w := selectWorkloads(n)
		if len(w) != 1 {
			t.Fatalf("workload %q", n)
		}
		out = append(out, w[0])
	}
	return out
}

func namesToConfigs(t *testing.T, names []string) []config {
	t.Helper()
	var out []config
	for _, n := range names {
		c := selectConfigs(n)
		if len(c) != 1 {
			t.Fatalf("config %q", n)
		}
		out = append(out, c[0])
	}
	return out
}

var allWorkloadNames = []string{"churn", "rr", "bulk", "http"}
var allConfigNames = []string{"off", "-q --no-packets", "-q", "-q -ax", "-q -x -r", "-q -t", "-q -tixre", "tcpdump", "bpftrace"}

func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	b, err := os.ReadFile("testdata/results_full.json")
	if err != nil {
		t.Fatal(err)
	}
	var full []result
	if err := json.Unmarshal(b, &full); err != nil {
		t.Fatal(err)
	}
	return []goldenCase{
		{
			// A real run (bench/results/latest.json of 2026-11-25).
			name:    "full",
			o:       options{rounds: 3, dur: 5 * time.Second, bulkBytes: 10e9},
			notes:   []string{"wrk not found: http workload uses ab (apache2-utils), numbers not comparable with wrk's"},
			wls:     allWorkloadNames,
			cfgs:    allConfigNames,
			results: full,
		},
		{
			// --bpf-stats, --quick, failures, skips, tracers, a busy host,
			// losses, notes with '|' and newlines, a config without BPF
			// programs of its own.
			name:    "edge",
			o:       options{rounds: 2, quick: true, dur: 2 * time.Second, bulkBytes: 3e9},
			notes:   []string{"kernel.bpf_stats_enabled=1 on this host: every BPF program pays for run-time accounting", "bpftrace reference skipped: x"},
			wls:     []string{"churn", "rr", "http"},
			cfgs:    []string{"off", "-q --no-packets", "-q", "-q -t", "-q -tixre", "tcpdump", "bpftrace"},
			results: edgeResults(),
		},
		{
			// Only the baseline and tcpdump: no target can be measured.
			name:    "baseline",
			o:       options{rounds: 1, dur: 5 * time.Second, bulkBytes: 1234567},
			wls:     []string{"bulk"},
			cfgs:    []string{"off", "tcpdump"},
			results: baselineResults(),
		},
	}
}

func edgeResults() []result {
	nw := func(round int, wl, cfg string, thr, cpu, ev float64, progs int, bpfNs float64) result {
		return result{Round: round, Workload: wl, Config: cfg, Thr: thr, Busy: 91.5 + float64(round), Window: 2.01,
			Foreign: 0.01, Tool: true, CPU: cpu, CPUTotal: cpu + 0.3, RSS: 50.5 * mib, MapMem: 37.9 * mib, Maps: 21, Progs: progs,
			HasEv: true, Events: ev, LogBytes: 3.3 * mib, BPFNs: bpfNs, BPFCnt: ev * 3, HasBPFNs: bpfNs > 0}
	}
	off := func(round int, wl string, thr float64) result {
		return result{Round: round, Workload: wl, Config: "off", Thr: thr, Busy: 93, Window: 2.0, Foreign: 0.02}
	}
	var rs []result
	rs = append(rs,
		off(0, "churn", 14000), off(1, "churn", 15000),
		nw(0, "churn", "-q --no-packets", 13700, 0.05, 0, 9, 0.08e9),
		nw(1, "churn", "-q --no-packets", 14900, 0.04, 0, 9, 0.07e9),
		nw(0, "churn", "-q", 13000, 0.18, 298044, 30, 0.2e9),
		nw(1, "churn", "-q", 13500, 0.17, 290000, 30, 0.21e9),
		nw(0, "churn", "-q -t", 11000, 0.2, 233720, 30, 0.3e9),
		nw(1, "churn", "-q -t", 11500, 0.21, 240000, 30, 0.31e9),
		nw(0, "churn", "-q -tixre", 10000, 0.3, 327253, 44, 0.4e9),
		nw(1, "churn", "-q -tixre", 10500, 0.31, 320000, 44, 0),
		result{Round: 0, Workload: "churn", Config: "tcpdump", Thr: 14500, Busy: 92, Window: 2, Tool: true, CPU: 0.04, CPUTotal: 0.05,
			RSS: 7.7 * mib, HasEv: true, Events: 763521, Lost: 12, LostWhat: "dropped by kernel=12"},
		result{Round: 1, Workload: "churn", Config: "tcpdump", Err: "tcpdump exited before it was ready: exit status 1: a | b"},
		result{Round: 0, Workload: "churn", Config: "bpftrace", Skipped: true, Err: "bpftrace exited before it was ready"},
		result{Round: 1, Workload: "churn", Config: "bpftrace", Thr: 7759, Busy: 91, Window: 2, Foreign: 0.9, Tracers: "netwatcher(1234) bpftrace(99)",
			Tool: true, CPU: 1.2, CPUTotal: 1.9, RSS: 100 * mib, Progs: 2, Maps: 1, Note: "host still busy after waiting 4s: other processes used 40% of the CPUs"},
	)
	rs = append(rs,
		off(0, "rr", 110000), off(1, "rr", 100000),
		nw(0, "rr", "-q --no-packets", 105000, 0.04, 12, 9, 0.05e9),
		nw(1, "rr", "-q --no-packets", 99000, 0.04, 10, 9, 0.05e9),
		nw(0, "rr", "-q", 86000, 0.54, 1718000, 30, 0.9e9),
		nw(1, "rr", "-q", 84000, 0.55, 1700000, 30, 0.95e9),
		nw(0, "rr", "-q -t", 67000, 0.58, 1339336, 30, 1.1e9),
		nw(0, "rr", "-q -tixre", 67214, 0.58, 1344424, 44, 1.3e9),
		nw(1, "rr", "-q -tixre", 99500, 0.61, 1340000, 44, 1.2e9),
		result{Round: 0, Workload: "rr", Config: "tcpdump", Thr: 87078, Busy: 93, Window: 2, Tool: true, CPU: 0.18, CPUTotal: 0.2,
			RSS: 7.7 * mib, HasEv: true, Events: 868999, Lost: 2611, LostWhat: "dropped by kernel=2611"},
		result{Round: 1, Workload: "rr", Config: "tcpdump", Thr: 90000, Busy: 94, Window: 2, Tool: true, CPU: 0.19, CPUTotal: 0.21,
			RSS: 7.8 * mib, HasEv: true, Events: 0},
	)
	lossy := nw(1, "rr", "-q -t", 66000, 0.6, 1300000, 30, 1.0e9)
	lossy.Lost, lossy.LostWhat = 1500, "lost_ring_full=1000 pkt_table_full=500"
	lossy.Note = "undecodable=3; netwatcher exit: exit status 1"
	rs = append(rs, lossy)
	rs = append(rs,
		off(0, "http", 71000),
		result{Round: 1, Workload: "http", Config: "off", Err: "wrk: no rate in \"x\""},
		nw(0, "http", "-q", 60000, 0.48, 1214512, 30, 0.5e9),
		result{Round: 0, Workload: "http", Config: "-q -tixre", Err: "netwatcher exited during the run: signal: killed: |x|"},
		result{Round: 1, Workload: "http", Config: "-q -tixre", Err: "netwatcher printed no stats line (exit <nil>): "},
		result{Round: 0, Workload: "http", Config: "tcpdump", Thr: 67414, Busy: 90, Window: 2, Tool: true, CPU: 0.04, RSS: 7.7 * mib,
			HasEv: true, Events: 674612, Note: "Non-2xx or 3xx responses: 5; Socket errors: connect 0, read 1, write 0, timeout 0"},
	)
	return rs
}

func baselineResults() []result {
	return []result{
		{Round: 0, Workload: "bulk", Config: "off", Thr: 24018.4, Busy: 85, Window: 3.3, Foreign: 0.2, Note: "waited 3s for a quiet host"},
		{Round: 0, Workload: "bulk", Config: "tcpdump", Thr: 19703.2, Busy: 86, Window: 4.1, Tool: true, CPU: 0.64, CPUTotal: 0.7,
			RSS: 7.8 * mib, HasEv: true, Events: 300107, Lost: 137371, LostWhat: "dropped by kernel=137371"},
	}
}
