package engine

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
)

// An active reset comes after its connection's close record (the kernel
// moves the socket to CLOSE, then sends the RST; the tracker has let the
// connection go): it is named by the socket's connection that just closed,
// and counted per connection; a reset of another connection of the same
// socket, or long after, is not.
func TestRstNamedAfterClose(t *testing.T) {
	var out bytes.Buffer
	p := testPipeline(t, &config.Config{Output: config.JSON, Rst: true}, &out)
	const sk = 0xffff888104deae40
	c := event.Conn{Sock: sk, Netns: 4026531833, Pid: 1234, EstNs: 1_000,
		Src: netip.MustParseAddrPort("127.0.0.1:7001"), Dst: netip.MustParseAddrPort("127.0.0.1:60862")}
	copy(c.Comm[:], "server")
	rst := func(ts uint64, rx bool, state uint8, aborted bool, estLo uint32) event.Event {
		return event.Event{Type: event.Rst, TS: ts, Conn: event.Conn{Sock: sk, Netns: c.Netns},
			Ext: &event.Ext{Rst: event.RstInfo{Rx: rx, State: state, Aborted: aborted, EstLo: estLo, Src: c.Src, Dst: c.Dst}}}
	}
	evs := []event.Event{
		{Type: event.ConnOpen, TS: 1_000, Conn: c},
		rst(1_500, true, event.TCPEstablished, false, 1_000), // received while open: named by EstLo
		{Type: event.ConnClose, TS: 2_000, Conn: c},
		rst(2_100, false, event.TCPEstablished, true, 0),    // the abort right after the close
		rst(2_000_000_000, false, event.TCPClose, false, 0), // much later: not that connection's
		rst(2_200, false, event.TCPSynSent, false, 0),       // the socket's next connection, not established
	}
	for i := range evs {
		p.handle(&evs[i])
	}
	p.flush()
	var got []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if m["type"] == "rst" {
			got = append(got, m)
		}
	}
	if len(got) != 4 {
		t.Fatalf("%d rst records: %v", len(got), got)
	}
	for i, w := range []struct {
		id         any
		sent, recv any
	}{{1.0, 0.0, 1.0}, {1.0, 1.0, 1.0}, {nil, nil, nil}, {nil, nil, nil}} {
		if got[i]["conn_id"] != w.id || got[i]["conn_rst_sent"] != w.sent || got[i]["conn_rst_received"] != w.recv {
			t.Errorf("record %d: %v, want conn_id %v, counts %v/%v", i, got[i], w.id, w.sent, w.recv)
		}
	}
	if got[1]["comm"] != "server" {
		t.Errorf("abort: owner %v", got[1])
	}
}
