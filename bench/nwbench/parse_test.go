package main

import (
	"strings"
	"testing"
	"time"
)

func TestField(t *testing.T) {
	line := "churn conns=70551 secs=5.00 rate=14110.2/s errors=0\n"
	for _, tc := range []struct {
		key  string
		want float64
		ok   bool
	}{
		{"conns", 70551, true},
		{"secs", 5, true},
		{"rate", 14110.2, true},
		{"errors", 0, true},
		{"churn", 0, false},
		{"ate", 0, false}, // only whole keys
		{"mbit", 0, false},
	} {
		got, ok := field(line, tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("field(%q) = %v, %v; want %v, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
	if v, ok := field("rate=12", "rate"); !ok || v != 12 {
		t.Errorf("key at the start: %v %v", v, ok)
	}
}

func TestParseChurn(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		d         time.Duration
		rate      float64
		note      string
		err       bool
	}{
		{"clean", "churn conns=70551 secs=5.00 rate=14110.2/s errors=0\n", 5 * time.Second, 14110.2, "", false},
		{"timeouts at the cap", "nwpeer churn: first error: dial tcp 198.18.250.2:7001: i/o timeout\nchurn conns=70551 secs=5.00 rate=14110.2/s errors=37\n",
			5 * time.Second, 14110.2, "37 dials cut by the duration cap (counted as errors by nwpeer; harmless)", false},
		{"timeouts in a long run", "nwpeer churn: first error: dial tcp 198.18.250.2:7001: i/o timeout\nchurn conns=10 secs=10.00 rate=1.0/s errors=3\n",
			10 * time.Second, 1, "3 connection errors (first: dial tcp 198.18.250.2:7001: i/o timeout)", false},
		{"refused", "nwpeer churn: first error: dial tcp 198.18.250.2:7001: connect: connection refused\nchurn conns=5 secs=2.00 rate=2.5/s errors=1\n",
			2 * time.Second, 2.5, "1 connection errors (first: dial tcp 198.18.250.2:7001: connect: connection refused)", false},
		{"errors without a first error line", "churn conns=5 secs=2.00 rate=2.5/s errors=2\n", 2 * time.Second, 2.5, "2 connection errors (first: )", false},
		{"no rate", "nwpeer: dial: no route\n", time.Second, 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rate, note, err := parseChurn(tc.out, tc.d)
			if (err != nil) != tc.err || rate != tc.rate || note != tc.note {
				t.Fatalf("got %v, %q, %v; want %v, %q, err %v", rate, note, err, tc.rate, tc.note, tc.err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "churn: no rate in ") {
				t.Fatalf("error %q", err)
			}
		})
	}
}

// TestParseRRAndBulk: the rate of an rr or bulk line, and an error naming
// the missing field when it lacks one.
func TestParseRRAndBulk(t *testing.T) {
	for _, tc := range []struct {
		name      string
		parse     func(string) (float64, error)
		good      string
		want      float64
		bad       string
		errPrefix string
	}{
		{"rr", parseRR, "rr ops=553255 secs=5.00 rate=110651.0/s\n", 110651, "rr ops=0 secs=5.00\n", "rr: no rate in "},
		{"bulk", parseBulk, "bulk bytes=10000000000 secs=3.33 mbit=24018.4\n", 24018.4, "bulk bytes=10000000000 secs=3.33\n", "bulk: no mbit in "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.parse(tc.good)
			if err != nil || v != tc.want {
				t.Fatalf("got %v, %v", v, err)
			}
			if _, err := tc.parse(tc.bad); err == nil || !strings.HasPrefix(err.Error(), tc.errPrefix) {
				t.Fatalf("missing field: %v", err)
			}
		})
	}
}

const wrkOut = `Running 5s test @ http://198.18.250.2:7003/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   221.34us  120.11us   8.02ms   93.12%
    Req/Sec    35.79k     1.52k   38.96k    70.00%
  356147 requests in 5.00s, 27.17MB read
`

func TestParseWrk(t *testing.T) {
	v, note, err := parseWrk(wrkOut + "Requests/sec:  71176.42\nTransfer/sec:      5.43MB\n")
	if err != nil || v != 71176.42 || note != "" {
		t.Fatalf("got %v, %q, %v", v, note, err)
	}
	v, note, err = parseWrk(wrkOut + "  Socket errors: connect 0, read 3, write 0, timeout 1\n  Non-2xx or 3xx responses: 12\nRequests/sec:  70000\n")
	if err != nil || v != 70000 || note != "Non-2xx or 3xx responses: 12; Socket errors: connect 0, read 3, write 0, timeout 1" {
		t.Fatalf("got %v, %q, %v", v, note, err)
	}
	if _, _, err := parseWrk("unable to connect to 198.18.250.2:7003 Connection refused\n"); err == nil || !strings.HasPrefix(err.Error(), "wrk: no rate in ") {
		t.Fatalf("no rate: %v", err)
	}
}

const abOut = `Concurrency Level:      16
Time taken for tests:   5.000 seconds
Complete requests:      300000
Failed requests:        %s
Keep-Alive requests:    300000
Requests per second:    60000.12 [#/sec] (mean)
`

func TestParseAB(t *testing.T) {
	v, note, err := parseAB(strings.Replace(abOut, "%s", "0", 1))
	if err != nil || v != 60000.12 || note != "" {
		t.Fatalf("got %v, %q, %v", v, note, err)
	}
	v, note, err = parseAB(strings.Replace(abOut, "%s", "17", 1))
	if err != nil || v != 60000.12 || note != "Failed requests: 17" {
		t.Fatalf("got %v, %q, %v", v, note, err)
	}
	_, note, _ = parseAB(strings.Replace(abOut, "%s", "0", 1) + "Non-2xx responses:      4\n")
	if note != "Non-2xx responses: 4" {
		t.Fatalf("non-2xx note %q", note)
	}
	if _, _, err := parseAB("apr_socket_connect(): Connection refused (111)\n"); err == nil || !strings.HasPrefix(err.Error(), "ab: no rate in ") {
		t.Fatalf("no rate: %v", err)
	}
}

func TestCountBeforeTcpdump(t *testing.T) {
	stderr := "tcpdump: listening on nwb-1b, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n" +
		"868999 packets captured\n871610 packets received by filter\n2611 packets dropped by kernel\n"
	if v, ok := countBefore(stderr, "packets captured"); !ok || v != 868999 {
		t.Errorf("captured %v %v", v, ok)
	}
	if v, ok := countBefore(stderr, "packets dropped by kernel"); !ok || v != 2611 {
		t.Errorf("dropped %v %v", v, ok)
	}
	if _, ok := countBefore("tcpdump: listening on x\n", "packets captured"); ok {
		t.Error("no count found in a killed tcpdump's output")
	}
}

// netwatcher -o json's final line, as internal/engine writes it, with the
// counters added after the bench was written.
const nwStatsJSON = `{"type":"stats","events":298044,"lost_ring_full":3,"lost_queue_full":0,"conn_table_full":0,"pkt_table_full":2,"closed_evicted":7,"undecodable":1,"untracked_errors":0,"connections":12,"connects_log_write_failures":0,"console_lines_dropped":0,"err_log_lines_lost":0,"packets_log_lines_lost":0,"packets_without_addrs":5,"pkt_tx_stale":9,"records_out_of_order":4}`

func TestStatsLine(t *testing.T) {
	out := `{"type":"conn","pid":1,"comm":"nwpeer"}
{"type":"stats_like","events":1}
` + nwStatsJSON + "\n"
	st, ok := statsLine(out)
	if !ok {
		t.Fatal("no stats line")
	}
	want := map[string]float64{"events": 298044, "lost_ring_full": 3, "pkt_table_full": 2, "closed_evicted": 7, "undecodable": 1,
		"connections": 12, "packets_without_addrs": 5, "pkt_tx_stale": 9, "records_out_of_order": 4, "console_lines_dropped": 0}
	for k, v := range want {
		if got, ok := st[k]; !ok || got != v {
			t.Errorf("%s = %v (%v), want %v", k, got, ok, v)
		}
	}
	if _, ok := st["type"]; ok {
		t.Error("non-numeric field kept")
	}
	// The last stats line wins; slog's text line (stderr, but a merged
	// stream must not confuse it) and truncated lines are skipped.
	out = `{"type":"stats","events":1}` + "\n" + `{"type":"stats","events":2}` + "\n" +
		`time=2026-11-25T19:15:00Z level=INFO msg="netwatcher stopped" events=3 lost_ring_full=0 console_lines_dropped=0` + "\n" +
		`{"type":"stats","events":` + "\n"
	if st, ok := statsLine(out); !ok || st["events"] != 2 {
		t.Fatalf("last line: %v %v", st, ok)
	}
	for _, bad := range []string{"", "netwatcher: no BTF\n", `{"type":"conn","events":1}`, `{"type":"stats"`} {
		if _, ok := statsLine(bad); ok {
			t.Errorf("stats found in %q", bad)
		}
	}
}

func TestParseStats(t *testing.T) {
	if _, ok := parseStats(`{"type":"conn"}`); ok {
		t.Error("not a stats line")
	}
	if _, ok := parseStats(`not json`); ok {
		t.Error("not json")
	}
	m, ok := parseStats(`{"type":"stats","events":5,"future_counter":7,"label":"x","nested":{"a":1}}`)
	if !ok || len(m) != 2 || m["events"] != 5 || m["future_counter"] != 7 {
		t.Fatalf("got %v %v", m, ok)
	}
}

func TestIsLossCounter(t *testing.T) {
	for k, want := range map[string]bool{
		"lost_ring_full": true, "lost_queue_full": true, "conn_table_full": true, "pkt_table_full": true,
		"lost_anything": true, "some_map_full": true,
		"console_lines_dropped": true, "packets_log_lines_lost": true, "err_log_lines_lost": true,
		"events": false, "closed_evicted": false, "undecodable": false, "packets_without_addrs": false,
	} {
		if got := isLossCounter(k); got != want {
			t.Errorf("isLossCounter(%q) = %v", k, got)
		}
	}
}

func TestReadNWStats(t *testing.T) {
	st, ok := parseStats(nwStatsJSON)
	if !ok {
		t.Fatal("parse")
	}
	s := readNWStats(st)
	if s.events != 298044 || s.lost != 5 || s.lostWhat != "lost_ring_full=3 pkt_table_full=2" || s.undecodable != 1 {
		t.Fatalf("got %+v", s)
	}
	s = readNWStats(map[string]float64{"events": 10, "lost_ring_full": 0})
	if s.events != 10 || s.lost != 0 || s.lostWhat != "" || s.undecodable != 0 {
		t.Fatalf("no loss: %+v", s)
	}
}
