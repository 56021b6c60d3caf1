package output

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

func stateEvent() *event.Event {
	ev := &event.Event{Type: event.State, TS: 5_000_000_000, Conn: event.Conn{Sock: 0xffff8881456665c0, Netns: 4026531840, ID: 9, Pid: 6089}, Ext: &event.Ext{}}
	copy(ev.Conn.Comm[:], "python3")
	ev.Ext.State = event.StateInfo{Old: event.TCPSynSent, New: event.TCPEstablished, InOldNs: 56_604,
		Src: netip.MustParseAddrPort("127.0.0.1:59108"), Dst: netip.MustParseAddrPort("[::1]:47147")}
	return ev
}

func TestStateLogLine(t *testing.T) {
	ev := stateEvent()
	got := string(AppendStateLog(nil, ev))
	want := `tcpstate{sock="0xffff8881456665c0",src="127.0.0.1:59108",dst="[::1]:47147",old="SYN_SENT",new="ESTABLISHED",duration="56.604",conn_id="9"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	ev.Ext.State.InOldNs, ev.Conn.ID, ev.Ext.State.Old, ev.Ext.State.New = 0, 0, event.TCPClose, 99
	got = string(AppendStateLog(nil, ev))
	if !strings.Contains(got, `old="CLOSE",new="state99",duration="-",conn_id="-"`) {
		t.Errorf("unknown duration, connection and state: %s", got)
	}
}

func TestStateConsoleAndJSON(t *testing.T) {
	ev := stateEvent()
	p := Printer{Clock: NewClock(nil)}
	line := string(p.State(nil, ev))
	for _, want := range []string{"[S] SYN_SENT -> ESTABLISHED after 56.604us (handshake): conn = 9 sock = 0xffff8881456665c0 127.0.0.1:59108 -> [::1]:47147 pid = 6089 comm = python3\n"} {
		if !strings.Contains(line, want) {
			t.Errorf("console %q lacks %q", line, want)
		}
	}
	ev.Ext.State.InOldNs = 2_500_000_000
	ev.Ext.State.Old, ev.Ext.State.New = event.TCPEstablished, 4
	if line := string(p.State(nil, ev)); !strings.Contains(line, "ESTABLISHED -> FIN_WAIT1 after 2.500s: conn") {
		t.Errorf("console: %q", line)
	}
	p.JSON = true
	ev = stateEvent()
	var m map[string]any
	if err := json.Unmarshal(p.State(nil, ev), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"type": "tcpstate", "old": "SYN_SENT", "new": "ESTABLISHED", "duration_ns": 56604.0,
		"handshake": 1.0, "conn_id": 9.0, "src": "127.0.0.1:59108", "pid": 6089.0, "comm": "python3"} {
		if m[k] != v {
			t.Errorf("JSON %s = %v, want %v (%v)", k, m[k], v, m)
		}
	}
	ev.Ext.State.InOldNs = 0
	if err := json.Unmarshal(p.State(nil, ev), &m); err != nil || m["duration_ns"] != nil {
		t.Errorf("unknown duration: %v %v", m["duration_ns"], err)
	}
}

// An extra log opened by name: written in whole lines, counted in Lost,
// refused when it would shadow a fixed log.
func TestExtraLog(t *testing.T) {
	dir := t.TempDir()
	fs, err := OpenFiles(dir, StateLogName)
	if err != nil {
		t.Fatal(err)
	}
	if fs.Log("nope.log") != nil {
		t.Error("a log that was not opened has a writer")
	}
	fs.Log(StateLogName).Write(AppendStateLog(nil, stateEvent()))
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := fs.Lost()["tcpstate_log_lines_lost"]; !ok {
		t.Errorf("Lost() has no tcpstate_log_lines_lost: %v", fs.Lost())
	}
	raw, err := os.ReadFile(filepath.Join(dir, StateLogName))
	if err != nil {
		t.Fatal(err)
	}
	b := string(raw)
	if strings.Count(b, "\n") != 1 || !strings.HasPrefix(b, "tcpstate{") {
		t.Errorf("tcpstate.log: %q", b)
	}
	for _, bad := range []string{"err.log", "connects.log", "../x.log"} {
		if _, err := OpenFiles(t.TempDir(), bad); err == nil {
			t.Errorf("OpenFiles accepted extra log %q", bad)
		}
	}
}
