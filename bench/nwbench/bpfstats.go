package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// BPF statistics: the maps and programs a tool holds (from /proc/<pid>/fd
// and fdinfo), the memory of its maps (memlock) and, with run-time
// statistics on, the time its programs ran (run_time_ns, run_cnt).

// enableBPFStats turns on run_time_ns/run_cnt accounting for every BPF
// program while the returned fd stays open (it reverts when the fd closes,
// even if the bench is killed).
func enableBPFStats() (int, error) {
	const bpfEnableStats = 32 // BPF_ENABLE_STATS
	var attr [8]byte          // enable_stats.type = BPF_STATS_RUN_TIME (0)
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfEnableStats, uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// emptyRuns is what an empty program (two instructions) costs per run
// through BPF_PROG_TEST_RUN: the test run's own time per run (dur) and,
// with the run-time statistics on, the run_time_ns they count per run.
type emptyRuns struct{ dur, runTime float64 }

// measureEmpty runs an empty socket filter and an empty XDP program a
// million times, three rounds each, and keeps the smallest figures: the
// costs are constant, noise and each context's own work only add.
func measureEmpty() (emptyRuns, error) {
	best := emptyRuns{-1, -1}
	for _, typ := range []ebpf.ProgramType{ebpf.SocketFilter, ebpf.XDP} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: typ, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
		if err != nil {
			return best, fmt.Errorf("%v: %w", typ, err)
		}
		for range 3 {
			s0, err1 := prog.Stats()
			_, dur, err2 := prog.Benchmark(make([]byte, 64), 1_000_000, nil)
			s1, err3 := prog.Stats()
			if err := errors.Join(err1, err2, err3); err != nil {
				prog.Close()
				return best, fmt.Errorf("%v: %w", typ, err)
			}
			if d := float64(dur.Nanoseconds()); best.dur < 0 || d < best.dur {
				best.dur = d
			}
			if n := s1.RunCount - s0.RunCount; n > 0 {
				if rt := float64(s1.Runtime-s0.Runtime) / float64(n); best.runTime < 0 || rt < best.runTime {
					best.runTime = rt
				}
			}
		}
		prog.Close()
	}
	return best, nil
}

// statsNs is what the run-time statistics add to each run's run_time_ns:
// the kernel times a run between two sched_clock() reads, and about half
// of the two reads' cost falls between them. The statistics' whole cost
// per run is on.dur - off.dur (67 ns in this project's VM, kvm-clock), so
// the share inside is taken as half of it, and never more than what an
// empty program counts (on.runTime: 41-46 ns here, where the empty
// program takes ~21 ns a run with the statistics off, the test run's loop
// included). Every program's run_time_ns has it, whatever the program
// does: the bench takes runs × this off the programs' time
// (result.bpfNsNet).
func statsNs(off, on emptyRuns) (float64, error) {
	if on.runTime <= 0 {
		return 0, errors.New("no runs counted: statistics off")
	}
	if off.dur <= 0 || on.dur <= off.dur {
		return 0, fmt.Errorf("test runs took %.1f ns with the statistics, %.1f without", on.dur, off.dur)
	}
	return min(on.runTime, (on.dur-off.dur)/2), nil
}

// bpfStatsEnabled reports whether kernel.bpf_stats_enabled is on (someone
// else turned the accounting on for the whole host).
func bpfStatsEnabled() bool {
	b, err := os.ReadFile("/proc/sys/kernel/bpf_stats_enabled")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// bpfObjects summarises the BPF maps and programs a process holds fds for.
type bpfObjects struct {
	maps        int
	mapMemlock  float64 // bytes, sum over distinct maps
	progs       int
	progRunNs   float64 // sum of run_time_ns over distinct programs (needs BPF stats enabled)
	progRunCnt  float64
	progStatsOK bool

	seenMap, seenProg map[string]bool
}

// parseFdinfo parses /proc/<pid>/fdinfo/<fd> ("key:\tvalue" lines).
func parseFdinfo(text string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func fdinfoFields(path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return parseFdinfo(string(b))
}

// firstSeen reports whether the fdinfo f (nil: unreadable) is of an object
// (named by its id field key) not in *seen yet, and adds it there.
func firstSeen(seen *map[string]bool, f map[string]string, key string) bool {
	id := f[key]
	if f == nil || (*seen)[id] {
		return false
	}
	if *seen == nil {
		*seen = map[string]bool{}
	}
	(*seen)[id] = true
	return true
}

// addMap counts a map fd's fdinfo (nil: unreadable), once per map_id: its
// memlock is the kernel's own accounting of the map's memory.
func (o *bpfObjects) addMap(f map[string]string) {
	if !firstSeen(&o.seenMap, f, "map_id") {
		return
	}
	o.maps++
	v, _ := strconv.ParseFloat(f["memlock"], 64)
	o.mapMemlock += v
}

// addProg counts a program fd's fdinfo (nil: unreadable), once per prog_id,
// with its run_time_ns and run_cnt if the kernel reports them.
func (o *bpfObjects) addProg(f map[string]string) {
	if !firstSeen(&o.seenProg, f, "prog_id") {
		return
	}
	o.progs++
	if v, ok := f["run_time_ns"]; ok {
		o.progStatsOK = true
		n, _ := strconv.ParseFloat(v, 64)
		o.progRunNs += n
		c, _ := strconv.ParseFloat(f["run_cnt"], 64)
		o.progRunCnt += c
	}
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
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		switch target {
		case "anon_inode:bpf-map":
			o.addMap(fdinfoFields(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name())))
		case "anon_inode:bpf-prog":
			o.addProg(fdinfoFields(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name())))
		}
	}
	return o, nil
}
