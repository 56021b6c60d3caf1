package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// workload is one of the TCP workloads run between the namespaces: clients
// in A, the nwpeer servers in B.
type workload struct {
	name, unit string
	// run returns the throughput in unit, and a note on anything odd.
	run func(ctx context.Context, e *env, warm bool) (float64, string, error)
}

// peer runs an nwpeer client in namespace A and returns its output.
func (e *env) peer(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	return runCmdCtx(ctx, timeout, e.nsA, append([]string{e.o.nwpeer}, args...)...)
}

// workloadDur is the length of a churn, rr or http run (1 s for warm-up).
func (e *env) workloadDur(warm bool) time.Duration {
	if warm {
		return time.Second
	}
	return e.o.dur
}

func allWorkloads() []workload {
	return []workload{
		{"churn", "conn/s", runChurn},
		{"rr", "round trips/s", runRR},
		{"bulk", "Mbit/s", runBulk},
		{"http", "req/s", runHTTP},
	}
}

func runChurn(ctx context.Context, e *env, warm bool) (float64, string, error) {
	d := e.workloadDur(warm)
	// Time-bounded: -n is never reached; the line is printed at the cap.
	out, err := e.peer(ctx, d+30*time.Second, "churn", "-r", fmt.Sprintf("%s:%d", addrB, portEcho),
		"-n", "100000000", "-c", "8", "--duration", d.String())
	if err != nil {
		return 0, "", err
	}
	return parseChurn(out, d)
}

func runRR(ctx context.Context, e *env, warm bool) (float64, string, error) {
	d := e.workloadDur(warm)
	out, err := e.peer(ctx, d+30*time.Second, "rr", "-r", fmt.Sprintf("%s:%d", addrB, portEcho),
		"-c", "8", "--size", "1024", "--duration", d.String())
	if err != nil {
		return 0, "", err
	}
	rate, err := parseRR(out)
	return rate, "", err
}

func runBulk(ctx context.Context, e *env, warm bool) (float64, string, error) {
	n := e.o.bulkBytes
	if warm {
		n = 1e9
	}
	out, err := e.peer(ctx, 150*time.Second, "bulk", "-r", fmt.Sprintf("%s:%d", addrB, portSink),
		"--bytes", strconv.FormatInt(n, 10), "--duration", "120s")
	if err != nil {
		return 0, "", err
	}
	v, err := parseBulk(out)
	return v, "", err
}

func runHTTP(ctx context.Context, e *env, warm bool) (float64, string, error) {
	if e.httpTool == "" {
		return 0, "", errors.New("no wrk or ab")
	}
	d := e.workloadDur(warm)
	url := fmt.Sprintf("http://%s:%d/", addrB, portHTTP)
	secs := strconv.Itoa(int((d + time.Second - 1) / time.Second))
	if strings.HasSuffix(e.httpTool, "ab") {
		out, err := runCmdCtx(ctx, d+30*time.Second, e.nsA, e.httpTool, "-q", "-k", "-c", "16", "-t", secs, "-n", "100000000", url)
		if err != nil {
			return 0, "", err
		}
		return parseAB(out)
	}
	out, err := runCmdCtx(ctx, d+30*time.Second, e.nsA, e.httpTool, "-t2", "-c16", "-d"+secs+"s", "--timeout", "5s", url)
	if err != nil {
		return 0, "", err
	}
	return parseWrk(out)
}

// selectWorkloads returns the workloads named in the comma-separated list
// (all for ""), in the table's order.
func selectWorkloads(list string) []workload {
	return selectNamed(allWorkloads(), list, func(w workload) string { return w.name })
}
