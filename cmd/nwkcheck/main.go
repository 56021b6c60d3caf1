// Command nwkcheck judges netwatcher's output in the kernel matrix
// (scripts/kernels/run.sh, make test-kernels).
//
//	nwkcheck check [--netns INODE] [--ports P,...] [--nwpeer-servers P,...] RUNDIR...
//	    reads each run directory (out.json = netwatcher -o json, stderr,
//	    exit, ready, data/) and prints one line per feature:
//	        FEATURE name ok|missing|bad detail
//	    for start, lost, conn_owner, conn_extra, packets, layer_times, http,
//	    retrans, errors; then "WARN run line" for every warning netwatcher
//	    printed and "FATAL run ..." for a Go panic or broken JSON.
//	    Only the workload's records count: those with one of --ports and,
//	    with --netns, in that network namespace (on the host, netwatcher
//	    sees every namespace).
//
//	nwkcheck judge --expect FILE --series S [--name N] LOG
//	    compares the FEATURE lines of a kernel's log (the guest's serial log,
//	    or the host run's output) with column S of expect.tsv, and fails on
//	    kernel trouble (Oops, BUG, panic, a Call Trace outside a WARNING),
//	    a missing end marker or a FATAL line. Kernel WARNING splats are the
//	    kernel_warn row of expect.tsv. Prints PASS/FAIL lines (KERNEL for a
//	    kernel warning); exit 1 on failure.
//
//	nwkcheck table LABEL=LOG...
//	    prints the markdown feature × kernel table of those logs.
//
// Exit status: 0 (check always, once it could read its input), 1 judge
// failed, 2 bad usage or unreadable input.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: nwkcheck check|judge|table|hooks ... (see go doc ./cmd/nwkcheck)")
		return 2
	}
	switch args[0] {
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "judge":
		return cmdJudge(args[1:], stdout, stderr)
	case "hooks":
		return cmdHooks(args[1:], stdout, stderr)
	case "table":
		if err := runTable(stdout, args[1:]); err != nil {
			fmt.Fprintln(stderr, "nwkcheck table:", err)
			return 2
		}
		return 0
	}
	fmt.Fprintf(stderr, "nwkcheck: unknown subcommand %q (check, judge, table, hooks)\n", args[0])
	return 2
}

func portSet(s string) (map[uint16]bool, error) {
	m := map[uint16]bool{}
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("bad port %q", p)
		}
		m[uint16(n)] = true
	}
	return m, nil
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nwkcheck check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	netns := fs.Uint64("netns", 0, "only records of this network namespace `INODE` (0: any)")
	ports := fs.String("ports", "8080,8081,8082,8083,53,6379", "the workload's server `PORTS`")
	peers := fs.String("nwpeer-servers", "8080,8081,8082", "server `PORTS` whose server is nwpeer (its comm is checked)")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		if err == nil {
			fmt.Fprintln(stderr, "nwkcheck check: no run directory")
		}
		return 2
	}
	w := &workload{netns: *netns}
	var err error
	if w.ports, err = portSet(*ports); err == nil {
		w.nwpeerServer, err = portSet(*peers)
	}
	if err != nil {
		fmt.Fprintln(stderr, "nwkcheck check:", err)
		return 2
	}
	var runs []*runDir
	for _, d := range fs.Args() {
		r, err := readRun(d)
		if err != nil {
			fmt.Fprintln(stderr, "nwkcheck check:", err)
			return 2
		}
		runs = append(runs, r)
	}
	feats, notes := check(runs, w)
	formatFeatures(stdout, feats, notes)
	return 0
}

func cmdJudge(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nwkcheck judge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	expect := fs.String("expect", "scripts/kernels/expect.tsv", "expectations `FILE`")
	series := fs.String("series", "", "kernel `SERIES` (a column of the expectations)")
	name := fs.String("name", "", "kernel `NAME` for the report (default: the series)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *series == "" {
		if err == nil {
			fmt.Fprintln(stderr, "usage: nwkcheck judge --expect FILE --series S [--name N] LOG")
		}
		return 2
	}
	if *name == "" {
		*name = *series
	}
	passed, err := runJudge(stdout, *expect, *series, *name, fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "nwkcheck judge:", err)
		return 2
	}
	if !passed {
		return 1
	}
	return 0
}
