package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Expectations (scripts/kernels/expect.tsv): one row per feature, one
// column per kernel series, each cell what the matrix requires:
//
//	ok               the feature must be ok
//	missing-allowed  ok or missing pass; bad fails
//	any              anything passes (still reported)
type expectations struct {
	series []string                     // column order
	cells  map[string]map[string]string // feature -> series -> requirement
}

var requirements = map[string]bool{"ok": true, "missing-allowed": true, "any": true}

func parseExpect(in io.Reader) (*expectations, error) {
	e := &expectations{cells: map[string]map[string]string{}}
	sc := bufio.NewScanner(in)
	ln := 0
	for sc.Scan() {
		ln++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Fields(line) // tabs for people's editors, any blank for us
		if e.series == nil {
			if cols[0] != "feature" || len(cols) < 2 {
				return nil, fmt.Errorf("line %d: header must be \"feature\" then the kernel series", ln)
			}
			e.series = cols[1:]
			continue
		}
		if len(cols) != len(e.series)+1 {
			return nil, fmt.Errorf("line %d: %d cells, the header has %d series", ln, len(cols)-1, len(e.series))
		}
		if !knownFeature(cols[0]) {
			return nil, fmt.Errorf("line %d: unknown feature %q", ln, cols[0])
		}
		row := map[string]string{}
		for i, s := range e.series {
			if !requirements[cols[i+1]] {
				return nil, fmt.Errorf("line %d: %s/%s: %q is not ok, missing-allowed or any", ln, cols[0], s, cols[i+1])
			}
			row[s] = cols[i+1]
		}
		e.cells[cols[0]] = row
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if e.series == nil {
		return nil, fmt.Errorf("no header line")
	}
	return e, nil
}

func knownFeature(name string) bool {
	for _, f := range tableRows {
		if f == name {
			return true
		}
	}
	return false
}

// passes tells whether a status meets a requirement.
func passes(req, status string) bool {
	switch req {
	case "any":
		return true
	case "missing-allowed":
		return status == ok || status == missing
	}
	return status == ok
}

// endMarker is the last line the guest prints before powering off; without
// it the guest hung, crashed or ran out of time.
const endMarker = "=== NWK END"

// kernelTrouble are serial-log lines that fail a kernel whatever the
// expectations say. A "Call Trace" inside a WARNING splat (from
// "WARNING: CPU:" to "---[ end trace") is the warning's: kernel warnings
// are the kernel_warn feature, judged by the expectations like the others
// (5.10's verifier warns "trace type BPF program uses run-time allocation"
// at load time, and the fix is netwatcher's, not a crash).
var kernelTrouble = regexp.MustCompile(`Oops|BUG:|Kernel panic|Call Trace|general protection fault`)

var kernelWarning = regexp.MustCompile(`WARNING: CPU: \d+ PID: \d+ at (\S+)`)

// kernelFeature is the feature the log itself gives (not nwkcheck check).
const kernelFeature = "kernel_warn"

// logResult is what a guest's serial log (or the host run's output) says.
type logResult struct {
	features map[string]feature
	notes    []string // WARN and FATAL lines from nwkcheck
	trouble  []string // kernel crash lines
	ended    bool
}

var featureLine = regexp.MustCompile(`^FEATURE (\S+) (ok|missing|bad)(?: (.*))?$`)

func parseLog(in io.Reader) (*logResult, error) {
	res := &logResult{features: map[string]feature{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	inWarning := false
	warnings := map[string]bool{} // the console and the dmesg dump both show one
	var warnText []string
	prev := ""
	for sc.Scan() {
		// serial lines end in \r\n; kernel lines start with "[  12.3] "
		line := strings.TrimRight(sc.Text(), "\r")
		switch m := kernelWarning.FindStringSubmatch(line); {
		case m != nil:
			inWarning = true
			if !warnings[line] {
				warnings[line] = true
				// the message is the line before: "[ 3.36] trace type BPF program uses ..."
				msg := strings.TrimSpace(prev[strings.Index(prev, "]")+1:])
				warnText = append(warnText, fmt.Sprintf("%s (%s)", msg, m[1]))
			}
		case strings.Contains(line, "---[ end trace"):
			inWarning = false
		case kernelTrouble.MatchString(line) && !inWarning:
			res.trouble = append(res.trouble, clip(strings.TrimSpace(line), 200))
		}
		prev = line
		if strings.HasPrefix(line, endMarker) {
			res.ended = true
		}
		if m := featureLine.FindStringSubmatch(line); m != nil {
			res.features[m[1]] = feature{m[1], m[2], m[3]}
		}
		if strings.HasPrefix(line, "WARN ") || strings.HasPrefix(line, "FATAL ") {
			res.notes = append(res.notes, line)
		}
	}
	if len(warnText) > 0 {
		// first clause (the table's cell): the first warning
		res.features[kernelFeature] = feature{kernelFeature, bad,
			fmt.Sprintf("%s; %d kernel warnings: %s", warnText[0], len(warnText), strings.Join(warnText, "; "))}
	} else if res.ended {
		res.features[kernelFeature] = feature{kernelFeature, ok, "no kernel warning"}
	}
	return res, sc.Err()
}

// judge compares one kernel's log with the expectations of its series and
// returns the failures (none: the kernel passes).
func judge(res *logResult, exp *expectations, series string) []string {
	var fails []string
	known := false
	for _, s := range exp.series {
		known = known || s == series
	}
	if !known {
		return []string{fmt.Sprintf("no column %q in the expectations", series)}
	}
	for _, t := range res.trouble {
		fails = append(fails, "kernel trouble in the log: "+t)
	}
	if !res.ended {
		fails = append(fails, "the guest never reached the end marker (hung, crashed or timed out)")
	}
	for _, n := range res.notes {
		if strings.HasPrefix(n, "FATAL ") {
			fails = append(fails, n)
		}
	}
	for _, name := range tableRows {
		req, ok := exp.cells[name][series]
		if !ok {
			continue
		}
		f, seen := res.features[name]
		switch {
		case !seen:
			if res.ended {
				fails = append(fails, fmt.Sprintf("%s: no result", name))
			}
		case !passes(req, f.status):
			fails = append(fails, fmt.Sprintf("%s: %s, expected %s (%s)", name, f.status, req, f.detail))
		}
	}
	return fails
}

// runJudge implements "nwkcheck judge": prints PASS/FAIL lines (and a
// KERNEL line for kernel warnings, failing or not), returns whether the
// kernel passed.
func runJudge(w io.Writer, expectPath, series, name, logPath string) (bool, error) {
	ef, err := os.Open(expectPath)
	if err != nil {
		return false, err
	}
	defer ef.Close()
	exp, err := parseExpect(ef)
	if err != nil {
		return false, fmt.Errorf("%s: %w", expectPath, err)
	}
	lf, err := os.Open(logPath)
	if err != nil {
		return false, err
	}
	defer lf.Close()
	res, err := parseLog(lf)
	if err != nil {
		return false, err
	}
	fails := judge(res, exp, series)
	for _, f := range fails {
		fmt.Fprintf(w, "FAIL %s %s\n", name, f)
	}
	if len(fails) == 0 {
		fmt.Fprintf(w, "PASS %s (series %s)\n", name, series)
	}
	if f, ok := res.features[kernelFeature]; ok && f.status != "ok" {
		fmt.Fprintf(w, "KERNEL %s %s %s %s\n", name, f.name, f.status, f.detail)
	}
	return len(fails) == 0, nil
}
