package main

import (
	"context"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSelectWorkloads(t *testing.T) {
	names := func(ws []workload) string {
		var s []string
		for _, w := range ws {
			s = append(s, w.name+":"+w.unit)
		}
		return strings.Join(s, ",")
	}
	if got := names(selectWorkloads("")); got != "churn:conn/s,rr:round trips/s,bulk:Mbit/s,http:req/s" {
		t.Error(got)
	}
	// The table's order, whatever the list's; unknown names are ignored.
	if got := names(selectWorkloads("http, churn,nope")); got != "churn:conn/s,http:req/s" {
		t.Error(got)
	}
	if len(selectWorkloads("nope")) != 0 {
		t.Error("unknown workload selected")
	}
}

func TestSelectConfigs(t *testing.T) {
	var all []string
	for _, c := range selectConfigs("") {
		all = append(all, c.name)
	}
	if !reflect.DeepEqual(all, allConfigNames) {
		t.Fatalf("%q", all)
	}
	got := selectConfigs("bpftrace,-q -tixre, off")
	if len(got) != 3 || got[0].name != "off" || got[1].name != "-q -tixre" || got[2].name != "bpftrace" {
		t.Fatalf("%+v", got)
	}
}

func TestConfigRunsWithAndLabel(t *testing.T) {
	byName := map[string]config{}
	for _, c := range allConfigs() {
		byName[c.name] = c
	}
	for _, tc := range []struct {
		cfg, wl string
		want    bool
	}{
		{"-q -ax", "churn", true}, {"-q -ax", "rr", true}, {"-q -ax", "bulk", false}, {"-q -ax", "http", false},
		{"bpftrace", "churn", true}, {"bpftrace", "rr", false}, {"-q", "bulk", true}, {"off", "http", true},
	} {
		if got := byName[tc.cfg].runsWith(tc.wl); got != tc.want {
			t.Errorf("%s with %s: %v", tc.cfg, tc.wl, got)
		}
	}
	for name, want := range map[string]string{"off": "off", "-q": "nw `-q`", "-q --no-packets": "nw `-q --no-packets`",
		"tcpdump": "tcpdump -w /dev/null", "bpftrace": "bpftrace set_state"} {
		if got := byName[name].label(); got != want {
			t.Errorf("label(%s) = %q", name, got)
		}
	}
	c := byName["-q -x -r"]
	args := c.netwatcherArgs("/tmp/x/run3", "/tmp/x/run3.ready")
	if strings.Join(args, " ") != "-q -x -r -o json --data-dir /tmp/x/run3 --ready-file /tmp/x/run3.ready --duration 10m" {
		t.Fatalf("%q", args)
	}
	if len(c.args) != 3 {
		t.Fatal("netwatcherArgs changed the config's args")
	}
}

func TestResultSummary(t *testing.T) {
	r := result{Round: 1, Workload: "rr", Config: "-q", Thr: 85898.44, Busy: 92.4, Foreign: 0.126, Tool: true, CPU: 0.54,
		RSS: 71.4 * mib, MapMem: 37.9 * mib, HasEv: true, Events: 1718000, Lost: 0, Note: "undecodable=1"}
	want := "[round 2/3] rr    -q              85898.4  busy  92%  other procs 0.13s  cpu 0.54s rss 71.4MiB maps 37.90MiB events 1718000 lost 0  (undecodable=1)"
	if got := r.summary(3); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	off := result{Workload: "churn", Config: "off", Thr: 14115, Busy: 93}
	if got := off.summary(1); got != "[round 1/1] churn off             14115.0  busy  93%  other procs 0.00s" {
		t.Errorf("off: %q", got)
	}
	failed := result{Round: 0, Workload: "http", Config: "-q -tixre", Err: "wrk: no rate"}
	if got := failed.summary(3); got != "[round 1/3] http  -q -tixre  FAILED: wrk: no rate" {
		t.Errorf("failed: %q", got)
	}
}

func TestAddNote(t *testing.T) {
	var r result
	addNote(&r, "")
	addNote(&r, "a")
	addNote(&r, "")
	addNote(&r, "b")
	if r.Note != "a; b" {
		t.Fatal(r.Note)
	}
}

func TestBusyReason(t *testing.T) {
	if got := busyReason(nil, 0.05); got != "" {
		t.Error(got)
	}
	if got := busyReason(nil, 0.25); got != "other processes used 25% of the CPUs" {
		t.Error(got)
	}
	if got := busyReason([]string{"netwatcher(12)", "tcpdump(13)"}, 0.5); got != "other tracer(s) running: netwatcher(12) tcpdump(13)" {
		t.Error(got)
	}
}

func TestApplyDefaults(t *testing.T) {
	o := options{rounds: 3}
	applyDefaults(&o, false)
	if o.rounds != 3 || o.dur != 5*time.Second || o.bulkBytes != 10e9 || o.cooldown != time.Second || o.settle != 500*time.Millisecond || o.drain != time.Second {
		t.Fatalf("%+v", o)
	}
	q := options{rounds: 3, quick: true}
	applyDefaults(&q, false)
	if q.rounds != 1 || q.dur != 2*time.Second || q.bulkBytes != 3e9 || q.cooldown != 500*time.Millisecond || q.settle != 500*time.Millisecond || q.drain != 500*time.Millisecond {
		t.Fatalf("quick: %+v", q)
	}
	q2 := options{rounds: 2, quick: true, dur: 7 * time.Second, bulkBytes: 5}
	applyDefaults(&q2, true)
	if q2.rounds != 2 || q2.dur != 7*time.Second || q2.bulkBytes != 5 {
		t.Fatalf("quick with --rounds: %+v", q2)
	}
}

func TestNewEnv(t *testing.T) {
	e := newEnv(options{id: "4242"})
	if e.nsA != "nwb-4242-a" || e.nsB != "nwb-4242-b" || e.ifA != "nwb-4242a" || e.ifB != "nwb-4242b" {
		t.Fatalf("%+v", e)
	}
	// Interface names are at most 15 bytes (IFNAMSIZ-1).
	e = newEnv(options{id: "123456789012"})
	if e.nsA != "nwb-123456789012-a" || e.ifA != "nwb-56789012a" || e.ifB != "nwb-56789012b" {
		t.Fatalf("%+v", e)
	}
	steps := e.setupSteps()
	if len(steps) != 19 || strings.Join(steps[2], " ") != " ip link add name nwb-56789012a netns nwb-123456789012-a type veth peer name nwb-56789012b netns nwb-123456789012-b" {
		t.Fatalf("%q", steps[2])
	}
	for _, s := range steps {
		if s[0] != "" && s[0] != e.nsA && s[0] != e.nsB {
			t.Fatalf("step outside the bench's namespaces: %q", s)
		}
	}
}

func TestEnvNote(t *testing.T) {
	e := newEnv(options{id: "1"})
	e.note("a %d", 1)
	e.note("b")
	e.note("a %d", 1)
	if !reflect.DeepEqual(e.notes, []string{"a 1", "b"}) {
		t.Fatalf("%q", e.notes)
	}
}

func TestTailBuffer(t *testing.T) {
	b := newTail(8)
	b.Write([]byte("hello "))
	b.Write([]byte("world"))
	if got := b.String(); got != "lo world" {
		t.Fatalf("%q", got)
	}
}

func TestNsArgv(t *testing.T) {
	if got := nsArgv("", []string{"ss", "-Htln"}); strings.Join(got, " ") != "ss -Htln" {
		t.Error(got)
	}
	if got := nsArgv("nwb-1-b", []string{"ss", "-Htln"}); strings.Join(got, " ") != "ip netns exec nwb-1-b ss -Htln" {
		t.Error(got)
	}
}

func TestRunCmdAndChild(t *testing.T) {
	out, err := runCmd(5*time.Second, "", "sh", "-c", "echo out; echo err >&2")
	if err != nil || out != "out\nerr\n" {
		t.Fatalf("%q %v", out, err)
	}
	if _, err := runCmd(5*time.Second, "", "sh", "-c", "echo bad; exit 3"); err == nil || !strings.Contains(err.Error(), "exit status 3: bad") {
		t.Fatalf("%v", err)
	}
	if _, err := runCmd(100*time.Millisecond, "", "sleep", "5"); err == nil || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Fatalf("%v", err)
	}
	p, err := start("sleeper", startOpts{}, "sh", "-c", "echo ready; exec sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	if err := waitFor(context.Background(), p, 5*time.Second, func() bool { return strings.Contains(p.stdout.String(), "ready") }); err != nil {
		t.Fatal(err)
	}
	if !p.stop(syscall.SIGTERM, 5*time.Second) || !p.exited() {
		t.Fatal("child did not stop on SIGTERM")
	}
	q, err := start("quitter", startOpts{}, "sh", "-c", "echo gone >&2; exit 1")
	if err != nil {
		t.Fatal(err)
	}
	if err := waitFor(context.Background(), q, 5*time.Second, func() bool { return false }); err == nil || !strings.Contains(err.Error(), "quitter exited before it was ready") {
		t.Fatalf("%v", err)
	}
}
