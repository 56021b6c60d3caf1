package redis_test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
)

// server runs redis-server in p.B on B4 and B6, port 6379, nothing saved;
// killed at cleanup.
func server(t *testing.T, p *nstest.Pair) {
	t.Helper()
	nstest.RequireTools(t, "redis-server", "redis-cli", "redis-benchmark")
	dir := t.TempDir()
	cmd := p.B.Cmd("redis-server", "--port", "6379", "--bind", p.B4.String()+" "+p.B6.String(), "--save", "",
		"--appendonly", "no", "--daemonize", "no", "--protected-mode", "no", "--dir", dir, "--logfile", "")
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		out, err := p.A.Cmd("redis-cli", "-h", p.B4.String(), "ping").Output()
		if err == nil && strings.TrimSpace(string(out)) == "PONG" {
			return
		}
		if i == 100 {
			t.Fatalf("redis-server does not answer: %v %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type cmdStat struct{ calls, failed int }

var reStat = regexp.MustCompile(`(?m)^cmdstat_([a-z|_-]+):calls=(\d+),.*?failed_calls=(\d+)`)

// commandstats is the server's INFO commandstats: calls and failed calls
// by command (upper case; subcommands as CONFIG|GET).
func commandstats(t *testing.T, p *nstest.Pair) map[string]cmdStat {
	t.Helper()
	out, err := p.A.Cmd("redis-cli", "-h", p.B4.String(), "info", "commandstats").Output()
	if err != nil {
		t.Fatalf("info commandstats: %v", err)
	}
	m := map[string]cmdStat{}
	for _, f := range reStat.FindAllStringSubmatch(string(out), -1) {
		c, _ := strconv.Atoi(f[2])
		e, _ := strconv.Atoi(f[3])
		m[strings.ToUpper(f[1])] = cmdStat{c, e}
	}
	return m
}

// script is a redis-cli session (one connection, a command at a time)
// and the reply type of each command.
var script = []struct{ cmd, reply string }{
	{"SET e2e:s hello", "simple"},
	{"GET e2e:s", "bulk"},
	{"GET e2e:nokey", "null"},
	{"INCR e2e:n", "integer"},
	{"LPUSH e2e:s x", "error"}, // WRONGTYPE
	{"RPUSH e2e:l a b c", "integer"},
	{"LRANGE e2e:l 0 -1", "array"},
	{"HSET e2e:h f v", "integer"},
	{"HGETALL e2e:h", "array"},
	{"INCR e2e:s", "error"}, // not an integer
	{"MGET e2e:s e2e:nokey", "array"},
	{"EXISTS e2e:s", "integer"},
	{"DEL e2e:l", "integer"},
	{"PING", "simple"},
}

// summaries: the exit summaries by side and command.
func summaries(r *nwtest.Run) map[string]map[string]nwtest.Ev {
	m := map[string]map[string]nwtest.Ev{"client": {}, "server": {}}
	for _, e := range r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "redis_summary" && e.Str("event") == "exit" }) {
		m[e.Str("side")][e.Str("cmd")] = e
	}
	return m
}

// TestRedisAgainstCommandstats: redis-benchmark (-P 16: pipelines of 16
// requests per segment) and a redis-cli script (with two failing
// commands) in one namespace against redis-server in another; netwatcher
// -R (host-wide) must count, at the client's sockets and at the server's,
// exactly the calls and failed calls the server's INFO commandstats
// counted for every command of the run; each script command's reply has
// the type the command makes (pairs never cross); the PING latency is
// within reason of redis-cli --latency's.
func TestRedisAgainstCommandstats(t *testing.T) {
	run(t, 20000, "-R", "--no-packets", "-q")
}

// TestRedisWithSeedFlags: the same with -t -x -r (packet layer times,
// extra socket stats, retransmits) next to -R (-q: the per-pair records go
// to redis.log only; on the console 160,000 JSON lines a second are more
// than the test's reader takes, and the pipeline would fall behind).
func TestRedisWithSeedFlags(t *testing.T) {
	run(t, 4000, "-R", "-t", "-x", "-r", "-q") // fewer: -t adds a record per segment
}

func run(t *testing.T, n int, flags ...string) {
	if raceBuild {
		n /= 8 // the race-built binary reads its rings ~10x slower: a burst this size still fits them
	}
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	server(t, p)
	r := nwtest.Start(t, flags...)
	before := commandstats(t, p)

	bench := p.A.Cmd("redis-benchmark", "-h", p.B4.String(), "-n", strconv.Itoa(n), "-P", "16", "-t", "set,get,incr,lpush", "-q")
	if out, err := bench.CombinedOutput(); err != nil {
		t.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
	var in strings.Builder
	for _, s := range script {
		in.WriteString(s.cmd + "\n")
	}
	cli := p.A.Cmd("redis-cli", "-h", p.B6.String())
	cli.Stdin = strings.NewReader(in.String())
	if out, err := cli.CombinedOutput(); err != nil || !strings.Contains(string(out), "WRONGTYPE") {
		t.Fatalf("redis-cli script: %v\n%s", err, out)
	}
	lat := p.A.Cmd("redis-cli", "-h", p.B4.String(), "--latency", "--raw", "-i", "1")
	out, err := lat.Output()
	var lmin, lmax, lavg float64
	var samples int
	if _, serr := fmt.Sscanf(string(out), "%f %f %f %d", &lmin, &lmax, &lavg, &samples); err != nil || serr != nil || samples == 0 {
		t.Fatalf("redis-cli --latency: %v %v %q", err, serr, out)
	}
	after := commandstats(t, p)
	r.Stop()

	// the oracle: what the server counted between the two INFO calls
	// (the first INFO's own call included; the second's not yet)
	delta := map[string]cmdStat{}
	for c, a := range after {
		if d := (cmdStat{a.calls - before[c].calls, a.failed - before[c].failed}); d.calls > 0 {
			delta[c] = d
		}
	}
	if delta["SET"].calls < n || delta["LPUSH"].failed != 1 || delta["INCR"].failed != 1 {
		t.Fatalf("oracle %v", delta)
	}
	sums := summaries(r)
	for _, side := range []string{"client", "server"} {
		for c, d := range delta {
			if strings.Contains(c, "|") || c == "INFO" {
				continue // subcommands (CONFIG|GET) are counted by command; INFO: the oracle's own
			}
			s := sums[side][c]
			if s == nil || int(s.Num("calls")) != d.calls || int(s.Num("errors")) != d.failed {
				t.Errorf("%s %s: summary %v, commandstats calls %d failed %d", side, c, s, d.calls, d.failed)
			}
		}
		if s := sums[side]["SET"]; s != nil {
			t.Logf("%s SET: calls %v p50 %.0f µs p99 %.0f µs", side, s["calls"], s.Num("p50_ns")/1e3, s.Num("p99_ns")/1e3)
		}
	}
	var stats nwtest.Ev
	for _, e := range r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "stats" }) {
		stats = e
	}
	for _, k := range []string{"redis_unmatched", "redis_unanswered", "redis_desync_dropped", "redis_stream_resync", "redis_bad_request", "redis_bad_reply", "lost_ring_full", "lost_queue_full"} {
		if stats.Num(k) != 0 {
			t.Errorf("stats %s = %v", k, stats[k])
		}
	}
	// redis-cli's COMMAND DOCS reply at start (~100 KB in segments of
	// many KB) runs past the capture: its reply direction is skipped until
	// the next request, nothing else is lost
	t.Logf("requests %v replies %v; past the capture: uncaptured %v bad start %v reply segments skipped %v",
		stats["redis_requests"], stats["redis_replies"], stats["redis_stream_uncaptured"], stats["redis_stream_bad_start"], stats["redis_reply_segments_skipped"])

	// the script's pairs, at both ends (redis.log: -q leaves them off the
	// console): each reply of the type its command makes, in order
	logRecs := logLines(r.File("redis.log"))
	cliNS, srvNS := strconv.FormatUint(p.A.Inode(t), 10), strconv.FormatUint(p.B.Inode(t), 10)
	for _, side := range []struct{ name, netns string }{{"client", cliNS}, {"server", srvNS}} {
		var pairs []map[string]string
		for _, e := range logRecs {
			if e["netns"] == side.netns && (strings.HasPrefix(e["key"], "e2e:") || e["cmd"] == "PING" && strings.Contains(e["src"], "[")) {
				pairs = append(pairs, e)
			}
		}
		if len(pairs) != len(script) {
			t.Fatalf("%s: %d script pairs, want %d: %v", side.name, len(pairs), len(script), pairs)
		}
		for i, s := range script {
			e := pairs[i]
			if e["event"] != "answer" || e["side"] != side.name || e["cmd"] != strings.Fields(s.cmd)[0] || e["reply"] != s.reply ||
				e["latency"] == "-" || e["comm"] == "-" || e["sock"] == "" || e["src"] == "" || e["dst"] == "" {
				t.Errorf("%s pair %d (%s): %v", side.name, i, s.cmd, e)
			}
			if (s.reply == "error") != (e["error"] != "-") {
				t.Errorf("%s pair %d (%s): error %v", side.name, i, s.cmd, e["error"])
			}
		}
		if e := pairs[4]; e["error"] != "WRONGTYPE" {
			t.Errorf("LPUSH error %v", e["error"])
		}
	}
	if n := strings.Count(r.File("redis.log"), "redis_summary{"); n == 0 {
		t.Error("no summary in redis.log")
	}

	// latency: redis-cli --latency's average (ms, measured in user space
	// around each PING) against the PING pairs of its connection at the
	// client (kernel egress to ingress): the same order of magnitude,
	// never more than the client waited plus scheduling slack
	var pings []float64
	for _, e := range logRecs {
		if e["cmd"] == "PING" && e["side"] == "client" && e["netns"] == cliNS && e["comm"] == "redis-cli" && e["event"] == "answer" {
			us, _ := strconv.ParseFloat(e["latency"], 64)
			pings = append(pings, us/1e3)
		}
	}
	if len(pings) < samples {
		t.Fatalf("%d PING pairs, redis-cli --latency took %d samples", len(pings), samples)
	}
	med := median(pings)
	t.Logf("PING latency: netwatcher client median %.3f ms over %d pairs; redis-cli --latency min %.3f avg %.3f max %.3f ms (%d samples)", med, len(pings), lmin, lavg, lmax, samples)
	if med <= 0 || med > lavg+1 || med < lavg/20 {
		t.Errorf("PING median %.3f ms vs redis-cli avg %.3f ms", med, lavg)
	}
}

var reKV = regexp.MustCompile(`(\w+)="([^"]*)"`)

// logLines reads redis.log's pair lines (redis{k="v",...}).
func logLines(s string) []map[string]string {
	var out []map[string]string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "redis{") {
			continue
		}
		m := map[string]string{}
		for _, f := range reKV.FindAllStringSubmatch(l, -1) {
			m[f[1]] = f[2]
		}
		out = append(out, m)
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestRedisPortFilter: -s 6379 keeps the server's ends only (the filter
// applies in the kernel to the local port): the script's pairs are all
// seen at the server, none at the client.
func TestRedisPortFilter(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	server(t, p)
	r := nwtest.Start(t, "-R", "--no-packets", "-s", "6379")
	var in strings.Builder
	for _, s := range script {
		in.WriteString(s.cmd + "\n")
	}
	cli := p.A.Cmd("redis-cli", "-h", p.B4.String())
	cli.Stdin = strings.NewReader(in.String())
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli script: %v\n%s", err, out)
	}
	r.WaitFor(30*time.Second, "the script's last pair", func(e nwtest.Ev) bool {
		return e.Str("type") == "redis" && e.Str("cmd") == "PING" && e.Str("side") == "server"
	})
	r.Stop()
	sides := map[string]int{}
	for _, e := range r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "redis" && e.Str("event") == "answer" }) {
		sides[e.Str("side")]++
	}
	if sides["server"] < len(script) || sides["client"] != 0 { // (+ redis-cli's COMMAND DOCS)
		t.Errorf("pairs by side %v, want %d at the server only", sides, len(script))
	}
}
