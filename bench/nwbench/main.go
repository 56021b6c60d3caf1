// Command nwbench measures what netwatcher costs: it runs TCP workloads
// between two network namespaces joined by a veth pair, with netwatcher off,
// in several configurations, and under reference tracers (tcpdump,
// bpftrace), alternating the configurations round-robin over several rounds,
// and prints a markdown table of medians. It is started by bench/run, which
// builds the binaries it needs; see bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

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
}

// Addresses: 198.18.250.0/24 and fd00:4e57:fa::/64 (benchmarking ranges),
// only inside the two namespaces the bench creates.
const (
	addrA  = "198.18.250.1"
	addrB  = "198.18.250.2"
	addr6A = "fd00:4e57:fa::1"
	addr6B = "fd00:4e57:fa::2"

	portEcho = 7001
	portSink = 7002
	portHTTP = 7003
)

type env struct {
	o        options
	nsA, nsB string
	ifA, ifB string
	servers  []*proc
	httpTool string // wrk or ab
	notes    []string
	runSeq   int
	bpfStats bool            // BPF run-time statistics are on
	ourNS    map[uint64]bool // inodes of the bench's namespaces
}

func (e *env) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for _, n := range e.notes {
		if n == msg {
			return
		}
	}
	e.notes = append(e.notes, msg)
	logf("note: %s", msg)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[nwbench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
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
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "nwbench: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if o.quick && !flagSet("rounds") {
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
	e := &env{o: o,
		nsA: "nwb-" + o.id + "-a", nsB: "nwb-" + o.id + "-b",
		ifA: "nwb-" + o.id + "a", ifB: "nwb-" + o.id + "b",
	}
	if len(e.ifA) > 15 { // IFNAMSIZ
		e.ifA, e.ifB = "nwb-"+o.id[len(o.id)-8:]+"a", "nwb-"+o.id[len(o.id)-8:]+"b"
	}
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
	if o.bpfStats {
		fd, err := enableBPFStats()
		if err != nil {
			e.note("--bpf-stats: BPF_ENABLE_STATS failed (%v): no BPF program times", err)
		} else {
			defer unix.Close(fd)
			e.bpfStats = true
		}
	} else if b, err := os.ReadFile("/proc/sys/kernel/bpf_stats_enabled"); err == nil && strings.TrimSpace(string(b)) == "1" {
		e.bpfStats = true
		e.note("kernel.bpf_stats_enabled=1 on this host: every BPF program pays for run-time accounting")
	}
	wls := selectWorkloads(o.workloads)
	cfgs := selectConfigs(o.configs)
	if len(wls) == 0 || len(cfgs) == 0 {
		logf("no workload or configuration selected")
		return 2
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
				if c.only != "" && !slices.Contains(strings.Split(c.only, ","), w.name) {
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
		if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err == nil {
			err = os.WriteFile(o.out, []byte(rep), 0o644)
			if err != nil {
				logf("write %s: %v", o.out, err)
			} else {
				logf("report written to %s", o.out)
			}
			if js, err := json.MarshalIndent(results, "", " "); err == nil {
				_ = os.WriteFile(strings.TrimSuffix(o.out, ".md")+".json", append(js, '\n'), 0o644)
			}
		}
	}
	return 0
}

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

// ---- namespaces -------------------------------------------------------

// sweepStale removes nwb- namespaces left by a bench that died without
// cleaning up, and only those whose creator (the pid in the name) is gone.
func sweepStale() {
	ents, _ := os.ReadDir("/run/netns")
	for _, d := range ents {
		name := d.Name()
		rest, ok := strings.CutPrefix(name, "nwb-")
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue
		}
		logf("removing stale namespace %s", name)
		deleteNS(name)
	}
}

func deleteNS(name string) {
	if _, err := os.Stat("/run/netns/" + name); err != nil {
		return
	}
	for attempt := 0; attempt < 50; attempt++ {
		out, _ := runCmd(5*time.Second, "", "ip", "netns", "pids", name)
		pids := strings.Fields(out)
		if len(pids) == 0 {
			break
		}
		for _, s := range pids {
			if pid, err := strconv.Atoi(s); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := runCmd(10*time.Second, "", "ip", "netns", "del", name); err != nil {
		logf("cleanup: %v", err)
	}
}

func (e *env) setup() error {
	t := 10 * time.Second
	steps := [][]string{
		{"", "ip", "netns", "add", e.nsA},
		{"", "ip", "netns", "add", e.nsB},
		{"", "ip", "link", "add", "name", e.ifA, "netns", e.nsA, "type", "veth", "peer", "name", e.ifB, "netns", e.nsB},
		{e.nsA, "ip", "link", "set", "lo", "up"},
		{e.nsB, "ip", "link", "set", "lo", "up"},
		{e.nsA, "ip", "link", "set", e.ifA, "up"},
		{e.nsB, "ip", "link", "set", e.ifB, "up"},
		{e.nsA, "ip", "addr", "add", addrA + "/24", "dev", e.ifA},
		{e.nsB, "ip", "addr", "add", addrB + "/24", "dev", e.ifB},
		{e.nsA, "ip", "addr", "add", addr6A + "/64", "dev", e.ifA, "nodad"},
		{e.nsB, "ip", "addr", "add", addr6B + "/64", "dev", e.ifB, "nodad"},
	}
	for _, ns := range []string{e.nsA, e.nsB} {
		// Without these, TIME_WAIT exhaustion makes the second churn run
		// ~10x slower than the first. And a bounded TIME_WAIT population:
		// connect() scans for a free port among them, so with ~60k
		// TIME_WAIT sockets left by the previous churn runs (they live
		// 60 s) a run was up to 25% slower depending on what ran before it
		// (measured: the same configuration 0.74 and 0.98 of off in two
		// rounds). With at most 4096 each run starts from the same state.
		steps = append(steps,
			[]string{ns, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1"},
			[]string{ns, "sysctl", "-q", "-w", "net.ipv4.tcp_max_tw_buckets=4096"},
			[]string{ns, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=10000 65000"},
			[]string{ns, "sysctl", "-q", "-w", "net.core.somaxconn=4096"},
		)
	}
	logf("namespaces %s (clients) and %s (servers), veth %s/%s", e.nsA, e.nsB, e.ifA, e.ifB)
	for _, s := range steps {
		if _, err := runCmd(t, s[0], s[1:]...); err != nil {
			return err
		}
	}
	var err error
	for try := 0; try < 20; try++ {
		if _, err = runCmd(t, e.nsA, "ping", "-n", "-q", "-c1", "-W1", addrB); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("veth does not work: %w", err)
	}
	e.ourNS = map[uint64]bool{}
	for _, ns := range []string{e.nsA, e.nsB} {
		var st syscall.Stat_t
		if err := syscall.Stat("/run/netns/"+ns, &st); err == nil {
			e.ourNS[st.Ino] = true
		}
	}
	srv := []struct {
		mode string
		port int
	}{{"--echo", portEcho}, {"--sink", portSink}, {"--http", portHTTP}}
	for _, s := range srv {
		p, err := start("nwpeer serve "+s.mode, startOpts{ns: e.nsB, stdinPipe: true, devnull: true},
			e.o.nwpeer, "serve", "-l", fmt.Sprintf("%s:%d", addrB, s.port), s.mode, "--stdin-exit", "--duration", "3h")
		if err != nil {
			return err
		}
		e.servers = append(e.servers, p)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := runCmd(t, e.nsB, "ss", "-Htln")
		n := 0
		for _, s := range srv {
			if strings.Contains(out, fmt.Sprintf("%s:%d ", addrB, s.port)) {
				n++
			}
		}
		if n == len(srv) {
			break
		}
		if err := e.serversAlive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("servers not listening after 15s: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p, err := lookPath("wrk"); err == nil {
		e.httpTool = p
	} else if p, err := lookPath("ab"); err == nil {
		e.httpTool = p
		e.note("wrk not found: http workload uses ab (apache2-utils), numbers not comparable with wrk's")
	} else {
		e.note("neither wrk nor ab found: http workload skipped")
	}
	return nil
}

func (e *env) serversAlive() error {
	for _, p := range e.servers {
		if p.exited() {
			return fmt.Errorf("%s exited: %v: %s", p.name, p.err, strings.TrimSpace(p.stderr.String()))
		}
	}
	return nil
}

func (e *env) teardown() {
	for _, p := range e.servers {
		p.stop(syscall.SIGTERM, 3*time.Second)
	}
	deleteNS(e.nsA)
	deleteNS(e.nsB)
}

// ---- workloads ----------------------------------------------------------

type workload struct {
	name, unit string
	// run returns the throughput in unit, and a note on anything odd.
	run func(ctx context.Context, e *env, warm bool) (float64, string, error)
}

var numRe = `([0-9]+(?:\.[0-9]+)?)`

func field(out, key string) (float64, bool) {
	m := regexp.MustCompile(`(?:^|\s)` + regexp.QuoteMeta(key) + `=` + numRe).FindStringSubmatch(out)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

func (e *env) peer(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	return runCmdCtx(ctx, timeout, e.nsA, append([]string{e.o.nwpeer}, args...)...)
}

func allWorkloads() []workload {
	return []workload{
		{"churn", "conn/s", func(ctx context.Context, e *env, warm bool) (float64, string, error) {
			d := e.o.dur
			if warm {
				d = time.Second
			}
			// Time-bounded: -n is never reached; the line is printed at the cap.
			out, err := e.peer(ctx, d+30*time.Second, "churn", "-r", fmt.Sprintf("%s:%d", addrB, portEcho),
				"-n", "100000000", "-c", "8", "--duration", d.String())
			if err != nil {
				return 0, "", err
			}
			rate, ok := field(out, "rate")
			if !ok {
				return 0, "", fmt.Errorf("churn: no rate in %q", out)
			}
			note := ""
			if errs, _ := field(out, "errors"); errs > 0 {
				first := ""
				if m := regexp.MustCompile(`first error: ([^\n]+)`).FindStringSubmatch(out); m != nil {
					first = m[1]
				}
				if d <= 5*time.Second && strings.HasSuffix(first, "i/o timeout") {
					// nwpeer's dial timeout is 5 s: within a run of at most
					// 5 s a dial can only time out at the --duration cap,
					// where nwpeer's workers spin on the expired deadline
					// and count each attempt. Harmless to the rate.
					note = fmt.Sprintf("%.0f dials cut by the duration cap (counted as errors by nwpeer; harmless)", errs)
				} else {
					note = fmt.Sprintf("%.0f connection errors (first: %s)", errs, first)
				}
			}
			return rate, note, nil
		}},
		{"rr", "round trips/s", func(ctx context.Context, e *env, warm bool) (float64, string, error) {
			d := e.o.dur
			if warm {
				d = time.Second
			}
			out, err := e.peer(ctx, d+30*time.Second, "rr", "-r", fmt.Sprintf("%s:%d", addrB, portEcho),
				"-c", "8", "--size", "1024", "--duration", d.String())
			if err != nil {
				return 0, "", err
			}
			rate, ok := field(out, "rate")
			if !ok {
				return 0, "", fmt.Errorf("rr: no rate in %q", out)
			}
			return rate, "", nil
		}},
		{"bulk", "Mbit/s", func(ctx context.Context, e *env, warm bool) (float64, string, error) {
			n := e.o.bulkBytes
			if warm {
				n = 1e9
			}
			out, err := e.peer(ctx, 150*time.Second, "bulk", "-r", fmt.Sprintf("%s:%d", addrB, portSink),
				"--bytes", strconv.FormatInt(n, 10), "--duration", "120s")
			if err != nil {
				return 0, "", err
			}
			v, ok := field(out, "mbit")
			if !ok {
				return 0, "", fmt.Errorf("bulk: no mbit in %q", out)
			}
			return v, "", nil
		}},
		{"http", "req/s", func(ctx context.Context, e *env, warm bool) (float64, string, error) {
			if e.httpTool == "" {
				return 0, "", errors.New("no wrk or ab")
			}
			d := e.o.dur
			if warm {
				d = time.Second
			}
			url := fmt.Sprintf("http://%s:%d/", addrB, portHTTP)
			secs := strconv.Itoa(int((d + time.Second - 1) / time.Second))
			if strings.HasSuffix(e.httpTool, "ab") {
				out, err := runCmdCtx(ctx, d+30*time.Second, e.nsA, e.httpTool, "-q", "-k", "-c", "16", "-t", secs, "-n", "100000000", url)
				if err != nil {
					return 0, "", err
				}
				m := regexp.MustCompile(`Requests per second:\s+` + numRe).FindStringSubmatch(out)
				if m == nil {
					return 0, "", fmt.Errorf("ab: no rate in %q", out)
				}
				v, _ := strconv.ParseFloat(m[1], 64)
				note := ""
				if m := regexp.MustCompile(`(?:Failed|Non-2xx) [a-z ]*:\s+([1-9][0-9]*)`).FindString(out); m != "" {
					note = strings.Join(strings.Fields(m), " ")
				}
				return v, note, nil
			}
			out, err := runCmdCtx(ctx, d+30*time.Second, e.nsA, e.httpTool, "-t2", "-c16", "-d"+secs+"s", "--timeout", "5s", url)
			if err != nil {
				return 0, "", err
			}
			m := regexp.MustCompile(`Requests/sec:\s+` + numRe).FindStringSubmatch(out)
			if m == nil {
				return 0, "", fmt.Errorf("wrk: no rate in %q", out)
			}
			v, _ := strconv.ParseFloat(m[1], 64)
			var notes []string
			for _, re := range []string{`Non-2xx or 3xx responses: [0-9]+`, `Socket errors: [^\n]+`} {
				if m := regexp.MustCompile(re).FindString(out); m != "" {
					notes = append(notes, m)
				}
			}
			return v, strings.Join(notes, "; "), nil
		}},
	}
}

func selectWorkloads(list string) []workload {
	all := allWorkloads()
	if list == "" {
		return all
	}
	var out []workload
	for _, w := range all {
		for _, n := range strings.Split(list, ",") {
			if strings.TrimSpace(n) == w.name {
				out = append(out, w)
			}
		}
	}
	return out
}

// ---- configurations -------------------------------------------------------

type kind int

const (
	kindOff kind = iota
	kindNW
	kindTcpdump
	kindBpftrace
)

type config struct {
	name string
	kind kind
	args []string
	only string // run with these workloads only (comma-separated)
}

func allConfigs() []config {
	return []config{
		{name: "off", kind: kindOff},
		{name: "-q --no-packets", kind: kindNW, args: []string{"-q", "--no-packets"}},
		{name: "-q", kind: kindNW, args: []string{"-q"}},
		{name: "-q -ax", kind: kindNW, args: []string{"-q", "-a", "-x"}, only: "churn,rr"},
		{name: "-q -x -r", kind: kindNW, args: []string{"-q", "-x", "-r"}},
		{name: "-q -t", kind: kindNW, args: []string{"-q", "-t"}},
		{name: "-q -tixre", kind: kindNW, args: []string{"-q", "-tixre"}},
		{name: "tcpdump", kind: kindTcpdump},
		{name: "bpftrace", kind: kindBpftrace, only: "churn"},
	}
}

func selectConfigs(list string) []config {
	all := allConfigs()
	if list == "" {
		return all
	}
	var out []config
	for _, c := range all {
		for _, n := range strings.Split(list, ",") {
			if strings.TrimSpace(n) == c.name {
				out = append(out, c)
			}
		}
	}
	return out
}

// bpftraceScript prints one line per TCP state change (to /dev/null); the
// interval probe is only a safety stop.
const bpftraceScript = `tracepoint:sock:inet_sock_set_state { printf("%d %s %d %d\n", pid, comm, args->oldstate, args->newstate); } interval:s:900 { exit(); }`

// ---- one run ----------------------------------------------------------------

type result struct {
	Round    int     `json:"round"`
	Workload string  `json:"workload"`
	Config   string  `json:"config"`
	Thr      float64 `json:"throughput"`
	Busy     float64 `json:"host_busy_pct"`
	Window   float64 `json:"window_s"`                  // the workload's wall time
	Foreign  float64 `json:"foreign_cpu_s"`             // CPU of other processes on the host meanwhile
	Tracers  string  `json:"foreign_tracers,omitempty"` // other tracers running at the end of the window
	Tool     bool    `json:"tool"`
	CPU      float64 `json:"tool_cpu_s"`       // during the measuring window
	CPUTotal float64 `json:"tool_cpu_total_s"` // whole process life (rusage)
	RSS      float64 `json:"peak_rss_bytes"`
	MapMem   float64 `json:"bpf_map_bytes"`
	Maps     int     `json:"bpf_maps"`
	Progs    int     `json:"bpf_progs"`
	HasEv    bool    `json:"has_events"`
	Events   float64 `json:"events"`
	Lost     float64 `json:"lost"`
	LostWhat string  `json:"lost_detail,omitempty"`
	LogBytes float64 `json:"log_bytes"`
	BPFNs    float64 `json:"bpf_prog_ns"`
	BPFCnt   float64 `json:"bpf_prog_runs"`
	HasBPFNs bool    `json:"has_bpf_ns"`
	Note     string  `json:"note,omitempty"`
	Err      string  `json:"error,omitempty"`
	Skipped  bool    `json:"skipped,omitempty"`
}

func (r result) summary(rounds int) string {
	s := fmt.Sprintf("[round %d/%d] %-5s %-10s ", r.Round+1, rounds, r.Workload, r.Config)
	if r.Err != "" {
		return s + "FAILED: " + r.Err
	}
	s += fmt.Sprintf("%12.1f  busy %3.0f%%  other procs %.2fs", r.Thr, r.Busy, r.Foreign)
	if r.Tool {
		s += fmt.Sprintf("  cpu %.2fs rss %.1fMiB maps %.2fMiB", r.CPU, r.RSS/mib, r.MapMem/mib)
		if r.HasEv {
			s += fmt.Sprintf(" events %.0f lost %.0f", r.Events, r.Lost)
		}
	}
	if r.Note != "" {
		s += "  (" + r.Note + ")"
	}
	return s
}

func addNote(r *result, n string) {
	if n == "" {
		return
	}
	if r.Note != "" {
		r.Note += "; "
	}
	r.Note += n
}

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
		args := append(append([]string{}, c.args...), "-o", "json", "--data-dir", dataDir, "--ready-file", ready, "--duration", "10m")
		tool, err = start("netwatcher", startOpts{dir: e.o.tmp}, append([]string{e.o.netwatcher}, args...)...)
		if err == nil {
			err = waitFor(ctx, tool, 60*time.Second, func() bool { _, err := os.Stat(ready); return err == nil })
		}
	case kindTcpdump:
		tool, err = start("tcpdump", startOpts{ns: e.nsB}, "tcpdump", "-i", e.ifB, "-n", "-w", "/dev/null")
		if err == nil {
			err = waitFor(ctx, tool, 15*time.Second, func() bool { return strings.Contains(tool.stderr.String(), "listening on") })
		}
	case kindBpftrace:
		tool, err = start("bpftrace", startOpts{devnull: true}, "bpftrace", "-e", bpftraceScript)
		if err == nil {
			err = waitFor(ctx, tool, 60*time.Second, func() bool { return hasFD(tool.pid(), "anon_inode:[perf_event]", "anon_inode:bpf_link") })
		}
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
	var cpu0 float64
	var bpf0 bpfObjects
	if tool != nil {
		cpu0, _ = procCPU(tool.pid())
		bpf0, _ = procBPF(tool.pid())
	}
	ourPids := map[int]bool{}
	if tool != nil {
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
		return res
	}
	res.Thr = thr
	addNote(&res, note)
	if t1 > t0 {
		res.Busy = 100 * (b1 - b0) / (t1 - t0)
	}
	if tool == nil {
		return res
	}
	// Let the tool drain what the workload produced, then sample it just
	// before stopping it.
	sleepCtx(ctx, e.o.drain)
	if tool.exited() {
		res.Err = fmt.Sprintf("%s exited during the run: %v: %s", tool.name, tool.err, lastLines(tool.stderr.String(), 3))
		return res
	}
	cpu1, _ := procCPU(tool.pid())
	res.CPU = cpu1 - cpu0
	res.RSS, _ = procHWM(tool.pid())
	bpf1, _ := procBPF(tool.pid())
	res.MapMem, res.Maps, res.Progs = bpf1.mapMemlock, bpf1.maps, bpf1.progs
	if e.bpfStats && bpf1.progStatsOK && bpf0.progStatsOK {
		res.HasBPFNs = true
		res.BPFNs = bpf1.progRunNs - bpf0.progRunNs
		res.BPFCnt = bpf1.progRunCnt - bpf0.progRunCnt
	}
	grace := 10 * time.Second
	if c.kind == kindNW {
		grace = 30 * time.Second
	}
	if !tool.stop(syscall.SIGINT, grace) {
		addNote(&res, fmt.Sprintf("%s did not stop within %s of SIGINT (killed)", tool.name, grace))
	}
	if ps := tool.cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			res.CPUTotal = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		}
	}
	switch c.kind {
	case kindNW:
		res.LogBytes = dirSize(dataDir)
		st, ok := statsLine(tool.stdout.String())
		if !ok {
			res.Err = fmt.Sprintf("netwatcher printed no stats line (exit %v): %s", tool.err, lastLines(tool.stderr.String(), 3))
			return res
		}
		res.HasEv = true
		res.Events = st["events"]
		var what []string
		for k, v := range st {
			// Every loss counter: lost_* and *_full (ring, queue, tables).
			if (strings.HasPrefix(k, "lost_") || strings.HasSuffix(k, "_full")) && v > 0 {
				res.Lost += v
				what = append(what, fmt.Sprintf("%s=%.0f", k, v))
			}
		}
		res.LostWhat = strings.Join(what, " ")
		if v := st["undecodable"]; v > 0 {
			addNote(&res, fmt.Sprintf("undecodable=%.0f", v))
		}
		if tool.err != nil {
			addNote(&res, fmt.Sprintf("netwatcher exit: %v", tool.err))
		}
	case kindTcpdump:
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
	tool = nil
	return res
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
		switch {
		case len(tr) > 0:
			why = "other tracer(s) running: " + strings.Join(tr, " ")
		case share > 0.10:
			why = fmt.Sprintf("other processes used %.0f%% of the CPUs", 100*share)
		default:
			return time.Since(start), ""
		}
		if time.Since(start) > e.o.quietWait {
			return time.Since(start), why
		}
	}
	return time.Since(start), why
}

func statsLine(out string) (map[string]float64, bool) {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "{") || !strings.Contains(l, `"stats"`) {
			continue
		}
		m, ok := parseStats(l)
		if ok {
			return m, true
		}
	}
	return nil, false
}

func countBefore(s, suffix string) (float64, bool) {
	m := regexp.MustCompile(`([0-9]+) ` + regexp.QuoteMeta(suffix)).FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

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

func lookPath(name string) (string, error) {
	for _, dir := range strings.Split(os.Getenv("PATH")+":/usr/sbin:/usr/bin:/sbin:/bin", ":") {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func uniq(v []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range v {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
