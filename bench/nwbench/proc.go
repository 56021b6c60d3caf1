package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func newTail(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// proc is a child process started by the bench. Every child runs in a
// process group of its own (so stopping it reaches nothing else) and gets
// SIGKILL if the bench dies (Pdeathsig).
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *tailBuffer
	done           chan struct{}
	err            error
	stdin          io.Closer // kept referenced: a collected pipe would close
}

// nsArgv prefixes argv with `ip netns exec NS` (ip execs the program, so the
// pid is the program's own).
func nsArgv(ns string, argv []string) []string {
	if ns == "" {
		return argv
	}
	return append([]string{"ip", "netns", "exec", ns}, argv...)
}

type startOpts struct {
	ns        string
	stdinPipe bool // give the child a stdin pipe that closes when the bench exits
	devnull   bool // stdout to /dev/null instead of a tail buffer
	dir       string
}

var (
	childMu sync.Mutex
	// children that are still running, for the emergency stop on exit.
	children = map[*proc]struct{}{}
)

func start(name string, o startOpts, argv ...string) (*proc, error) {
	argv = nsArgv(o.ns, argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = o.dir
	p := &proc{name: name, cmd: cmd, stdout: newTail(64 << 10), stderr: newTail(64 << 10), done: make(chan struct{})}
	if o.devnull {
		cmd.Stdout = nil // /dev/null
	} else {
		cmd.Stdout = p.stdout
	}
	cmd.Stderr = p.stderr
	if o.stdinPipe {
		// The write end stays open in the bench: EOF (and exit, with
		// nwpeer --stdin-exit) comes when the bench dies.
		w, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		p.stdin = w
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start: %w", name, err)
	}
	childMu.Lock()
	children[p] = struct{}{}
	childMu.Unlock()
	go func() {
		p.err = cmd.Wait()
		childMu.Lock()
		delete(children, p)
		childMu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the child's process group, waits up to grace, then
// SIGKILLs the group. It returns whether the child ended by itself within
// grace.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) bool {
	if p.exited() {
		return true
	}
	_ = syscall.Kill(-p.pid(), sig)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	return false
}

// killAllChildren is the last-resort cleanup.
func killAllChildren() {
	childMu.Lock()
	var ps []*proc
	for p := range children {
		ps = append(ps, p)
	}
	childMu.Unlock()
	for _, p := range ps {
		p.stop(syscall.SIGTERM, 2*time.Second)
	}
}

// runCmd runs a short command to completion with a timeout and returns its
// combined output.
func runCmd(timeout time.Duration, ns string, argv ...string) (string, error) {
	return runCmdCtx(context.Background(), timeout, ns, argv...)
}

// runCmdCtx is runCmd that also ends (killing the command) when parent ends.
func runCmdCtx(parent context.Context, timeout time.Duration, ns string, argv ...string) (string, error) {
	argv = nsArgv(ns, argv)
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if parent.Err() != nil {
		err = fmt.Errorf("interrupted")
	} else if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// clkTck is USER_HZ, 100 on every Linux architecture Go supports here.
const clkTck = 100

// procCPU returns utime+stime of the whole process in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return float64(u+s) / clkTck, nil
}

// procHWM returns VmHWM (peak resident set) in bytes.
func procHWM(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseFloat(f[0], 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no VmHWM for %d", pid)
}

// bpfObjects summarises the BPF maps and programs a process holds fds for.
type bpfObjects struct {
	maps        int
	mapMemlock  float64 // bytes, sum over distinct maps
	progs       int
	progRunNs   float64 // sum of run_time_ns over distinct programs (needs BPF stats enabled)
	progRunCnt  float64
	progStatsOK bool
}

func fdinfoFields(path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// procBPF reads /proc/PID/fd and fdinfo: memlock of each distinct map (the
// kernel's own accounting of the map's memory), and the run-time counters
// of each distinct program.
func procBPF(pid int) (bpfObjects, error) {
	var o bpfObjects
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return o, err
	}
	seenMap := map[string]bool{}
	seenProg := map[string]bool{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		switch target {
		case "anon_inode:bpf-map":
			f := fdinfoFields(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
			id := f["map_id"]
			if f == nil || seenMap[id] {
				continue
			}
			seenMap[id] = true
			o.maps++
			v, _ := strconv.ParseFloat(f["memlock"], 64)
			o.mapMemlock += v
		case "anon_inode:bpf-prog":
			f := fdinfoFields(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
			id := f["prog_id"]
			if f == nil || seenProg[id] {
				continue
			}
			seenProg[id] = true
			o.progs++
			if v, ok := f["run_time_ns"]; ok {
				o.progStatsOK = true
				n, _ := strconv.ParseFloat(v, 64)
				o.progRunNs += n
				c, _ := strconv.ParseFloat(f["run_cnt"], 64)
				o.progRunCnt += c
			}
		}
	}
	return o, nil
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

// hostCPU reads the aggregate line of /proc/stat: busy and total ticks.
func hostCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
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
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid == 2 || ppid == 2 || ppid == self || ourPids[ppid] {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && ourNS[st.Ino] {
			continue
		}
		u, _ := strconv.ParseUint(f[11], 10, 64)
		s, _ := strconv.ParseUint(f[12], 10, 64)
		snap[pid] = float64(u+s) / clkTck
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
		switch name {
		case "tcpdump", "tshark", "dumpcap", "bpftrace", "netwatcher":
			out = append(out, fmt.Sprintf("%s(%d)", name, pid))
			continue
		}
		if hasFD(pid, "anon_inode:bpf-prog") {
			out = append(out, fmt.Sprintf("%s(%d)", name, pid))
		}
	}
	return out
}
