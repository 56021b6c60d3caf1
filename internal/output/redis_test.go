package output

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

func redisResult() *event.RedisResult {
	r := &event.RedisResult{Kind: event.RedisAnswer, Side: event.AppClient, TS: 5_000_000_000,
		Cmd: []byte("LPUSH"), Key: []byte(`a\x22b`), Args: 2, Reply: '-', Err: []byte("WRONGTYPE"), LatencyNs: 41_261,
		Conn: event.Conn{Netns: 4026532177, Sock: 0xffff888145528000, Pid: 21489, ID: 5,
			Src: netip.MustParseAddrPort("198.19.250.1:51532"), Dst: netip.MustParseAddrPort("198.19.250.2:6379")}}
	copy(r.Conn.Comm[:], "redis-cli")
	return r
}

func TestRedisLogLine(t *testing.T) {
	r := redisResult()
	want := `redis{netns="4026532177",sock="0xffff888145528000",src="198.19.250.1:51532",dst="198.19.250.2:6379",pid="21489",comm="redis-cli",event="answer",side="client",cmd="LPUSH",key="a\x22b",key_cut="0",reply="error",error="WRONGTYPE",latency="41.261",conn_id="5"}` + "\n"
	if got := string(AppendRedisLog(nil, r)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	r.Kind, r.Side, r.Key, r.Err, r.Conn.Pid, r.Conn.ID = event.RedisUnanswered, event.AppServer, nil, nil, 0, 0
	want = `pid="-",comm="-",event="unanswered",side="server",cmd="LPUSH",key="-",key_cut="0",reply="-",error="-",latency="-",conn_id="-"}`
	if got := string(AppendRedisLog(nil, r)); !strings.Contains(got, want) {
		t.Errorf("unanswered: %s", got)
	}
	s := event.RedisSummary{Side: event.AppServer, Cmd: []byte("GET"), Calls: 10, Errors: 1, Paired: 9, P50Ns: 36_864, P99Ns: 2_389_666, Final: true}
	want = `redis_summary{side="server",event="exit",cmd="GET",calls="10",errors="1",paired="9",p50="36.864",p99="2389.666"}` + "\n"
	if got := string(AppendRedisSummaryLog(nil, &s)); got != want {
		t.Errorf("summary got\n%s\nwant\n%s", got, want)
	}
	s.Paired = 0
	if got := string(AppendRedisSummaryLog(nil, &s)); !strings.Contains(got, `paired="0",p50="-",p99="-"}`) {
		t.Errorf("summary without pairs: %s", got)
	}
}

func TestRedisConsoleAndJSON(t *testing.T) {
	p := Printer{Clock: NewClock(nil)}
	r := redisResult()
	if got := string(p.Redis(nil, r)); !strings.Contains(got, ` [V] redis client LPUSH a\x22b -> error WRONGTYPE latency = 41.261us: conn = 5 sock = 0xffff888145528000 198.19.250.1:51532 -> 198.19.250.2:6379 pid = 21489 comm = redis-cli`+"\n") {
		t.Errorf("console %q", got)
	}
	r.Kind = event.RedisUnmatched
	if got := string(p.Redis(nil, r)); !strings.Contains(got, " [V] redis client - -> error WRONGTYPE latency = - (no request seen): ") {
		t.Errorf("console %q", got)
	}
	p.JSON = true
	for _, k := range []event.RedisKind{event.RedisAnswer, event.RedisUnanswered, event.RedisUnmatched} {
		r := redisResult()
		r.Kind = k
		if k == event.RedisUnanswered {
			r.Err = nil
		}
		var m map[string]any
		line := p.Redis(nil, r)
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		switch k {
		case event.RedisAnswer:
			if m["type"] != "redis" || m["event"] != "answer" || m["cmd"] != "LPUSH" || m["key"] != `a\x22b` || m["reply"] != "error" ||
				m["error"] != "WRONGTYPE" || m["latency_ns"] != 41261.0 || m["side"] != "client" || m["conn_id"] != 5.0 || m["args"] != 2.0 || m["comm"] != "redis-cli" {
				t.Errorf("answer %v", m)
			}
		case event.RedisUnanswered:
			if m["reply"] != nil || m["latency_ns"] != nil || m["error"] != nil || m["cmd"] != "LPUSH" {
				t.Errorf("unanswered %v", m)
			}
		case event.RedisUnmatched:
			if m["cmd"] != nil || m["key"] != nil || m["reply"] != "error" || m["latency_ns"] != nil {
				t.Errorf("unmatched %v", m)
			}
		}
	}
	s := event.RedisSummary{Side: event.AppClient, Cmd: []byte("SET"), Calls: 3, Paired: 3, P50Ns: 1000, P99Ns: 5000, MaxNs: 5100}
	var m map[string]any
	if err := json.Unmarshal(p.RedisSummary(nil, 1, &s), &m); err != nil || m["type"] != "redis_summary" || m["event"] != "interval" ||
		m["calls"] != 3.0 || m["p99_ns"] != 5000.0 || m["side"] != "client" || m["cmd"] != "SET" {
		t.Errorf("summary %v %v", m, err)
	}
	if got := string(RedisReplyType('$', true)) + RedisReplyType('%', false) + RedisReplyType('>', false); got != "nullmappush" {
		t.Error(got)
	}
}
