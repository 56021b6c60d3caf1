// Command nwbench measures what netwatcher costs: it runs TCP workloads
// between two network namespaces joined by a veth pair, with netwatcher off,
// in several configurations, and under reference tracers (tcpdump,
// bpftrace), alternating the configurations round-robin over several rounds,
// and prints a markdown table of medians. It is started by bench/run, which
// builds the binaries it needs; see bench/README.md.
//
// Files by role: main.go (flags, the rounds), netns.go (namespaces, veth,
// servers), workloads.go and configs.go (what runs), runner.go (one
// measured run), children.go (child processes), cpuusage.go (/proc CPU and
// RSS sampling), bpfstats.go (BPF maps and programs from fdinfo),
// parse.go (nwpeer, wrk/ab, tcpdump and netwatcher output), result.go (one
// run's result), summary.go (medians and ratios), report.go and
// targets.go (the markdown report), format.go (number formatting).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type options struct {
	rounds     int
	quick      bool
	dur        time.Duration
	bulkBytes  int64
	netwatcher string
	nwpeer     string
	id         string
	tmp        string
	out        string
	bpfStats   bool
	configs    string
	workloads  string
	cooldown   time.Duration
	settle     time.Duration
	drain      time.Duration
	quietWait  time.Duration
	warm       bool
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "alternating rounds (each runs every workload under every configuration)")
	flag.BoolVar(&o.quick, "quick", false, "smoke run (~2 min): 1 round, 2s workloads, 3 GB bulk")
	flag.DurationVar(&o.dur, "duration", 0, "length of the churn, rr and http workloads (default 5s, --quick 2s)")
	flag.Int64Var(&o.bulkBytes, "bulk-bytes", 0, "bytes per bulk transfer (default 10e9, --quick 3e9)")
	flag.StringVar(&o.netwatcher, "netwatcher", "", "netwatcher binary")
	flag.StringVar(&o.nwpeer, "nwpeer", "", "nwpeer binary")
	flag.StringVar(&o.id, "id", strconv.Itoa(os.Getpid()), "unique id in namespace/interface names (bench/run passes its pid)")
	flag.StringVar(&o.tmp, "tmp", "", "scratch directory (netwatcher data dirs)")
	flag.StringVar(&o.out, "out", "", "write the markdown report here too")
	flag.BoolVar(&o.bpfStats, "bpf-stats", false, "enable kernel BPF run-time statistics (BPF_ENABLE_STATS) and report the time spent in netwatcher's BPF programs; adds a little overhead to every BPF program")
	flag.StringVar(&o.configs, "configs", "", "comma-separated subset of configurations (names as in the table: off,-q --no-packets,-q,-q -ax,-q -x -r,-q -t,-q -tixre,tcpdump,bpftrace)")
	flag.StringVar(&o.workloads, "workloads", "", "comma-separated subset of workloads (churn,rr,bulk,http)")
	flag.DurationVar(&o.quietWait, "quiet-wait", 4*time.Second, "before each run, wait up to this long for the host to be quiet (no other tracer, other processes < 10% CPU); 0: don't wait")
	flag.BoolVar(&o.warm, "warm-memory", true, "touch the host's free memory once before the runs (see warm.go: a fresh VM's first touch of a page is a host fault, and log writes would pay it)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "nwbench: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	applyDefaults(&o, flagSet("rounds"))
	if o.rounds < 1 || o.netwatcher == "" || o.nwpeer == "" {
		fmt.Fprintln(os.Stderr, "nwbench: need --rounds >= 1, --netwatcher and --nwpeer (use bench/run)")
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "nwbench: must run as root (sudo make bench)")
		os.Exit(1)
	}
	if o.tmp == "" {
		d, err := os.MkdirTemp("", "nwb-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "nwbench:", err)
			os.Exit(1)
		}
		defer os.RemoveAll(d)
		o.tmp = d
	}
	os.Exit(run(o))
}

// applyDefaults fills in what the flags left at zero: durations and sizes,
// and the shorter pauses and single round of --quick (unless --rounds was
// given).
func applyDefaults(o *options, roundsSet bool) {
	if o.quick && !roundsSet {
		o.rounds = 1
	}
	if o.dur == 0 {
		o.dur = 5 * time.Second
		if o.quick {
			o.dur = 2 * time.Second
		}
	}
	if o.bulkBytes == 0 {
		o.bulkBytes = 10e9
		if o.quick {
			o.bulkBytes = 3e9
		}
	}
	o.cooldown, o.settle, o.drain = time.Second, 500*time.Millisecond, time.Second
	if o.quick {
		o.cooldown, o.drain = 500*time.Millisecond, 500*time.Millisecond
	}
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func run(o options) (code int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	e := newEnv(o)
	defer func() {
		if r := recover(); r != nil {
			logf("panic: %v", r)
			code = 1
		}
		killAllChildren()
		e.teardown()
	}()
	sweepStale()
	if err := e.setup(); err != nil {
		logf("setup failed: %v", err)
		return 1
	}
	var off emptyRuns
	var offErr error
	if o.bpfStats && !bpfStatsEnabled() {
		off, offErr = measureEmpty() // before the statistics are on (statsNs)
	}
	if o.bpfStats {
		fd, err := enableBPFStats()
		if err != nil {
			e.note("--bpf-stats: BPF_ENABLE_STATS failed (%v): no BPF program times", err)
		} else {
			defer unix.Close(fd)
			e.bpfStats = true
		}
	} else if bpfStatsEnabled() {
		e.bpfStats = true
		e.note("kernel.bpf_stats_enabled=1 on this host: every BPF program pays for run-time accounting")
	}
	if e.bpfStats {
		on, err := measureEmpty()
		var ns float64
		if err == nil {
			err = offErr
		}
		if err == nil {
			ns, err = statsNs(off, on)
		}
		if err != nil {
			e.note("BPF run-time accounting not calibrated (%v): the programs' times include it", err)
		} else {
			e.statsNs = ns
			e.note("BPF run-time accounting: %.1f ns of each program run's run_time_ns is its own on this host (an empty program through BPF_PROG_TEST_RUN: %.1f ns a run without the statistics, %.1f with them, %.1f counted); \"BPF prog s\" and the direct CPU share have runs × %.1f ns taken off (bench/README.md, Columns)", ns, off.dur, on.dur, on.runTime, ns)
		}
	}
	wls := selectWorkloads(o.workloads)
	cfgs := selectConfigs(o.configs)
	if len(wls) == 0 || len(cfgs) == 0 {
		logf("no workload or configuration selected")
		return 2
	}
	if o.warm {
		n, took, err := warmMemory(1 << 30)
		if err != nil {
			e.note("--warm-memory: %v (after %.1f GiB)", err, float64(n)/(1<<30))
		} else {
			e.note("memory warmed: %.1f GiB of free memory touched once before the runs (%.0f s; see bench/nwbench/warm.go)", float64(n)/(1<<30), took.Seconds())
		}
	}
	start := time.Now()
	logf("warm-up")
	for _, w := range wls {
		if ctx.Err() != nil {
			break
		}
		if _, _, err := w.run(ctx, e, true); err != nil {
			logf("warm-up %s: %v", w.name, err)
		}
	}
	var results []result
	for r := 0; r < o.rounds && ctx.Err() == nil; r++ {
		for wi, w := range wls {
			// Rotate the order every round (and per workload), so that no
			// configuration always runs first or right after another.
			n := len(cfgs)
			for k := 0; k < n && ctx.Err() == nil; k++ {
				c := cfgs[(k+r+wi)%n]
				if !c.runsWith(w.name) {
					continue
				}
				if err := e.serversAlive(); err != nil {
					logf("%v", err)
					return 1
				}
				res := e.runOne(ctx, w, c, r)
				results = append(results, res)
				logf("%s", res.summary(o.rounds))
			}
		}
	}
	if ctx.Err() != nil {
		logf("interrupted: no report")
		return 130
	}
	rep := report(e, wls, cfgs, results, time.Since(start))
	fmt.Print(rep)
	if o.out != "" {
		writeResults(o.out, rep, results)
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[nwbench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
