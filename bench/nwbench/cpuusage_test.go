package main

import (
	"os"
	"strings"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses: fields count from the
	// last ')'. utime=1234, stime=56 (fields 14 and 15).
	stat := "4242 (net (watch) er) S 4200 4242 4200 0 -1 4194560 9519 0 0 0 1234 56 0 0 20 0 9 0 123456 1570000000 17000 18446744073709551615\n"
	s, err := parseProcStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if s.ppid != 4200 || s.utime != 1234 || s.stime != 56 || s.cpu() != 12.9 {
		t.Fatalf("got %+v cpu %v", s, s.cpu())
	}
	for _, bad := range []string{
		"",
		"4242 netwatcher S 1 2 3", // no ')'
		"4242 (netwatcher) S 4200 4242 4200 0 -1 4194560 9519", // short
		"4242 (netwatcher) S 4200 4242 4200 0 -1 4194560 9519 0 0 0 x 56 0",
	} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestProcCPUSelf(t *testing.T) {
	v, err := procCPU(os.Getpid())
	if err != nil || v < 0 {
		t.Fatalf("procCPU(self) = %v, %v", v, err)
	}
	if _, err := procCPU(-1); err == nil {
		t.Fatal("no error for a missing process")
	}
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\tnetwatcher\nVmPeak:\t 1900000 kB\nVmHWM:\t   70452 kB\nVmRSS:\t   68000 kB\n"
	v, err := parseVmHWM(status)
	if err != nil || v != 70452*1024 {
		t.Fatalf("got %v, %v", v, err)
	}
	if _, err := parseVmHWM("Name:\tkthreadd\nState:\tS (sleeping)\n"); err == nil {
		t.Fatal("no error without VmHWM (kernel thread)")
	}
	if _, err := parseVmHWM("VmHWM:\tlots kB\n"); err == nil {
		t.Fatal("no error for a bad number")
	}
	if v, err := procHWM(os.Getpid()); err != nil || v <= 0 {
		t.Fatalf("procHWM(self) = %v, %v", v, err)
	}
}

func TestParseHostCPU(t *testing.T) {
	//           user nice system idle iowait irq softirq steal guest guest_nice
	stat := "cpu  100 10 50 800 20 5 15 0 30 3\ncpu0 50 5 25 400 10 2 7 0 15 1\nintr 1\n"
	busy, total := parseHostCPU(stat)
	// Guest times (already in user/nice) are left out; idle and iowait are
	// not busy.
	if total != 1000 || busy != 180 {
		t.Fatalf("busy %v total %v", busy, total)
	}
	for _, bad := range []string{"", "intr 1 2 3 4 5 6 7 8\n", "cpu 1 2 3\n"} {
		if b, tot := parseHostCPU(bad); b != 0 || tot != 0 {
			t.Errorf("%q: %v %v", bad, b, tot)
		}
	}
	if b, tot := hostCPU(); tot <= 0 || b > tot {
		t.Fatalf("hostCPU() = %v, %v", b, tot)
	}
}

func TestForeignDelta(t *testing.T) {
	a := cpuSnapshot{1: 1.0, 2: 5.0, 3: 2.0}
	b := cpuSnapshot{1: 1.5, 2: 5.0, 4: 0.25} // 3 exited, 4 started
	if got := foreignDelta(a, b); got != 0.75 {
		t.Fatalf("got %v", got)
	}
	// A pid reused by a process with less CPU counts nothing.
	if got := foreignDelta(cpuSnapshot{7: 9}, cpuSnapshot{7: 1}); got != 0 {
		t.Fatalf("reused pid: %v", got)
	}
}

func TestKnownTracer(t *testing.T) {
	for _, n := range []string{"tcpdump", "tshark", "dumpcap", "bpftrace", "netwatcher"} {
		if !knownTracer(n) {
			t.Errorf("%s", n)
		}
	}
	if knownTracer("nwpeer") || knownTracer("") {
		t.Error("nwpeer is no tracer")
	}
}

func TestDirSize(t *testing.T) {
	d := t.TempDir()
	if err := os.MkdirAll(d+"/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{"a": 10, "sub/b": 5} {
		if err := os.WriteFile(d+"/"+name, []byte(strings.Repeat("x", n)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := dirSize(d); got != 15 {
		t.Fatalf("got %v", got)
	}
	if got := dirSize(d + "/missing"); got != 0 {
		t.Fatalf("missing dir: %v", got)
	}
}

func TestParseSchedstat(t *testing.T) {
	ns, err := parseSchedstat([]byte("123456789 2000 17\n"))
	if err != nil || ns != 123456789 {
		t.Fatalf("got %d, %v", ns, err)
	}
	if _, err := parseSchedstat([]byte("\n")); err == nil {
		t.Fatal("empty schedstat accepted")
	}
	if _, err := parseSchedstat([]byte("x 1 2")); err == nil {
		t.Fatal("bad number accepted")
	}
}

// procCPU counts in ns, not in ticks of 10 ms: its first step is small.
func TestProcCPUPrecise(t *testing.T) {
	pid := os.Getpid()
	c0, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	c1 := c0
	for i := 0; c1 == c0 && i < 1e6; i++ {
		if c1, err = procCPU(pid); err != nil {
			t.Fatal(err)
		}
	}
	if d := c1 - c0; d <= 0 || d >= 0.005 {
		t.Errorf("first step of the process's CPU time %.6f s, want under half a tick", d)
	}
}
