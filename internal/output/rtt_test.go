package output

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// rttEvent: samples 700, 900, 5000 µs: p50 interpolated in [512, 1024) is
// 512 + 512*1.5/2 = 896; p99 in [4096, 8192) clamps to the maximum.
func rttEvent() *event.Event {
	ev := &event.Event{Type: event.Rtt, TS: 5_000_000_000, Conn: event.Conn{Sock: 0xffff8881456665c0, Netns: 4026531840, ID: 9, Pid: 6089,
		Src: netip.MustParseAddrPort("127.0.0.1:59108"), Dst: netip.MustParseAddrPort("127.0.0.1:47147")}, Ext: &event.Ext{}}
	copy(ev.Conn.Comm[:], "nwpeer")
	ev.Ext.Rtt = event.RttInfo{SumUs: 700 + 900 + 5000, MinUs: 700, MaxUs: 5000}
	ev.Ext.Rtt.Buckets[9], ev.Ext.Rtt.Buckets[12] = 2, 1
	return ev
}

func TestRttLogLine(t *testing.T) {
	ev := rttEvent()
	got := string(AppendRttLog(nil, ev))
	want := `rtt{sock="0xffff8881456665c0",src="127.0.0.1:59108",dst="127.0.0.1:47147",event="interval",source="mrtt",count="3",p50="896",p99="5000",mean="2200",min="700",max="5000",buckets="512:2,4096:1",conn_id="9"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// a connection the table could not name: the record's own tuple
	ev.Conn.ID, ev.Conn.Src, ev.Conn.Dst, ev.Ext.Rtt.Close, ev.Ext.Rtt.Srtt = 0, netip.AddrPort{}, netip.AddrPort{}, true, true
	ev.Ext.Rtt.Src, ev.Ext.Rtt.Dst = netip.MustParseAddrPort("[::1]:1"), netip.MustParseAddrPort("[::1]:2")
	got = string(AppendRttLog(nil, ev))
	if !strings.Contains(got, `src="[::1]:1",dst="[::1]:2",event="close",source="srtt"`) || !strings.HasSuffix(got, `conn_id="-"}`+"\n") {
		t.Errorf("close, srtt-derived, unknown connection: %s", got)
	}
}

func TestRttConsoleAndJSON(t *testing.T) {
	ev := rttEvent()
	p := Printer{Clock: NewClock(nil)}
	line := string(p.Rtt(nil, ev))
	want := "[T] rtt interval: conn = 9 sock = 0xffff8881456665c0 127.0.0.1:59108 -> 127.0.0.1:47147 samples = 3 p50 = 896us p99 = 5000us mean = 2200us min/max = 700/5000us buckets = 512:2 4096:1 pid = 6089 comm = nwpeer\n"
	if !strings.HasSuffix(line, want) {
		t.Errorf("console\n%s\nwant suffix\n%s", line, want)
	}
	p.JSON = true
	var m map[string]any
	if err := json.Unmarshal(p.Rtt(nil, ev), &m); err != nil {
		t.Fatal(err)
	}
	b := m["buckets"].([]any)
	if m["type"] != "rtt" || m["event"] != "interval" || m["source"] != "mrtt" || m["count"] != 3.0 || m["p50_us"] != 896.0 ||
		m["p99_us"] != 5000.0 || m["mean_us"] != 2200.0 || m["min_us"] != 700.0 || m["max_us"] != 5000.0 ||
		len(b) != event.RttSlots || b[9] != 2.0 || b[12] != 1.0 || m["conn_id"] != 9.0 || m["src"] != "127.0.0.1:59108" || m["comm"] != "nwpeer" {
		t.Errorf("json %v", m)
	}
}
