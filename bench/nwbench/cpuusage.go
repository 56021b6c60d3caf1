package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// /proc sampling: a process's CPU time and peak RSS, the host's busy share,
// and what other processes on the host do meanwhile.

// clkTck is USER_HZ, 100 on every Linux architecture Go supports here.
const clkTck = 100

// procStat is what the bench reads of /proc/<pid>/stat.
type procStat struct {
	ppid         int
	utime, stime uint64 // clock ticks
}

// cpu is utime+stime in seconds.
func (s procStat) cpu() float64 { return float64(s.utime+s.stime) / clkTck }

// parseProcStat parses /proc/<pid>/stat. The command name (field 2) may hold
// spaces and parentheses: the fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("bad stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid): utime is field 14,
	// stime field 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("short stat")
	}
	var s procStat
	s.ppid, _ = strconv.Atoi(f[1])
	var err1, err2 error
	s.utime, err1 = strconv.ParseUint(f[11], 10, 64)
	s.stime, err2 = strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, fmt.Errorf("bad stat: utime %q stime %q", f[11], f[12])
	}
	return s, nil
}

// procCPU returns the CPU time of the whole process in seconds: the sum of
// its threads' run time in ns (/proc/<pid>/task/*/schedstat), else
// utime+stime, which the kernel reports in ticks of 10 ms (a churn run's
// tool CPU is ~15 of them: too coarse for a per-event figure).
func procCPU(pid int) (float64, error) {
	if ns, err := procRunNs(pid); err == nil {
		return float64(ns) / 1e9, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s, err := parseProcStat(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return s.cpu(), nil
}

// procRunNs sums the first field of every thread's schedstat: the ns it
// ran on a CPU (user and system). A thread that exited meanwhile takes its
// time with it; the Go runtime keeps its threads.
func procRunNs(pid int) (uint64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no schedstat for %d", pid)
	}
	var sum uint64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited
		}
		ns, err := parseSchedstat(b)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
		sum += ns
	}
	return sum, nil
}

// parseSchedstat: "run_ns wait_ns timeslices".
func parseSchedstat(b []byte) (uint64, error) {
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, fmt.Errorf("empty schedstat")
	}
	return strconv.ParseUint(f[0], 10, 64)
}

// parseVmHWM returns VmHWM (peak resident set) of /proc/<pid>/status in
// bytes.
func parseVmHWM(status string) (float64, error) {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseFloat(f[0], 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no VmHWM")
}

// procHWM returns VmHWM (peak resident set) in bytes.
func procHWM(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	v, err := parseVmHWM(string(b))
	if err != nil {
		return 0, fmt.Errorf("%w for %d", err, pid)
	}
	return v, nil
}

// parseHostCPU reads the aggregate "cpu" line of /proc/stat: busy and total
// ticks (idle and iowait are not busy; guest times are already in user and
// nice).
func parseHostCPU(stat string) (busy, total float64) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	for i, s := range f[1:] {
		if i >= 8 { // guest times are already in user/nice
			break
		}
		v, _ := strconv.ParseFloat(s, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// hostCPU reads the aggregate line of /proc/stat: busy and total ticks.
func hostCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	return parseHostCPU(string(b))
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) float64 {
	var n float64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += float64(fi.Size())
			}
		}
		return nil
	})
	return n
}

// hasFD reports whether the process holds an fd whose link target starts
// with one of the prefixes (e.g. a perf event or bpf link: attached).
func hasFD(pid int, prefixes ...string) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(target, p) {
				return true
			}
		}
	}
	return false
}

// cpuSnapshot maps pid -> CPU seconds of every user-space process that is
// not the bench's: not in the bench's namespaces, not the bench itself and
// not one of its children. Kernel threads are left out (softirq work caused
// by the bench's own traffic runs in ksoftirqd).
type cpuSnapshot map[int]float64

func foreignSnapshot(ourNS map[uint64]bool, ourPids map[int]bool) cpuSnapshot {
	snap := cpuSnapshot{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return snap
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || ourPids[pid] {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		st, err := parseProcStat(b)
		if err != nil {
			continue
		}
		if pid == 2 || st.ppid == 2 || st.ppid == self || ourPids[st.ppid] {
			continue
		}
		var ns syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &ns) == nil && ourNS[ns.Ino] {
			continue
		}
		snap[pid] = st.cpu()
	}
	return snap
}

// foreignDelta is the CPU the foreign processes used between two
// snapshots; processes that started and ended in between are missed.
func foreignDelta(a, b cpuSnapshot) float64 {
	var d float64
	for pid, v := range b {
		if v0, ok := a[pid]; ok {
			if v > v0 {
				d += v - v0
			}
		} else {
			d += v
		}
	}
	return d
}

// knownTracer: process names that trace the network like the bench's own
// tools.
func knownTracer(comm string) bool {
	switch comm {
	case "tcpdump", "tshark", "dumpcap", "bpftrace", "netwatcher":
		return true
	}
	return false
}

// foreignTracers lists processes that are not the bench's and trace the
// network host-wide like the bench's own tools do: they hold a BPF program
// fd (another netwatcher, e.g. from a test run, traces every namespace,
// including the bench's) or are a known tracer.
func foreignTracers(ourPids map[int]bool) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || ourPids[pid] {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		name := strings.TrimSpace(string(comm))
		if knownTracer(name) || hasFD(pid, "anon_inode:bpf-prog") {
			out = append(out, fmt.Sprintf("%s(%d)", name, pid))
		}
	}
	return out
}
