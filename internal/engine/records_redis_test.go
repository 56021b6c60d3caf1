package engine

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/l7cap"
	"github.com/netwatcher/netwatcher/internal/redis"
)

// Redis records through the pipeline: a pipelined SET and GET at the
// client's socket, paired and named by the tracked connection; the tick
// prints the interval summaries; the final tick reports a request still
// waiting as unanswered, then every command's totals.
func TestRedisPipeline(t *testing.T) {
	var out bytes.Buffer
	cfg := &config.Config{Output: config.JSON, Redis: true}
	p := testPipeline(t, cfg, &out)
	p.concerns = []Concern{l7cap.New(cfg, redis.New(cfg))}
	const sk = 0xffff888109534440
	c := event.Conn{Sock: sk, Netns: 4026532457, Pid: 4632, EstNs: 1_000,
		Src: netip.MustParseAddrPort("198.19.250.1:45543"), Dst: netip.MustParseAddrPort("198.19.250.2:6379")}
	copy(c.Comm[:], "redis-cli")
	rec := func(ts uint64, rx bool, seq uint32, b string) event.Event {
		ev := event.Event{Type: event.Redis, TS: ts, Conn: event.Conn{Sock: sk, Netns: c.Netns, Pid: c.Pid, Comm: c.Comm}, Ext: &event.Ext{}}
		d := &ev.Ext.App
		d.Rx, d.TCP, d.Seq, d.PayLen = rx, true, seq, uint16(len(b))
		d.Src, d.Dst = c.Src, c.Dst
		if rx {
			d.Src, d.Dst = c.Dst, c.Src
		}
		d.Len = uint16(copy(d.Data[:], b))
		return ev
	}
	reqs := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
	tick := func(ts uint64, final bool) event.Event {
		return event.Event{Type: event.Redis, TS: ts, Ext: &event.Ext{App: event.AppInfo{Tick: true, Final: final}}}
	}
	evs := []event.Event{
		{Type: event.ConnOpen, TS: 1_000, Conn: c},
		rec(2_000, false, 100, reqs),
		rec(50_000, true, 500, "+OK\r\n$1\r\nv\r\n"),
		tick(500_000, false),
		rec(600_000, false, 100+uint32(len(reqs)), "*1\r\n$4\r\nPING\r\n"), // never answered
		tick(700_000, true),
	}
	for i := range evs {
		p.handle(&evs[i])
	}
	var got []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if m["type"] == "redis" || m["type"] == "redis_summary" {
			got = append(got, m)
		}
	}
	if len(got) != 8 {
		t.Fatalf("%d records: %v", len(got), got)
	}
	set, get, iv := got[0], got[1], got[2]
	if set["event"] != "answer" || set["cmd"] != "SET" || set["key"] != "k" || set["reply"] != "simple" || set["latency_ns"] != 48000.0 ||
		set["conn_id"] != 1.0 || set["side"] != "client" || set["comm"] != "redis-cli" || get["cmd"] != "GET" || get["reply"] != "bulk" {
		t.Errorf("pairs %v\n%v", set, get)
	}
	if iv["type"] != "redis_summary" || iv["event"] != "interval" || iv["cmd"] != "GET" || iv["calls"] != 1.0 || got[3]["cmd"] != "SET" {
		t.Errorf("interval summaries %v %v", iv, got[3])
	}
	if un := got[4]; un["event"] != "unanswered" || un["cmd"] != "PING" || un["latency_ns"] != nil {
		t.Errorf("unanswered %v", un)
	}
	if ex := got[5]; ex["event"] != "exit" || ex["cmd"] != "GET" || ex["calls"] != 1.0 || got[6]["cmd"] != "PING" || got[6]["paired"] != 0.0 || got[7]["cmd"] != "SET" {
		t.Errorf("exit summaries %v", got[5:])
	}
}
