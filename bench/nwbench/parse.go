package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Parsers of the output of the tools the bench runs: nwpeer's result lines,
// wrk and ab, tcpdump's final counts, netwatcher's final stats line.

var numRe = `([0-9]+(?:\.[0-9]+)?)`

// field returns the number after key= in a line such as nwpeer's
// "churn conns=N secs=S rate=R/s errors=E" (key at the start or after
// white space).
func field(out, key string) (float64, bool) {
	m := regexp.MustCompile(`(?:^|\s)` + regexp.QuoteMeta(key) + `=` + numRe).FindStringSubmatch(out)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

var (
	firstErrorRe = regexp.MustCompile(`first error: ([^\n]+)`)
	abRateRe     = regexp.MustCompile(`Requests per second:\s+` + numRe)
	abFailRe     = regexp.MustCompile(`(?:Failed|Non-2xx) [a-z ]*:\s+([1-9][0-9]*)`)
	wrkRateRe    = regexp.MustCompile(`Requests/sec:\s+` + numRe)
	wrkNoteRes   = []*regexp.Regexp{regexp.MustCompile(`Non-2xx or 3xx responses: [0-9]+`), regexp.MustCompile(`Socket errors: [^\n]+`)}
)

// parseChurn reads `nwpeer churn`'s output ("churn conns=N secs=S
// rate=R/s errors=E", then "first error: ..." if any): the rate, and a note
// on connection errors. d is the run's --duration.
func parseChurn(out string, d time.Duration) (float64, string, error) {
	rate, ok := field(out, "rate")
	if !ok {
		return 0, "", fmt.Errorf("churn: no rate in %q", out)
	}
	note := ""
	if errs, _ := field(out, "errors"); errs > 0 {
		first := ""
		if m := firstErrorRe.FindStringSubmatch(out); m != nil {
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
}

// parseRR reads `nwpeer rr`'s "rr ops=N secs=S rate=R/s": round trips/s.
func parseRR(out string) (float64, error) {
	rate, ok := field(out, "rate")
	if !ok {
		return 0, fmt.Errorf("rr: no rate in %q", out)
	}
	return rate, nil
}

// parseBulk reads `nwpeer bulk`'s "bulk bytes=N secs=S mbit=M": Mbit/s.
func parseBulk(out string) (float64, error) {
	v, ok := field(out, "mbit")
	if !ok {
		return 0, fmt.Errorf("bulk: no mbit in %q", out)
	}
	return v, nil
}

// parseWrk reads wrk's report: Requests/sec, and a note with its non-2xx
// responses and socket errors.
func parseWrk(out string) (float64, string, error) {
	m := wrkRateRe.FindStringSubmatch(out)
	if m == nil {
		return 0, "", fmt.Errorf("wrk: no rate in %q", out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	var notes []string
	for _, re := range wrkNoteRes {
		if m := re.FindString(out); m != "" {
			notes = append(notes, m)
		}
	}
	return v, strings.Join(notes, "; "), nil
}

// parseAB reads ab's report: Requests per second, and a note with the first
// non-zero failed or non-2xx count.
func parseAB(out string) (float64, string, error) {
	m := abRateRe.FindStringSubmatch(out)
	if m == nil {
		return 0, "", fmt.Errorf("ab: no rate in %q", out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	note := ""
	if m := abFailRe.FindString(out); m != "" {
		note = strings.Join(strings.Fields(m), " ")
	}
	return v, note, nil
}

// countBefore returns N from "N <suffix>" in s (tcpdump's "N packets
// captured", "N packets dropped by kernel").
func countBefore(s, suffix string) (float64, bool) {
	m := regexp.MustCompile(`([0-9]+) ` + regexp.QuoteMeta(suffix)).FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// statsLine finds netwatcher's final stats line in its stdout (`-o json`:
// {"type":"stats","events":N,"lost_ring_full":N,...}; the last one wins) and
// returns its numeric fields.
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

// parseStats parses one JSON stats line. Every numeric field is kept,
// whatever its name: netwatcher adds counters over time.
func parseStats(line string) (map[string]float64, bool) {
	var raw map[string]any
	if err := json.Unmarshal([]byte(line), &raw); err != nil || raw["type"] != "stats" {
		return nil, false
	}
	m := map[string]float64{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			m[k] = f
		}
	}
	return m, true
}

// isLossCounter: every loss counter of the stats line is lost_* or *_full
// (ring, queue, tables).
func isLossCounter(key string) bool {
	return strings.HasPrefix(key, "lost_") || strings.HasSuffix(key, "_full") ||
		strings.HasSuffix(key, "_lines_lost") || key == "console_lines_dropped"
}

// nwStats is what a run keeps of netwatcher's stats line.
type nwStats struct {
	events      float64
	lost        float64 // sum of the loss counters
	lostWhat    string  // "key=N ..." of the non-zero loss counters, by key
	undecodable float64
}

func readNWStats(st map[string]float64) nwStats {
	s := nwStats{events: st["events"], undecodable: st["undecodable"]}
	var what []string
	for _, k := range slices.Sorted(maps.Keys(st)) {
		if v := st[k]; isLossCounter(k) && v > 0 {
			s.lost += v
			what = append(what, fmt.Sprintf("%s=%.0f", k, v))
		}
	}
	s.lostWhat = strings.Join(what, " ")
	return s
}
