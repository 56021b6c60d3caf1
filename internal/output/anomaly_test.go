package output

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

func anomalyEvent() (*event.Event, *event.Anomaly) {
	ev := &event.Event{Type: event.Packet, TS: 5_000_000_000, Conn: event.Conn{Sock: 0xffff888104deae40, Netns: 4026532300, ID: 7, Pid: 4242,
		Src: netip.MustParseAddrPort("198.18.3.2:8080"), Dst: netip.MustParseAddrPort("198.18.3.1:40000"), OwnerSrc: event.OwnerNone + 1}}
	copy(ev.Conn.Comm[:], "server")
	a := &event.Anomaly{Layer: event.TimeIP, Rx: true, ValueNs: 85_200, EWMANs: 2100.4, Factor: 5, Samples: 1234, Run: 4, Suppressed: 3}
	return ev, a
}

func TestAnomalyLogLine(t *testing.T) {
	ev, a := anomalyEvent()
	got := string(AppendAnomalyLog(nil, ev, a))
	want := `anomaly{sock="0xffff888104deae40",src="198.18.3.2:8080",dst="198.18.3.1:40000",layer="ip",direction="rx",time="85",ewma="2.1",ratio="40.6",factor="5",samples="1234",run="4",suppressed="3",pid="4242",comm="server",conn_id="7"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	ev.Conn.ID, ev.Conn.Pid, a.Rx, a.Layer, a.Factor = 0, 0, false, event.TimeMac, 2.5
	got = string(AppendAnomalyLog(nil, ev, a))
	if !strings.Contains(got, `layer="mac",direction="tx"`) || !strings.Contains(got, `factor="2.5"`) || !strings.HasSuffix(got, `pid="-",comm="-",conn_id="-"}`+"\n") {
		t.Errorf("unknown connection: %s", got)
	}
}

func TestAnomalyConsoleAndJSON(t *testing.T) {
	p := Printer{Clock: NewClock(nil)}
	ev, a := anomalyEvent()
	line := string(p.Anomaly(nil, ev, a))
	want := " [W] anomaly ip rx: conn = 7 sock = 0xffff888104deae40 198.18.3.2:8080 -> 198.18.3.1:40000 ip_time = 85us ewma = 2.1us ratio = 40.6 factor = 5 samples = 1234 run = 4 suppressed = 3 pid = 4242 comm = server\n"
	if !strings.HasSuffix(line, want) || strings.Count(line, "\n") != 1 {
		t.Errorf("console %q, want suffix %q", line, want)
	}
	p.JSON = true
	var m map[string]any
	if err := json.Unmarshal(p.Anomaly(nil, ev, a), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"type": "anomaly", "layer": "ip", "direction": "rx", "value_ns": 85200.0, "ewma_ns": 2100.0, "ratio": 40.6,
		"factor": 5.0, "samples": 1234.0, "run": 4.0, "suppressed": 3.0, "conn_id": 7.0, "pid": 4242.0, "comm": "server", "src": "198.18.3.2:8080",
		"dst": "198.18.3.1:40000", "ts_ns": 5e9, "netns": 4026532300.0, "sock": "0xffff888104deae40"} {
		if m[k] != v {
			t.Errorf("json %s = %v, want %v", k, m[k], v)
		}
	}
}
