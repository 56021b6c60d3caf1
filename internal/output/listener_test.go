package output

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

func testListener() *event.Listener {
	l := &event.Listener{Sock: 0xffff8881456665c0, Netns: 4026532387, Local: netip.MustParseAddrPort("127.0.0.1:8080"),
		Pid: 6089, OwnerSrc: event.OwnerSyscall, Backlog: 2, MaxBacklog: 1, Drops: 18}
	copy(l.Comm[:], "server")
	return l
}

func TestListenerLogLine(t *testing.T) {
	got := string(AppendListenerLog(nil, testListener()))
	want := `listener{pid="6089",comm="server",sock="0xffff8881456665c0",local="127.0.0.1:8080",netns="4026532387",backlog="2",maxbacklog="1",drops="18"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	l := testListener()
	l.Pid, l.OwnerSrc, l.Local = 0, event.OwnerNone, netip.MustParseAddrPort("[::]:443")
	if got := string(AppendListenerLog(nil, l)); !strings.HasPrefix(got, `listener{pid="-",comm="-",sock="0xffff8881456665c0",local="[::]:443",`) {
		t.Errorf("unknown owner, IPv6: %s", got)
	}
}

func TestListenerConsoleAndJSON(t *testing.T) {
	p := Printer{Clock: NewClock(nil)}
	line := string(p.Listener(nil, "sample", 5_000_000_000, testListener()))
	want := " [L] listener: sock = 0xffff8881456665c0 local = 127.0.0.1:8080 netns = 4026532387 backlog = 2/1 drops = 18 pid = 6089 comm = server\n"
	if !strings.HasSuffix(line, want) {
		t.Errorf("console %q, want suffix %q", line, want)
	}
	if line := string(p.Listener(nil, "closed", 5_000_000_000, testListener())); !strings.Contains(line, " [L] listener closed: sock = ") {
		t.Errorf("console closed: %q", line)
	}
	p.JSON = true
	var m map[string]any
	if err := json.Unmarshal(p.Listener(nil, "sample", 5_000_000_000, testListener()), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"type": "listener", "event": "sample", "netns": 4026532387.0, "sock": "0xffff8881456665c0",
		"local": "127.0.0.1:8080", "pid": 6089.0, "comm": "server", "owner": event.OwnerSyscall.String(),
		"backlog": 2.0, "maxbacklog": 1.0, "drops": 18.0, "ts_ns": 5e9} {
		if m[k] != v {
			t.Errorf("JSON %s = %v, want %v (%v)", k, m[k], v, m)
		}
	}
	l := testListener()
	l.Pid, l.OwnerSrc = 0, event.OwnerNone
	m = nil
	if err := json.Unmarshal(p.Listener(nil, "closed", 1, l), &m); err != nil {
		t.Fatal(err)
	}
	if v, ok := m["pid"]; !ok || v != nil || m["comm"] != nil || m["event"] != "closed" {
		t.Errorf("unknown owner must be null: %v", m)
	}
}
