package engine

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/dns"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/l7cap"
)

// DNS records through the pipeline: a TCP query and its response at the
// client's socket are paired and named by the tracked connection; the
// concern's tick prints the counters that changed; at exit a query still
// waiting is reported unanswered, then every process's counters.
func TestDNSPipeline(t *testing.T) {
	var out bytes.Buffer
	cfg := &config.Config{Output: config.JSON, DNS: true}
	p := testPipeline(t, cfg, &out)
	p.concerns = []Concern{l7cap.New(cfg, dns.New(cfg))}
	const sk = 0xffff888109534440
	c := event.Conn{Sock: sk, Netns: 4026532457, Pid: 4632, EstNs: 1_000,
		Src: netip.MustParseAddrPort("[fd00::1]:45543"), Dst: netip.MustParseAddrPort("[fd00::2]:53")}
	copy(c.Comm[:], "dig")
	msg := func(id, flags uint16) []byte {
		b := binary.BigEndian.AppendUint16(nil, 0) // TCP length, set below
		b = binary.BigEndian.AppendUint16(b, id)
		b = binary.BigEndian.AppendUint16(b, flags)
		b = append(b, 0, 1, 0, 1, 0, 0, 0, 0, 1, 'h', 6, 'n', 'w', 't', 'e', 's', 't', 0, 0, 28, 0, 1)
		binary.BigEndian.PutUint16(b, uint16(len(b)-2))
		return b
	}
	rec := func(ts uint64, rx bool, seq uint32, b []byte) event.Event {
		ev := event.Event{Type: event.DNS, TS: ts, Conn: event.Conn{Sock: sk, Netns: c.Netns, Pid: c.Pid, Comm: c.Comm}, Ext: &event.Ext{}}
		d := &ev.Ext.App
		d.Rx, d.TCP, d.Seq, d.PayLen = rx, true, seq, uint16(len(b))
		d.Src, d.Dst = c.Src, c.Dst
		if rx {
			d.Src, d.Dst = c.Dst, c.Src
		}
		d.Len = uint16(copy(d.Data[:], b))
		return ev
	}
	evs := []event.Event{
		{Type: event.ConnOpen, TS: 1_000, Conn: c},
		rec(2_000, false, 100, msg(8160, 0x0100)),
		rec(469_233, true, 500, msg(8160, 0x8180)),
		{Type: event.DNS, TS: 500_000, Ext: &event.Ext{App: event.AppInfo{Tick: true}}},
		rec(600_000, false, 100+uint32(len(msg(1, 0))), msg(9, 0x0100)), // never answered
	}
	for i := range evs {
		p.handle(&evs[i])
	}
	p.dnsFinish()
	var got []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if m["type"] == "dns" || m["type"] == "dns_counters" {
			got = append(got, m)
		}
	}
	if len(got) != 4 {
		t.Fatalf("%d records: %v", len(got), got)
	}
	a, iv, un, ex := got[0], got[1], got[2], got[3]
	if a["event"] != "answer" || a["conn_id"] != 1.0 || a["latency_ns"] != 467233.0 || a["qname"] != "h.nwtest." ||
		a["qtype"] != "AAAA" || a["side"] != "client" || a["proto"] != "tcp" || a["comm"] != "dig" {
		t.Errorf("answer %v", a)
	}
	if iv["type"] != "dns_counters" || iv["event"] != "interval" || iv["queries"] != 1.0 {
		t.Errorf("interval counters %v", iv)
	}
	if un["event"] != "unanswered" || un["id"] != 9.0 || un["latency_ns"] != nil {
		t.Errorf("unanswered %v", un)
	}
	if ex["event"] != "exit" || ex["queries"] != 2.0 || ex["answered"] != 1.0 || ex["unanswered"] != 1.0 {
		t.Errorf("exit counters %v", ex)
	}
}
