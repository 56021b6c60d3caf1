package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// runOne runs workload w under configuration c: start the tool and wait
// until it is attached, run the workload while sampling the host, sample
// the tool, stop it and read what it printed.
func (e *env) runOne(ctx context.Context, w workload, c config, round int) (res result) {
	res = result{Round: round, Workload: w.name, Config: c.name}
	e.runSeq++
	sleepCtx(ctx, e.o.cooldown)
	if waited, busy := e.waitQuiet(ctx); busy != "" {
		addNote(&res, fmt.Sprintf("host still busy after waiting %s: %s", waited.Round(time.Second), busy))
	} else if waited > time.Second {
		addNote(&res, fmt.Sprintf("waited %s for a quiet host", waited.Round(time.Second)))
	}
	var tool *proc
	var dataDir string
	defer func() {
		if tool != nil {
			tool.stop(syscall.SIGKILL, time.Second)
		}
		if dataDir != "" {
			os.RemoveAll(dataDir)
		}
	}()
	var err error
	switch c.kind {
	case kindNW:
		dataDir = filepath.Join(e.o.tmp, fmt.Sprintf("run%d", e.runSeq))
		ready := dataDir + ".ready"
		defer os.Remove(ready)
		tool, err = e.startNetwatcher(ctx, c, dataDir, ready)
	case kindTcpdump:
		tool, err = e.startTcpdump(ctx)
	case kindBpftrace:
		tool, err = startBpftrace(ctx)
		if err != nil {
			res.Skipped = true
			e.note("bpftrace reference skipped: %v", err)
		}
	}
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.Tool = tool != nil
	sleepCtx(ctx, e.o.settle)
	before, ok := e.measure(ctx, w, tool, &res)
	if !ok || tool == nil {
		return res
	}
	// Let the tool drain what the workload produced, then sample it just
	// before stopping it.
	sleepCtx(ctx, e.o.drain)
	if tool.exited() {
		res.Err = fmt.Sprintf("%s exited during the run: %v: %s", tool.name, tool.err, lastLines(tool.stderr.String(), 3))
		return res
	}
	e.sampleTool(tool, before, &res)
	stopTool(tool, c, &res)
	switch c.kind {
	case kindNW:
		res.LogBytes = dirSize(dataDir)
		readNetwatcherOutput(tool, &res)
	case kindTcpdump:
		readTcpdumpOutput(tool, &res)
	}
	tool = nil
	return res
}

// startNetwatcher starts netwatcher in configuration c and waits for its
// ready file (every probe attached).
func (e *env) startNetwatcher(ctx context.Context, c config, dataDir, ready string) (*proc, error) {
	tool, err := start("netwatcher", startOpts{dir: e.o.tmp}, append([]string{e.o.netwatcher}, c.netwatcherArgs(dataDir, ready)...)...)
	if err == nil {
		err = waitFor(ctx, tool, 60*time.Second, func() bool { _, err := os.Stat(ready); return err == nil })
	}
	return tool, err
}

// startTcpdump starts tcpdump on the server's veth end and waits until it
// listens.
func (e *env) startTcpdump(ctx context.Context) (*proc, error) {
	tool, err := start("tcpdump", startOpts{ns: e.nsB}, "tcpdump", "-i", e.ifB, "-n", "-w", "/dev/null")
	if err == nil {
		err = waitFor(ctx, tool, 15*time.Second, func() bool { return strings.Contains(tool.stderr.String(), "listening on") })
	}
	return tool, err
}

// startBpftrace starts the bpftrace reference and waits until it holds a
// perf event or BPF link (attached).
func startBpftrace(ctx context.Context) (*proc, error) {
	tool, err := start("bpftrace", startOpts{devnull: true}, "bpftrace", "-e", bpftraceScript)
	if err == nil {
		err = waitFor(ctx, tool, 60*time.Second, func() bool { return hasFD(tool.pid(), "anon_inode:[perf_event]", "anon_inode:bpf_link") })
	}
	return tool, err
}

// toolSample is the tool's CPU time and BPF objects at one moment.
type toolSample struct {
	cpu float64
	bpf bpfObjects
}

func sample(tool *proc) toolSample {
	var s toolSample
	s.cpu, _ = procCPU(tool.pid())
	s.bpf, _ = procBPF(tool.pid())
	return s
}

// measure samples the tool (if any), runs the workload and fills in the
// throughput, the host's busy share, and the other processes' CPU and
// tracers during the window. It returns the tool's sample from the start of
// the window, and false if the workload failed.
func (e *env) measure(ctx context.Context, w workload, tool *proc, res *result) (toolSample, bool) {
	var before toolSample
	ourPids := map[int]bool{}
	if tool != nil {
		before = sample(tool)
		ourPids[tool.pid()] = true
	}
	tr0 := foreignTracers(ourPids)
	f0 := foreignSnapshot(e.ourNS, ourPids)
	b0, t0 := hostCPU()
	w0 := time.Now()
	thr, note, err := w.run(ctx, e, false)
	res.Window = time.Since(w0).Seconds()
	b1, t1 := hostCPU()
	res.Foreign = foreignDelta(f0, foreignSnapshot(e.ourNS, ourPids))
	if tr := uniq(append(tr0, foreignTracers(ourPids)...)); len(tr) > 0 {
		res.Tracers = strings.Join(tr, " ")
	}
	if err != nil {
		res.Err = err.Error()
		return before, false
	}
	res.Thr = thr
	addNote(res, note)
	if t1 > t0 {
		res.Busy = 100 * (b1 - b0) / (t1 - t0)
	}
	return before, true
}

// sampleTool fills in the tool's CPU during the window, its peak RSS, its
// BPF maps and programs, and (with BPF stats on) its programs' run time
// during the window.
func (e *env) sampleTool(tool *proc, before toolSample, res *result) {
	cpu1, _ := procCPU(tool.pid())
	res.CPU = cpu1 - before.cpu
	res.RSS, _ = procHWM(tool.pid())
	bpf1, _ := procBPF(tool.pid())
	res.MapMem, res.Maps, res.Progs = bpf1.mapMemlock, bpf1.maps, bpf1.progs
	if e.bpfStats && bpf1.progStatsOK && before.bpf.progStatsOK {
		res.HasBPFNs = true
		res.BPFNs = bpf1.progRunNs - before.bpf.progRunNs
		res.BPFCnt = bpf1.progRunCnt - before.bpf.progRunCnt
		res.BPFStatsNs = e.statsNs
	}
}

// stopTool stops the tool with SIGINT (netwatcher gets 30 s to exit, the
// others 10 s, then SIGKILL) and reads its whole-life CPU time.
func stopTool(tool *proc, c config, res *result) {
	grace := 10 * time.Second
	if c.kind == kindNW {
		grace = 30 * time.Second
	}
	if !tool.stop(syscall.SIGINT, grace) {
		addNote(res, fmt.Sprintf("%s did not stop within %s of SIGINT (killed)", tool.name, grace))
	}
	if ps := tool.cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			res.CPUTotal = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		}
	}
}

// readNetwatcherOutput reads netwatcher's final stats line: events, losses,
// undecodable records; and notes a failed exit.
func readNetwatcherOutput(tool *proc, res *result) {
	st, ok := statsLine(tool.stdout.String())
	if !ok {
		res.Err = fmt.Sprintf("netwatcher printed no stats line (exit %v): %s", tool.err, lastLines(tool.stderr.String(), 3))
		return
	}
	s := readNWStats(st)
	res.HasEv = true
	res.Events = s.events
	res.Lost += s.lost
	res.LostWhat = s.lostWhat
	if s.undecodable > 0 {
		addNote(res, fmt.Sprintf("undecodable=%.0f", s.undecodable))
	}
	if tool.err != nil {
		addNote(res, fmt.Sprintf("netwatcher exit: %v", tool.err))
	}
}

// readTcpdumpOutput reads tcpdump's final counts from its stderr: packets
// captured (its events) and dropped by the kernel (its losses).
func readTcpdumpOutput(tool *proc, res *result) {
	errOut := tool.stderr.String()
	if v, ok := countBefore(errOut, "packets captured"); ok {
		res.HasEv, res.Events = true, v
	}
	if v, ok := countBefore(errOut, "packets dropped by kernel"); ok {
		res.Lost = v
		if v > 0 {
			res.LostWhat = fmt.Sprintf("dropped by kernel=%.0f", v)
		}
	}
}

// waitQuiet waits until no other tracer runs and other processes use less
// than 10% of the CPUs, for at most --quiet-wait. It returns how long it
// waited and, if the host never got quiet, why.
func (e *env) waitQuiet(ctx context.Context) (time.Duration, string) {
	if e.o.quietWait <= 0 {
		return 0, ""
	}
	start := time.Now()
	const sample = 500 * time.Millisecond
	why := ""
	for ctx.Err() == nil {
		tr := foreignTracers(nil)
		a := foreignSnapshot(e.ourNS, nil)
		sleepCtx(ctx, sample)
		cpu := foreignDelta(a, foreignSnapshot(e.ourNS, nil))
		share := cpu / (sample.Seconds() * float64(runtime.NumCPU()))
		why = busyReason(tr, share)
		if why == "" {
			return time.Since(start), ""
		}
		if time.Since(start) > e.o.quietWait {
			return time.Since(start), why
		}
	}
	return time.Since(start), why
}

// busyReason says why the host is not quiet (other tracers, or other
// processes above 10% of the CPUs), "" if it is.
func busyReason(tracers []string, share float64) string {
	switch {
	case len(tracers) > 0:
		return "other tracer(s) running: " + strings.Join(tracers, " ")
	case share > 0.10:
		return fmt.Sprintf("other processes used %.0f%% of the CPUs", 100*share)
	}
	return ""
}

// waitFor polls ok until it holds, the process exits, ctx ends or timeout
// passes.
func waitFor(ctx context.Context, p *proc, timeout time.Duration, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if p.exited() {
			return fmt.Errorf("%s exited before it was ready: %v: %s", p.name, p.err, lastLines(p.stderr.String(), 3))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %s", p.name, timeout, lastLines(p.stderr.String(), 3))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
