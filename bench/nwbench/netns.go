package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nsclean"
)

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

// env is the bench's test bed: two namespaces joined by a veth pair, the
// nwpeer servers in namespace B, and what the run noted on the way.
type env struct {
	o        options
	nsA, nsB string
	ifA, ifB string
	servers  []*proc
	httpTool string // wrk or ab
	notes    []string
	runSeq   int
	bpfStats bool            // BPF run-time statistics are on
	statsNs  float64         // what the statistics add to each run's run_time_ns (statsNsPerRun)
	ourNS    map[uint64]bool // inodes of the bench's namespaces
}

// newEnv names the namespaces nwb-<id>-a/-b and the veth ends nwb-<id>a/b
// (the last 8 characters of the id when the name would exceed IFNAMSIZ).
func newEnv(o options) *env {
	e := &env{o: o,
		nsA: nsPrefix + o.id + "-a", nsB: nsPrefix + o.id + "-b",
		ifA: "nwb-" + o.id + "a", ifB: "nwb-" + o.id + "b",
	}
	if len(e.ifA) > 15 { // IFNAMSIZ
		e.ifA, e.ifB = "nwb-"+o.id[len(o.id)-8:]+"a", "nwb-"+o.id[len(o.id)-8:]+"b"
	}
	return e
}

// note records a note for the report (once) and logs it.
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

// nsPrefix starts the names of the bench's namespaces (nwb-<pid>-a/-b).
const nsPrefix = "nwb-"

// sweepStale removes nwb- namespaces left by a bench that died without
// cleaning up, and only those whose creator (the pid in the name) is gone.
func sweepStale() { nsclean.Sweep(nsPrefix, logf) }

// deleteNS kills what still runs in the bench namespace name and deletes
// it; a namespace that is already gone is skipped.
func deleteNS(name string) {
	if _, err := os.Stat(filepath.Join(nsclean.Dir, name)); err != nil {
		return
	}
	if err := nsclean.Delete(name); err != nil {
		logf("cleanup: %v", err)
	}
}

// setupSteps are the commands that build the test bed: {namespace, argv...}
// ("" is the root namespace).
func (e *env) setupSteps() [][]string {
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
	return steps
}

func (e *env) setup() error {
	t := 10 * time.Second
	steps := e.setupSteps()
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
		if err := syscall.Stat(filepath.Join(nsclean.Dir, ns), &st); err == nil {
			e.ourNS[st.Ino] = true
		}
	}
	if err := e.startServers(t); err != nil {
		return err
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

// startServers starts the nwpeer servers in namespace B (echo, sink, http)
// and waits until all three listen.
func (e *env) startServers(t time.Duration) error {
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
			return nil
		}
		if err := e.serversAlive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("servers not listening after 15s: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
