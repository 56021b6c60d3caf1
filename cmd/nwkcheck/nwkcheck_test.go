package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// the fixtures' workload namespace; testdata/good also holds records of
// another test in another namespace (comm "conn.test", port 8080 too)
const fixtureNetns = 4026532252

func defaultWorkload(netns uint64) *workload {
	w := &workload{netns: netns}
	w.ports, _ = portSet("8080,8081,8082,8083")
	w.nwpeerServer, _ = portSet("8080,8081,8082")
	return w
}

func loadRuns(t *testing.T, dirs ...string) []*runDir {
	t.Helper()
	var runs []*runDir
	for _, d := range dirs {
		r, err := readRun(filepath.Join("testdata", d))
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	return runs
}

func byName(feats []feature) map[string]feature {
	m := map[string]feature{}
	for _, f := range feats {
		m[f.name] = f
	}
	return m
}

func wantStatus(t *testing.T, m map[string]feature, name, status string) feature {
	t.Helper()
	f, ok := m[name]
	if !ok {
		t.Fatalf("no feature %s", name)
	}
	if f.status != status {
		t.Errorf("%s: status %s, want %s (%s)", name, f.status, status, f.detail)
	}
	return f
}

func TestGoodRunsShowEveryFeatureOfTheWorkload(t *testing.T) {
	feats, notes := check(loadRuns(t, "good/tixre", "good/ax"), defaultWorkload(fixtureNetns))
	if len(feats) != len(featureNames) {
		t.Fatalf("%d features, want %d", len(feats), len(featureNames))
	}
	m := byName(feats)
	for _, name := range []string{"start", "lost", "conn_owner", "conn_extra", "packets", "http", "retrans", "errors"} {
		wantStatus(t, m, name, ok)
	}
	// tcp_time of sent segments is null in the fixture: 5 of 6 boundaries
	f := wantStatus(t, m, "layer_times", missing)
	if !strings.HasPrefix(f.detail, "5/6, never tx_tcp;") {
		t.Errorf("layer_times detail %q", f.detail)
	}
	if d := m["conn_owner"].detail; d != "open/close: client 1/1, server 1/1" {
		t.Errorf("conn_owner detail %q (busybox nc's server side must not count)", d)
	}
	if d := m["start"].detail; !strings.HasPrefix(d, "ready after 0.5/0.6 s;") {
		t.Errorf("start detail %q", d)
	}
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "WARN tixre ") || !strings.Contains(notes[0], "feature unavailable") {
		t.Errorf("notes %q, want the one WARN line", notes)
	}
}

func TestOtherNamespacesDoNotCount(t *testing.T) {
	// without the namespace filter the other test's connection on port 8080
	// (comm conn.test) is taken for the workload's
	m := byName(mustCheck(t, defaultWorkload(0), "good/tixre", "good/ax"))
	wantStatus(t, m, "conn_owner", bad)
	wantStatus(t, m, "layer_times", ok)
	// and with a namespace nothing ran in, nothing is seen
	m = byName(mustCheck(t, defaultWorkload(1), "good/tixre", "good/ax"))
	wantStatus(t, m, "packets", missing)
	wantStatus(t, m, "conn_owner", missing)
}

func mustCheck(t *testing.T, w *workload, dirs ...string) []feature {
	t.Helper()
	feats, _ := check(loadRuns(t, dirs...), w)
	return feats
}

func TestRefusedRunIsMissingWithItsReason(t *testing.T) {
	feats, notes := check(loadRuns(t, "refused/tixre"), defaultWorkload(0))
	m := byName(feats)
	f := wantStatus(t, m, "start", missing)
	want := "never ready, exit 1: conn: load BPF: program nw_send_len_na"
	if !strings.HasPrefix(f.detail, want) {
		t.Errorf("start detail %q, want prefix %q", f.detail, want)
	}
	for _, name := range featureNames[1:] {
		wantStatus(t, m, name, missing)
	}
	if len(notes) != 2 {
		t.Errorf("notes %q, want both stderr lines (WARN and 'not supported')", notes)
	}
}

// writeRun makes a run directory from literal contents.
func writeRun(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const statsOK = `{"type":"stats","events":1,"lost_ring_full":0,"lost_queue_full":0}` + "\n"

func checkOne(t *testing.T, files map[string]string) (map[string]feature, []string) {
	t.Helper()
	r, err := readRun(writeRun(t, files))
	if err != nil {
		t.Fatal(err)
	}
	feats, notes := check([]*runDir{r}, defaultWorkload(0))
	return byName(feats), notes
}

func TestBrokenValuesAreBad(t *testing.T) {
	pkt := `{"type":"packet","netns":7,"conn_id":1,"src":"127.0.0.1:8080","dst":"127.0.0.1:40000","pid":1,"comm":"nwpeer","rx":1,`
	m, notes := checkOne(t, map[string]string{
		"ready": "1.0", "exit": "1",
		"out.json": pkt + `"mac_time_ns":18446744073709551000,"ip_time_ns":1,"tcp_time_ns":1}` + "\n" +
			`{"type":"error","netns":7,"conn_id":1,"src":"127.0.0.1:40000","dst":"127.0.0.1:8080","reason":""}` + "\n" +
			`{"type":"http","netns":7,"conn_id":1,"src":"127.0.0.1:8080","dst":"127.0.0.1:40000","latency_ns":0}` + "\n" +
			`{"type":"connection","event":"open","netns":7,"conn_id":1,"src":"127.0.0.1:40000","dst":"127.0.0.1:8080","pid":0,"comm":null,"is_server":0}` + "\n" +
			`{"type":"connection","event":"close","netns":7,"conn_id":1,"src":"127.0.0.1:40000","dst":"127.0.0.1:8080","pid":9,"comm":"nwpeer","is_server":0,"cwnd":0,"srtt_us":0}` + "\n" +
			`not json at all {` + "\n" + `{"type":"stats","lost_ring_full":3,"console_lines_dropped":2}` + "\n",
		"stderr": "panic: runtime error: index out of range\n\ngoroutine 1 [running]:\n",
	})
	wantStatus(t, m, "start", bad) // ready, but exit 1
	if f := wantStatus(t, m, "lost", bad); !strings.HasPrefix(f.detail, "5 lost;") {
		t.Errorf("lost detail %q", f.detail)
	}
	wantStatus(t, m, "layer_times", bad)
	wantStatus(t, m, "errors", bad)
	wantStatus(t, m, "http", bad)
	wantStatus(t, m, "conn_owner", bad)
	wantStatus(t, m, "conn_extra", bad)
	fatal := 0
	for _, n := range notes {
		if strings.HasPrefix(n, "FATAL ") {
			fatal++
		}
	}
	if fatal != 1 {
		// the panic line; the torn JSON line is skipped (it starts with "n")
		t.Errorf("notes %q, want one FATAL (the panic)", notes)
	}
}

func TestReadyButNoStatsIsBad(t *testing.T) {
	m, _ := checkOne(t, map[string]string{"ready": "2.0", "exit": "0", "out.json": ""})
	if f := wantStatus(t, m, "start", bad); !strings.HasPrefix(f.detail, "ready after 2.0 s, no stats record;") {
		t.Errorf("start detail %q", f.detail)
	}
	wantStatus(t, m, "lost", missing)
	m, _ = checkOne(t, map[string]string{"ready": "2.0", "exit": "0", "out.json": statsOK})
	wantStatus(t, m, "start", ok)
	wantStatus(t, m, "lost", ok)
}

func TestTornJSONIsFatal(t *testing.T) {
	_, notes := checkOne(t, map[string]string{"ready": "1", "exit": "0", "out.json": `{"type":"packet",` + "\n" + statsOK})
	if len(notes) != 1 || !strings.Contains(notes[0], "not valid JSON") {
		t.Errorf("notes %q", notes)
	}
}

const expectTSV = `# comment
feature	5.10	6.1	6.12	host
start	missing-allowed	ok	ok	ok
lost	any	any	ok	ok
conn_owner	missing-allowed	ok	ok	ok
conn_extra	any	ok	ok	ok
packets	missing-allowed	missing-allowed	ok	ok
layer_times	any	any	missing-allowed	ok
http	any	any	ok	ok
retrans	any	ok	ok	ok
errors	any	missing-allowed	ok	ok
kernel_warn	any	ok	ok	ok
`

func TestExpectationsParseAndRefuseTypos(t *testing.T) {
	e, err := parseExpect(strings.NewReader(expectTSV))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.series, " "); got != "5.10 6.1 6.12 host" {
		t.Errorf("series %q", got)
	}
	if e.cells["packets"]["6.1"] != "missing-allowed" {
		t.Errorf("packets/6.1 = %q", e.cells["packets"]["6.1"])
	}
	for _, bad := range []string{
		"start\tok\n",                            // no header
		"feature\t6.1\nstart\tok\tok\n",          // too many cells
		"feature\t6.1\nstrat\tok\n",              // unknown feature
		"feature\t6.1\nstart\tmissing_allowed\n", // unknown requirement
	} {
		if _, err := parseExpect(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRequirements(t *testing.T) {
	for _, c := range []struct {
		req, status string
		pass        bool
	}{
		{"ok", ok, true}, {"ok", missing, false}, {"ok", bad, false},
		{"missing-allowed", ok, true}, {"missing-allowed", missing, true}, {"missing-allowed", bad, false},
		{"any", bad, true},
	} {
		if got := passes(c.req, c.status); got != c.pass {
			t.Errorf("passes(%s, %s) = %v", c.req, c.status, got)
		}
	}
}

// serialLog is a guest's console: boot noise, runs.sh, nwkcheck, dmesg, end.
func serialLog(features string, extra ...string) string {
	s := "SeaBIOS\r\n=== kernel 6.1.0-56-amd64; btf: yes\r\n" + strings.ReplaceAll(features, "\n", "\r\n")
	for _, e := range extra {
		s += e + "\r\n"
	}
	return s
}

const allOK = `FEATURE start ok ready after 3.1/2.2 s; tixre: ready after 3.1 s
FEATURE lost ok 0 lost; tixre: 0 lost
FEATURE conn_owner ok open/close: client 7/7, server 6/6
FEATURE conn_extra ok 20 sample/close records with -x values, 20 with srtt and cwnd > 0
FEATURE packets missing none; no packet records
FEATURE layer_times missing none; no packet record with layer times
FEATURE http missing none; 0 request lines, 0 status lines, 0 pairs (0 with latency)
FEATURE retrans ok 1 episodes (timeout 1), 3 retrans_segment records, max connection counter 1
FEATURE errors missing none; 0 error records
FEATURE tcpstate ok 40 transitions, 8 timed handshakes, 8 closes
WARN tixre time=... level=WARN msg="feature unavailable" concern=packets
`

func judgeLog(t *testing.T, series, log string) []string {
	t.Helper()
	e, err := parseExpect(strings.NewReader(expectTSV))
	if err != nil {
		t.Fatal(err)
	}
	res, err := parseLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	return judge(res, e, series)
}

func TestJudgePassesWhatTheSeriesAllows(t *testing.T) {
	if fails := judgeLog(t, "6.1", serialLog(allOK, "=== dmesg", "[    0.0] Linux version 6.1", "=== NWK END 25.1 s")); len(fails) != 0 {
		t.Errorf("fails %q", fails)
	}
	// 6.12 requires packets, http and errors (layer_times is missing-allowed)
	fails := judgeLog(t, "6.12", serialLog(allOK, endMarker))
	if len(fails) != 3 || !strings.HasPrefix(fails[0], "packets: missing, expected ok") ||
		!strings.HasPrefix(fails[1], "http: ") || !strings.HasPrefix(fails[2], "errors: ") {
		t.Errorf("fails %q, want packets, http, errors", fails)
	}
}

func TestJudgeAlwaysFailsOnKernelTroubleHangsAndPanics(t *testing.T) {
	cases := map[string]string{
		"oops":     serialLog(allOK, "[   12.3] BUG: kernel NULL pointer dereference, address: 0000000000000008", "[   12.3] Call Trace:", endMarker),
		"warning":  serialLog(allOK, "[   12.3] WARNING: CPU: 1 PID: 99 at kernel/bpf/verifier.c:1 foo", endMarker),
		"hang":     serialLog(allOK, "qemu exit 124 (124: timed out after 300 s)"),
		"panic":    serialLog(allOK, "FATAL tixre netwatcher panicked: panic: runtime error", endMarker),
		"noresult": serialLog("", endMarker),
	}
	for name, log := range cases {
		if fails := judgeLog(t, "6.1", log); len(fails) == 0 {
			t.Errorf("%s: passed", name)
		}
	}
	// a kernel warning is judged like a feature: 6.1 requires none, 5.10 allows it
	warn := serialLog(allOK, "[    3.360237] trace type BPF program uses run-time allocation",
		"[    3.360682] WARNING: CPU: 1 PID: 105 at kernel/bpf/verifier.c:10493 bpf_check+0x2f92/0x3470",
		"[    3.362431] Call Trace:", "[    3.363853] ---[ end trace d74e7bbe952f2fa8 ]---", endMarker)
	if fails := judgeLog(t, "6.1", warn); len(fails) != 1 ||
		fails[0] != "kernel_warn: bad, expected ok (trace type BPF program uses run-time allocation (kernel/bpf/verifier.c:10493); "+
			"1 kernel warnings: trace type BPF program uses run-time allocation (kernel/bpf/verifier.c:10493))" {
		t.Errorf("6.1 warning: %q", fails)
	}
	if fails := judgeLog(t, "5.10", warn); len(fails) != 0 {
		t.Errorf("5.10 warning: %q", fails)
	}
	// never ready fails where the kernel may not refuse, passes where it may
	refused := strings.Replace(allOK, "FEATURE start ok ready after 3.1/2.2 s", "FEATURE start missing never ready, exit 1: conn: load BPF", 1)
	if fails := judgeLog(t, "6.1", serialLog(refused, endMarker)); len(fails) != 1 || !strings.HasPrefix(fails[0], "start: missing, expected ok") {
		t.Errorf("6.1 refused: %q", fails)
	}
	if fails := judgeLog(t, "5.10", serialLog(refused, endMarker)); len(fails) != 0 {
		t.Errorf("5.10 refused: %q", fails)
	}
	if fails := judgeLog(t, "4.19", serialLog(allOK, endMarker)); len(fails) != 1 {
		t.Errorf("unknown series: %q", fails)
	}
}

func TestTableCells(t *testing.T) {
	a, _ := parseLog(strings.NewReader(serialLog(allOK, endMarker)))
	b, _ := parseLog(strings.NewReader(serialLog(
		"FEATURE start missing never ready, exit 1: conn: load | BPF; tixre: x\n"+
			"FEATURE layer_times ok 6/6; of rx 3 tx 3\n", endMarker)))
	var out bytes.Buffer
	writeTable(&out, []column{{"6.1.192 (bookworm-security)", a}, {"5.10.223 (bullseye)", b}})
	want := `| feature | 6.1.192 (bookworm-security) | 5.10.223 (bullseye) |
|---|---|---|
| start | ok | missing: never ready, exit 1: conn: load / BPF |
| lost | ok | no result |
| conn_owner | ok | no result |
| conn_extra | ok | no result |
| packets | missing | no result |
| layer_times | missing | ok: 6/6 |
| http | missing | no result |
| retrans | ok | no result |
| errors | missing | no result |
| tcpstate | ok | no result |
| rst | no result | no result |
| drops | no result | no result |
| rtt | no result | no result |
| udp | no result | no result |
| udp_times | no result | no result |
| icmp | no result | no result |
| dns | no result | no result |
| redis | no result | no result |
| netfilter | no result | no result |
| summary | no result | no result |
| kernel_warn | ok | ok |
`
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	exp := filepath.Join(dir, "expect.tsv")
	log := filepath.Join(dir, "6.1.log")
	os.WriteFile(exp, []byte(expectTSV), 0o644)
	os.WriteFile(log, []byte(serialLog(allOK, endMarker)), 0o644)
	var out, errb bytes.Buffer
	if rc := run([]string{"judge", "--expect", exp, "--series", "6.1", "--name", "6.1", log}, &out, &errb); rc != 0 {
		t.Errorf("judge 6.1: rc %d, %s%s", rc, out.String(), errb.String())
	}
	out.Reset()
	if rc := run([]string{"judge", "--expect", exp, "--series", "host", log}, &out, &errb); rc != 1 || !strings.HasPrefix(out.String(), "FAIL host packets: missing, expected ok") {
		t.Errorf("judge host: rc %d, %q", rc, out.String())
	}
	out.Reset()
	if rc := run([]string{"check", "--netns", "4026532252", "testdata/good/tixre", "testdata/good/ax"}, &out, &errb); rc != 0 ||
		!strings.Contains(out.String(), "FEATURE http ok 2 request lines, 1 status lines, 1 pairs (1 with latency)\n") {
		t.Errorf("check: rc %d, %s", rc, out.String())
	}
	for _, args := range [][]string{{}, {"nope"}, {"check"}, {"check", "--ports", "0", "x"}, {"check", "testdata/none"}, {"judge", log}} {
		if rc := run(args, &out, &errb); rc != 2 {
			t.Errorf("%q: rc %d, want 2", args, rc)
		}
	}
}

// Every candidate of the hook table must have run somewhere: a candidate no
// log names fails the report unless it is known to be unrunnable.
func TestHooksCoverage(t *testing.T) {
	dir := t.TempDir()
	cands := allCandidates()
	if len(cands) < 10 {
		t.Fatalf("only %d candidates: the concerns did not register", len(cands))
	}
	var all strings.Builder
	for _, c := range cands[1:] {
		fmt.Fprintf(&all, "HOOK %s\r\n", c.prog)
	}
	log := filepath.Join(dir, "6.1.log")
	os.WriteFile(log, []byte("noise\n"+all.String()), 0o600)
	var out, errb strings.Builder
	code := cmdHooks([]string{log}, &out, &errb)
	first := cands[0].prog
	if neverRuns[first] == "" && (code != 1 || !strings.Contains(out.String(), "never ran on any kernel: "+first)) {
		t.Errorf("missing %s not reported (code %d): %s", first, code, out.String())
	}
	if !strings.Contains(out.String(), "| 6.1 |") {
		t.Errorf("kernel names missing: %s", out.String())
	}
	os.WriteFile(log, []byte(all.String()+"HOOK "+first+"\n"), 0o600)
	out.Reset()
	if code := cmdHooks([]string{log}, &out, &errb); code != 0 {
		t.Errorf("all ran, code %d: %s", code, out.String())
	}
	out.Reset()
	os.WriteFile(log, nil, 0o600)
	if code := cmdHooks([]string{"--partial", log}, &out, &errb); code != 0 {
		t.Errorf("--partial fails: %d", code)
	}
}
