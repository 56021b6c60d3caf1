package engine

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/l7cap"
	"github.com/netwatcher/netwatcher/internal/mysql"
)

// MySQL records through the pipeline: a COM_QUERY and its result set at
// the client's socket are paired and named by the tracked connection
// (conn_id, owner); the tick prints the counters that changed; at exit a request still waiting is unanswered, then every
// command's counters.
func TestMySQLPipeline(t *testing.T) {
	var out bytes.Buffer
	cfg := &config.Config{Output: config.JSON, MySQL: true}
	p := testPipeline(t, cfg, &out)
	p.concerns = []Concern{l7cap.New(cfg, mysql.New(cfg))}
	const sk = 0xffff888109534440
	c := event.Conn{Sock: sk, Netns: 4026532457, Pid: 4632, EstNs: 1_000,
		Src: netip.MustParseAddrPort("10.0.0.1:45543"), Dst: netip.MustParseAddrPort("10.0.0.2:3306")}
	copy(c.Comm[:], "app")
	pkt := func(seq byte, body ...byte) []byte {
		return append([]byte{byte(len(body)), 0, 0, seq}, body...)
	}
	rec := func(ts uint64, rx bool, seq uint32, b ...[]byte) event.Event {
		ev := event.Event{Type: event.MySQL, TS: ts, Conn: event.Conn{Sock: sk, Netns: c.Netns}, Ext: &event.Ext{}}
		d := &ev.Ext.App
		var all []byte
		for _, x := range b {
			all = append(all, x...)
		}
		d.Rx, d.TCP, d.Seq, d.PayLen = rx, true, seq, uint16(len(all))
		d.Src, d.Dst = c.Src, c.Dst
		if rx {
			d.Src, d.Dst = c.Dst, c.Src
		}
		d.Len = uint16(copy(d.Data[:], all))
		return ev
	}
	q := pkt(0, append([]byte{3}, "SELECT 1"...)...)
	col := pkt(2, append([]byte{3}, "def"...)...)
	evs := []event.Event{
		{Type: event.ConnOpen, TS: 1_000, Conn: c},
		rec(2_000, false, 100, q),
		rec(52_000, true, 500, pkt(1, 1), col, pkt(3, 0xfe, 0, 0, 2, 0), pkt(4, 1, '1'), pkt(5, 0xfe, 0, 0, 2, 0)),
		{Type: event.MySQL, TS: 500_000, Ext: &event.Ext{App: event.AppInfo{Tick: true}}},
		rec(600_000, false, 100+uint32(len(q)), pkt(0, 0x0e)), // COM_PING, never answered
	}
	for i := range evs {
		p.handle(&evs[i])
	}
	p.mysqlFinish()
	var got []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if strings.HasPrefix(m["type"].(string), "mysql") {
			got = append(got, m)
		}
	}
	if len(got) != 5 {
		t.Fatalf("%d records: %v", len(got), got)
	}
	a, iv, un := got[0], got[1], got[2]
	if a["command"] != "COM_QUERY" || a["query"] != "SELECT 1" || a["response"] != "rows" || a["rows"] != 1.0 ||
		a["conn_id"] != 1.0 || a["latency_ns"] != 50000.0 || a["side"] != "client" || a["comm"] != "app" || a["pid"] != 4632.0 {
		t.Errorf("result %v", a)
	}
	if iv["type"] != "mysql_stats" || iv["event"] != "interval" || iv["calls"] != 1.0 || iv["rows"] != 1.0 {
		t.Errorf("interval counters %v", iv)
	}
	if un["command"] != "COM_PING" || un["response"] != "unanswered" || un["latency_ns"] != nil {
		t.Errorf("unanswered %v", un)
	}
	for _, ex := range got[3:] {
		if ex["event"] != "exit" || ex["type"] != "mysql_stats" {
			t.Errorf("exit counters %v", ex)
		}
	}
}
