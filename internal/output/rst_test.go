package output

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

func rstEvent() *event.Event {
	ev := &event.Event{Type: event.Rst, TS: 5_000_000_000, Conn: event.Conn{Sock: 0xffff888104deae40, Netns: 4026531840, ID: 1, Pid: 30164}, Ext: &event.Ext{}}
	copy(ev.Conn.Comm[:], "python3")
	ev.Ext.Rst = event.RstInfo{State: event.TCPEstablished, Aborted: true, Reason: 11, HasReason: true, Name: "TCP_ABORT_ON_CLOSE",
		Src: netip.MustParseAddrPort("127.0.0.1:7001"), Dst: netip.MustParseAddrPort("127.0.0.1:60862"), ConnSent: 1}
	return ev
}

func TestRstLogLine(t *testing.T) {
	ev := rstEvent()
	got := string(AppendRstLog(nil, ev))
	want := `rst{sock="0xffff888104deae40",src="127.0.0.1:7001",dst="127.0.0.1:60862",dir="sent",state="ESTABLISHED",reason="TCP_ABORT_ON_CLOSE",conn_id="1"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// received: no reason; for no socket: no state, no connection
	ev.Ext.Rst.Rx = true
	if got := string(AppendRstLog(nil, ev)); !strings.Contains(got, `dir="received",state="ESTABLISHED",reason="-",conn_id="1"}`) {
		t.Errorf("received: %s", got)
	}
	ev.Ext.Rst.Rx, ev.Ext.Rst.State, ev.Conn.ID, ev.Conn.Sock, ev.Ext.Rst.Name = false, 0, 0, 0, "NO_SOCKET"
	if got := string(AppendRstLog(nil, ev)); !strings.Contains(got, `sock="0x0",`) || !strings.Contains(got, `dir="sent",state="-",reason="NO_SOCKET",conn_id="-"}`) {
		t.Errorf("no socket: %s", got)
	}
	ev.Ext.Rst.HasReason = false
	if got := string(AppendRstLog(nil, ev)); !strings.Contains(got, `reason="-"`) {
		t.Errorf("no reason (before 6.10): %s", got)
	}
}

func TestRstConsoleAndJSON(t *testing.T) {
	p := Printer{Clock: NewClock(nil)}
	ev := rstEvent()
	for _, c := range []struct {
		set  func(*event.Event)
		want string
	}{
		{func(*event.Event) {}, " [K] rst sent (TCP_ABORT_ON_CLOSE) in ESTABLISHED (abort): conn = 1 sock = 0xffff888104deae40 127.0.0.1:7001 -> 127.0.0.1:60862 pid = 30164 comm = python3\n"},
		{func(e *event.Event) { e.Ext.Rst.Rx, e.Ext.Rst.Aborted = true, false }, " [K] rst received in ESTABLISHED: conn = 1 "},
		{func(e *event.Event) { e.Ext.Rst.Rx, e.Ext.Rst.State, e.Conn = false, 0, event.Conn{} }, " [K] rst sent (TCP_ABORT_ON_CLOSE) for no socket: conn = - sock = 0x0 127.0.0.1:7001 -> 127.0.0.1:60862\n"},
	} {
		c.set(ev)
		if line := string(p.Rst(nil, ev)); !strings.Contains(line, c.want) {
			t.Errorf("console %q lacks %q", line, c.want)
		}
	}

	p.JSON = true
	ev = rstEvent()
	var m map[string]any
	if err := json.Unmarshal(p.Rst(nil, ev), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"type": "rst", "dir": "sent", "state": "ESTABLISHED", "aborted": 1.0, "reason": "TCP_ABORT_ON_CLOSE",
		"reason_code": 11.0, "conn_id": 1.0, "src": "127.0.0.1:7001", "dst": "127.0.0.1:60862", "pid": 30164.0,
		"comm": "python3", "conn_rst_sent": 1.0, "conn_rst_received": 0.0} {
		if m[k] != v {
			t.Errorf("JSON %s = %v, want %v (%v)", k, m[k], v, m)
		}
	}
	// received: reason does not apply (absent); no socket: no state, no counts;
	// no reason on the kernel: null
	ev.Ext.Rst.Rx = true
	m = nil
	json.Unmarshal(p.Rst(nil, ev), &m)
	if _, ok := m["reason"]; ok || m["dir"] != "received" {
		t.Errorf("received: %v", m)
	}
	ev.Ext.Rst.Rx, ev.Ext.Rst.State, ev.Ext.Rst.HasReason, ev.Conn, ev.Ext.Rst.ConnSent = false, 0, false, event.Conn{}, 0
	m = nil
	if err := json.Unmarshal(p.Rst(nil, ev), &m); err != nil {
		t.Fatal(err)
	}
	_, hasState := m["state"]
	_, hasCounts := m["conn_rst_sent"]
	r, hasReason := m["reason"]
	if hasState || hasCounts || !hasReason || r != nil || m["conn_id"] != nil || m["pid"] != nil {
		t.Errorf("no socket, no reason: %v", m)
	}
}
