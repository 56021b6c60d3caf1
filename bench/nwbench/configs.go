package main

import (
	"slices"
	"strings"
)

// kind is what a configuration runs during the workload.
type kind int

const (
	kindOff kind = iota
	kindNW
	kindTcpdump
	kindBpftrace
)

type config struct {
	name  string
	kind  kind
	args  []string
	only  string // run with these workloads only (comma-separated)
	optIn bool   // only when named in --configs (not in the default set)
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
		{name: "-q -tixre --sample 100", kind: kindNW, args: []string{"-q", "-tixre", "--sample", "100"}, optIn: true},
		// issue 16: --summary (no packet records, in-kernel counters; -t: layer-time histograms)
		{name: "-q --summary", kind: kindNW, args: []string{"-q", "--summary"}, optIn: true},
		{name: "-q --summary -t", kind: kindNW, args: []string{"-q", "--summary", "-t"}, optIn: true},
		// with the metrics server on (lifecycle records stay on for the connection metrics; not scraped)
		{name: "-q --summary --metrics-addr", kind: kindNW, args: []string{"-q", "--summary", "--metrics-addr", "127.0.0.1:9798"}, optIn: true},
		{name: "-q --summary -t --metrics-addr", kind: kindNW, args: []string{"-q", "--summary", "-t", "--metrics-addr", "127.0.0.1:9798"}, optIn: true},
		// issue 14/15 flags: what they cost TCP traffic they do not record
		// (every hook runs for every packet and leaves after its check)
		{name: "-q -u", kind: kindNW, args: []string{"-q", "-u"}, optIn: true},
		{name: "-q -I", kind: kindNW, args: []string{"-q", "-I"}, optIn: true},
		{name: "-q -n", kind: kindNW, args: []string{"-q", "-n"}, optIn: true},
		{name: "-q -n --no-packets", kind: kindNW, args: []string{"-q", "-n", "--no-packets"}, optIn: true},
		{name: "-q -N -R -M", kind: kindNW, args: []string{"-q", "-N", "-R", "-M"}, optIn: true},
		{name: "-q -C 1", kind: kindNW, args: []string{"-q", "-C", "1"}, optIn: true},
		{name: "tcpdump", kind: kindTcpdump},
		{name: "bpftrace", kind: kindBpftrace, only: "churn"},
	}
}

// selectConfigs returns the configurations named in the comma-separated
// list (all but the opt-in ones for ""), in the table's order.
func selectConfigs(list string) []config {
	if list == "" {
		var def []config
		for _, c := range allConfigs() {
			if !c.optIn {
				def = append(def, c)
			}
		}
		return def
	}
	return selectNamed(allConfigs(), list, func(c config) string { return c.name })
}

// selectNamed returns the entries of all whose name is in the
// comma-separated list (all of them for ""), in all's order.
func selectNamed[T any](all []T, list string, name func(T) string) []T {
	if list == "" {
		return all
	}
	var out []T
	for _, x := range all {
		for _, n := range strings.Split(list, ",") {
			if strings.TrimSpace(n) == name(x) {
				out = append(out, x)
			}
		}
	}
	return out
}

// runsWith reports whether the configuration runs with the workload.
func (c config) runsWith(workload string) bool {
	return c.only == "" || slices.Contains(strings.Split(c.only, ","), workload)
}

// label is the configuration's name in the report's main table.
func (c config) label() string {
	switch c.kind {
	case kindNW:
		return "nw `" + c.name + "`"
	case kindTcpdump:
		return "tcpdump -w /dev/null"
	case kindBpftrace:
		return "bpftrace set_state"
	}
	return c.name
}

// netwatcherArgs is netwatcher's command line for this configuration.
func (c config) netwatcherArgs(dataDir, ready string) []string {
	return append(append([]string{}, c.args...), "-o", "json", "--data-dir", dataDir, "--ready-file", ready, "--duration", "10m")
}

// bpftraceScript prints one line per TCP state change (to /dev/null); the
// interval probe is only a safety stop.
const bpftraceScript = `tracepoint:sock:inet_sock_set_state { printf("%d %s %d %d\n", pid, comm, args->oldstate, args->newstate); } interval:s:900 { exit(); }`
