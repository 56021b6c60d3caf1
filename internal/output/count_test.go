package output

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

func TestCountLines(t *testing.T) {
	tcp := &event.ProtoCount{Proto: event.CountTCP, PeriodNs: 1e9, Rx: event.CountDir{N: 3, Bytes: 3000}, Tx: event.CountDir{N: 2, Bytes: 90}}
	http := &event.ProtoCount{Proto: event.CountHTTP, PeriodNs: 1e9, Rx: event.CountDir{N: 2}, Tx: event.CountDir{N: 1}, Requests: 2}
	if got, want := string(AppendCountLog(nil, tcp, false)), `count{proto="tcp",event="interval",unit="segments",interval_ns="1000000000",rx="3",rx_bytes="3000",tx="2",tx_bytes="90"}`+"\n"; got != want {
		t.Errorf("log\n got %s\nwant %s", got, want)
	}
	if got := string(AppendCountLog(nil, http, true)); !strings.Contains(got, `event="total"`) || !strings.Contains(got, `rx_bytes="-"`) || !strings.HasSuffix(got, `requests="2"}`+"\n") {
		t.Errorf("http total log: %s", got)
	}
	p := Printer{Clock: NewClock(nil)}
	if got := string(p.Count(nil, 1, tcp, false)); !strings.HasSuffix(got, " [C] count interval tcp   rx = 3 segments 3000B tx = 2 segments 90B\n") {
		t.Errorf("console: %q", got)
	}
	if got := string(p.Count(nil, 1, http, true)); !strings.HasSuffix(got, " [C] count total http  rx = 2 messages tx = 1 messages requests = 2\n") {
		t.Errorf("console http: %q", got)
	}
	p.JSON = true
	var m map[string]any
	if err := json.Unmarshal(p.Count(nil, 1, http, false), &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != "count" || m["proto"] != "http" || m["rx_bytes"] != nil || m["requests"] != 2.0 || m["unit"] != "messages" {
		t.Errorf("json: %v", m)
	}
	m = nil
	if err := json.Unmarshal(p.Count(nil, 1, tcp, false), &m); err != nil || m["rx_bytes"] != 3000.0 {
		t.Errorf("json tcp: %v %v", m, err)
	}
	if _, ok := m["requests"]; ok {
		t.Errorf("tcp has no requests: %v", m)
	}
}
