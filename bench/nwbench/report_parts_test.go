package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestCPUModelMemTotal(t *testing.T) {
	cpuinfo := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: other\n"
	if got := cpuModel(cpuinfo); got != "AMD EPYC 7B13" {
		t.Error(got)
	}
	if got := cpuModel("processor\t: 0\nCPU implementer\t: 0x41\n"); got != "unknown CPU" {
		t.Error(got)
	}
	if got := memTotal("MemTotal:       24609892 kB\nMemFree:         1 kB\n"); got != ", 23 GiB RAM" {
		t.Error(got)
	}
	if got := memTotal("garbage\n"); got != "" {
		t.Error(got)
	}
}

func TestWriteHeader(t *testing.T) {
	var b strings.Builder
	writeHeader(&b, goldenMeta, options{rounds: 1, quick: true, dur: 2 * time.Second, bulkBytes: 3e9}, 95*time.Second+400*time.Millisecond)
	want := "## netwatcher overhead — 2026-01-02 03:04 UTC\n\n" +
		"Machine: Linux 6.1.0-test, nproc 2, Test CPU, 8 GiB RAM. netwatcher abc1234.\n" +
		"Run (`--quick`): 1 alternating round(s), churn/rr/http 2s each, bulk 3,000,000,000 bytes, took 1m35s. Two namespaces joined by a veth pair; clients in one, servers in the other.\n\n"
	if b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func TestWriteHostQuiet(t *testing.T) {
	var b strings.Builder
	writeHostQuiet(&b, []result{{Workload: "rr", Config: "off", Foreign: 0.1, Window: 5}, {Err: "x", Foreign: 9}}, 2)
	if got, want := b.String(), "Other processes on the host (not the bench's) used 0.1 CPU-s during the measuring windows; the most in rr `off` round 1: 0.10 CPU-s, 1% of that window's CPU.\n\n"; got != want {
		t.Fatalf("got %q", got)
	}
	b.Reset()
	writeHostQuiet(&b, nil, 2)
	if got := b.String(); got != "Other processes on the host (not the bench's) used 0.0 CPU-s during the measuring windows.\n\n" {
		t.Fatalf("no runs: %q", got)
	}
}

func TestRatioText(t *testing.T) {
	nw := config{name: "-q", kind: kindNW}
	off := config{name: "off", kind: kindOff}
	if got := ratioText(cell{}, nw, nil, 0); got != "–" {
		t.Error(got)
	}
	x := cell{hasRatio: true, ratio: 0.8766, rLo: 0.81, rHi: 0.9}
	if got := ratioText(x, nw, nil, 100); got != "0.877 [0.81–0.90]" {
		t.Error(got)
	}
	// No per-round ratio (no off run in the same round): no range.
	x.rLo, x.rHi = math.Inf(1), math.Inf(-1)
	if got := ratioText(x, nw, nil, 100); got != "0.877" {
		t.Error(got)
	}
	// off: the range of its runs over their median.
	if got := ratioText(cell{hasRatio: true, ratio: 1}, off, []float64{90, 100, 120}, 100); got != "1.000 [0.90–1.20]" {
		t.Error(got)
	}
	if got := ratioText(cell{hasRatio: true, ratio: 1}, off, []float64{100}, 100); got != "1.000" {
		t.Error(got)
	}
}

func TestMainTableHeader(t *testing.T) {
	h := mainTableHeader(false)
	if strings.Contains(h, "BPF prog s") || strings.Count(h, "\n") != 2 || !strings.HasSuffix(h, "|--:|\n") {
		t.Fatalf("%q", h)
	}
	h = mainTableHeader(true)
	if !strings.Contains(h, "| host busy | BPF prog s | direct CPU share → ratio |\n") || !strings.HasSuffix(h, "--:|--:|--:|\n") {
		t.Fatalf("%q", h)
	}
}

func TestMainRow(t *testing.T) {
	w := workload{name: "rr", unit: "round trips/s"}
	c := config{name: "-q -t", kind: kindNW}
	if got := mainRow(w, c, cell{failed: 3}, nil, 0, true); got != "| rr | nw `-q -t` | no successful run (3 failed) | | | | | | | | | | |\n" {
		t.Errorf("no run: %q", got)
	}
	x := cell{runs: []result{{}}, thr: 66964.4, hasRatio: true, ratio: 0.6052, rLo: 0.6, rHi: 0.65, cpu: 0.58, cpuPerM: 0.42, hasPerM: true,
		rss: 72.1 * mib, maps: 37.9 * mib, hasMaps: true, events: 1339336, hasEv: true, lost: 0, busy: 93.2, bpfNs: 1.25e9, hasBPFNs: true, share: 0.213, estRatio: 0.771}
	want := "| rr | nw `-q -t` | 66,964 round trips/s | 0.605 [0.60–0.65] | 0.58 | 0.42 | 72.1 | 37.90 | 1,339,336 | 0 | 93% |"
	if got := mainRow(w, c, x, nil, 0, false); got != want+"\n" {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := mainRow(w, c, x, nil, 0, true); got != want+" 1.25 | 21.3% → 0.771 |\n" {
		t.Errorf("bpf: %q", got)
	}
	o := cell{runs: []result{{}}, thr: 110651, hasRatio: true, ratio: 1, busy: 95, cpu: math.NaN(), rss: math.NaN(), maps: math.NaN(), events: math.NaN()}
	if got := mainRow(w, config{name: "off", kind: kindOff}, o, []float64{106000, 110651, 112000}, 110651, true); got !=
		"| rr | off | 110,651 round trips/s | 1.000 [0.96–1.01] | – | – | – | – | – | – | 95% | – | – |\n" {
		t.Errorf("off: %q", got)
	}
}

func TestRunRow(t *testing.T) {
	if got := runRow(result{Round: 1, Workload: "http", Config: "-q -tixre", Err: "exited: a|b\nc"}); got != "| 2 | http | -q -tixre | failed | | | | | | | | | | exited: a\\|b c |\n" {
		t.Errorf("failed: %q", got)
	}
	r := result{Round: 0, Workload: "churn", Config: "-q", Thr: 14902.3, Busy: 93.4, Foreign: 0.126, Tracers: "tcpdump(7)", Tool: true,
		CPU: 0.18, CPUTotal: 1.234, RSS: 68.8 * mib, MapMem: 37.9 * mib, Maps: 21, Progs: 30, HasEv: true, Events: 298044, Lost: 2,
		LogBytes: 12.34 * mib, Note: "undecodable=1"}
	if got := runRow(r); got != "| 1 | churn | -q | 14,902 | 93% | 0.13 + tcpdump(7) | 0.18 / 1.23 | 68.8 | 21 / 37.90 | 30 | 298,044 | 2 | 12.3 | undecodable=1 |\n" {
		t.Errorf("nw: %q", got)
	}
	td := result{Round: 2, Workload: "rr", Config: "tcpdump", Thr: 87078, Busy: 93, Tool: true, CPU: 0.18, CPUTotal: 0.2, RSS: 7.7 * mib, HasEv: true, Events: 868999, Lost: 2611}
	if got := runRow(td); got != "| 3 | rr | tcpdump | 87,078 | 93% | 0.00 | 0.18 / 0.20 | 7.7 | – | – | 868,999 | 2,611 | – |  |\n" {
		t.Errorf("tcpdump: %q", got)
	}
	off := result{Workload: "bulk", Config: "off", Thr: 24018.4, Busy: 85}
	if got := runRow(off); got != "| 1 | bulk | off | 24,018 | 85% | 0.00 | – / – | – | – | – | – | – | – |  |\n" {
		t.Errorf("off: %q", got)
	}
}

func TestNetwatcherTotals(t *testing.T) {
	rs := []result{
		{Workload: "rr", Config: "-q", HasEv: true, RSS: 70 * mib, MapMem: 30 * mib},
		{Round: 1, Workload: "rr", Config: "-q -t", HasEv: true, Lost: 5, LostWhat: "lost_ring_full=5", RSS: 80 * mib, MapMem: 20 * mib},
		{Workload: "rr", Config: "-q -x -r", Err: "x", HasEv: true, Lost: 100, RSS: 500 * mib},
		{Workload: "rr", Config: "-q -ax"}, // no stats line
		{Workload: "rr", Config: "tcpdump", HasEv: true, Lost: 7, RSS: 200 * mib},
	}
	tot := netwatcherTotals(rs)
	if tot.runs != 2 || tot.lost != 5 || tot.rssMax != 80*mib || tot.mapMax != 30*mib ||
		len(tot.lostWhere) != 1 || tot.lostWhere[0] != "rr `-q -t` round 2: lost_ring_full=5" {
		t.Fatalf("%+v", tot)
	}
}

func TestWriteTargets(t *testing.T) {
	var b strings.Builder
	cells := map[string]map[string]cell{
		"churn": {"-q --no-packets": {hasRatio: true, ratio: 0.985}, "-q": {hasRatio: true, ratio: 0.96},
			"-q -ax": {hasRatio: true, ratio: 0.90, hasBPFNs: true, share: 0.02, estRatio: 0.979}},
		"rr": {"-q -tixre": {hasRatio: true, ratio: 0.91, hasBPFNs: true, share: 0.05, estRatio: 0.947, hasPerM: true, cpuPerM: 0.42, events: 1e6},
			"tcpdump": {hasRatio: true, ratio: 0.95}, "-q": {hasRatio: true, ratio: 0.7, hasPerM: true, cpuPerM: 0.29, events: 2e6},
			"-q --summary": {hasRatio: true, ratio: 0.98}},
	}
	writeTargets(&b, cells, nwTotals{runs: 4, rssMax: 99.95 * mib, mapMax: 64 * mib})
	got := b.String()
	for _, w := range []string{
		"| default mode (packets on) (`-q -ax`) ≥ 0.95 on churn | 0.900 (direct CPU 2.0% of the machine → ≈0.979) | by CPU |",
		"| default mode (packets on) (`-q`) ≥ 0.95 on rr | 0.700 | **NO** |",
		"| default mode (packets on) (`-q -ax`) ≥ 0.95 on http | not measured | n/a |",
		"| connection tracking (`-q --no-packets`) ≥ 0.97 on churn | 0.985 | yes |",
		"| every aggregate on (`-q --summary`) ≥ 0.97 on rr | 0.980 | yes |",
		"| sampled layer times (`-q -tixre --sample 100`) ≥ 0.93 on rr | not measured | n/a |",
		"| `-q -tixre` at or above tcpdump on rr | 0.910 (direct CPU 5.0% of the machine → ≈0.947) vs tcpdump 0.950 | **NO** |",
		"| `-q -tixre` at or above tcpdump on http | not measured | n/a |",
		"| user space ≤ 300 ns of CPU per event | max 420 ns (rr `-q -tixre`) | **NO** |",
		"| no event lost | 0 lost in 4 netwatcher runs | yes |",
		"| peak RSS < 100 MiB | max 100.0 MiB | yes |",
		"| BPF map memory < 64 MiB | max 64.00 MiB | **NO** |",
	} {
		if !strings.Contains(got, w+"\n") {
			t.Errorf("missing row %q in\n%s", w, got)
		}
	}
	b.Reset()
	writeTargets(&b, map[string]map[string]cell{"rr": {"tcpdump": {hasRatio: true}}}, nwTotals{})
	if got := b.String(); !strings.Contains(got, "≥ 0.97 on churn | not measured | n/a |") ||
		!strings.Contains(got, "at or above tcpdump on rr | not measured | n/a |") ||
		!strings.Contains(got, "| user space ≤ 300 ns of CPU per event | not measured | n/a |") ||
		!strings.Contains(got, "| no event lost / RSS / BPF maps | no successful netwatcher run | n/a |") {
		t.Fatalf("nothing measured:\n%s", got)
	}
}

func TestNotes(t *testing.T) {
	rs := []result{
		{Workload: "rr", Config: "-q", Round: 0, Note: "a"},
		{Workload: "rr", Config: "-q", Round: 0, Note: "a"},
		{Workload: "rr", Config: "-q", Round: 1, Note: "a"},
		{Workload: "rr", Config: "off"},
	}
	notes := runNotes(rs)
	if len(notes) != 2 || notes[0] != "rr `-q` round 1: a" || notes[1] != "rr `-q` round 2: a" {
		t.Fatalf("%q", notes)
	}
	var b strings.Builder
	writeNotes(&b, nil)
	if b.Len() != 0 {
		t.Fatal("empty notes wrote something")
	}
	writeNotes(&b, []string{"x", "y", "x"})
	if b.String() != "\nNotes:\n- x\n- y\n" {
		t.Fatalf("%q", b.String())
	}

	wls := []workload{{name: "churn"}, {name: "http"}}
	cfgs := selectConfigs("")
	cells := map[string]map[string]cell{
		"churn": {"-q": {runs: []result{{}}, progs: 30}, "-q -t": {runs: []result{{}}, progs: 30}, "-q -x -r": {runs: []result{{}}, progs: 30},
			"-q -tixre": {runs: []result{{}}, progs: 44}, "-q --no-packets": {runs: []result{{}}, progs: 9}},
		"http": {"-q -t": {runs: []result{{}}, progs: 30}}, // no -q run
	}
	pn := progNotes(wls, cfgs, cells)
	if len(pn) != 1 || !strings.HasPrefix(pn[0], "churn: `-q -t` loaded the same number of BPF programs (30) as `-q`") {
		t.Fatalf("%q", pn)
	}
}

func TestWriteRunsOrder(t *testing.T) {
	wls := []workload{{name: "churn"}, {name: "rr"}}
	rs := []result{
		{Round: 1, Workload: "rr", Config: "off"},
		{Round: 0, Workload: "rr", Config: "-q", Err: "x"},
		{Round: 1, Workload: "churn", Config: "off"},
		{Round: 0, Workload: "churn", Config: "-q", Err: "y"},
		{Round: 0, Workload: "other", Config: "off"},
	}
	var b strings.Builder
	writeRuns(&b, wls, rs)
	lines := strings.Split(b.String(), "\n")
	var order []string
	for _, l := range lines[5:] {
		if strings.HasPrefix(l, "| ") {
			f := strings.Split(l, " | ")
			order = append(order, f[1]+"/"+f[0][2:]+"/"+f[2])
		}
	}
	if got := strings.Join(order, " "); got != "churn/1/-q churn/2/off rr/1/-q rr/2/off other/1/off" {
		t.Fatalf("order %s\n%s", got, b.String())
	}
	if !strings.HasPrefix(b.String(), "\n<details><summary>Every run</summary>\n\n| round |") || !strings.HasSuffix(b.String(), "\n</details>\n") {
		t.Fatalf("%q", b.String())
	}
}
