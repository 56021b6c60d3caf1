package output

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

func udpFlowEvent() *event.Event {
	src, dst := netip.MustParseAddrPort("198.18.0.1:40000"), netip.MustParseAddrPort("198.18.0.2:5353")
	ev := &event.Event{Type: event.UDPFlow, TS: 5_000_000_000, Conn: event.Conn{Sock: 0xffff888172830a80, Netns: 4026532177, Pid: 24152, Src: src, Dst: dst}, Ext: &event.Ext{}}
	copy(ev.Conn.Comm[:], "udp.test")
	ev.Ext.UDP = event.UDPInfo{Src: src, Dst: dst, RxDgrams: 3, RxBytes: 300, TxDgrams: 2, TxBytes: 222,
		RxDgramsTotal: 12, RxBytesTotal: 3726, TxDgramsTotal: 12, TxBytesTotal: 3642, FirstNs: 1000, LastNs: 4_000_000_000,
		RxDrops: 1, RxDropsTotal: 2, HasDrops: true}
	return ev
}

func udpDgramEvent() *event.Event {
	ev := udpFlowEvent()
	ev.Type = event.UDP
	ev.Ext.UDP = event.UDPInfo{Src: ev.Conn.Src, Dst: ev.Conn.Dst, Rx: true, Len: 137, Dgrams: 1, MacNs: 2203, IPNs: 5398, UDPNs: 21_000}
	return ev
}

func TestUDPLogLines(t *testing.T) {
	got := string(AppendUDPLog(nil, udpFlowEvent()))
	want := `udp{event="interval",sock="0xffff888172830a80",src="198.18.0.1:40000",dst="198.18.0.2:5353",netns="4026532177",pid="24152",comm="udp.test",rx_dgrams="3",rx_bytes="300",rx_drops="1",tx_dgrams="2",tx_bytes="222",rx_dgrams_total="12",rx_bytes_total="3726",rx_drops_total="2",tx_dgrams_total="12",tx_bytes_total="3642",conn_id="-"}` + "\n"
	if got != want {
		t.Errorf("flow:\ngot  %s\nwant %s", got, want)
	}
	ev := udpDgramEvent()
	got = string(AppendUDPLog(nil, ev))
	want = `udp{event="rx",sock="0xffff888172830a80",src="198.18.0.1:40000",dst="198.18.0.2:5353",netns="4026532177",pid="24152",comm="udp.test",len="137",dgrams="1",mac_time="2.203",ip_time="5.398",udp_time="21",conn_id="-"}` + "\n"
	if got != want {
		t.Errorf("datagram:\ngot  %s\nwant %s", got, want)
	}
	ev.Ext.UDP.Rx, ev.Ext.UDP.Missing, ev.Conn.Pid = false, event.MissingTCP, 0
	if got := string(AppendUDPLog(nil, ev)); !strings.Contains(got, `udp{event="tx",`) || !strings.Contains(got, `pid="-",comm="-",`) ||
		!strings.Contains(got, `udp_time="-",conn_id="-"}`) {
		t.Errorf("sent, no owner: %s", got)
	}
	ev = udpFlowEvent()
	ev.Ext.UDP.Why, ev.Ext.UDP.HasDrops = event.UDPExit, false
	if got := string(AppendUDPLog(nil, ev)); !strings.HasPrefix(got, `udp{event="exit",`) || !strings.Contains(got, `rx_drops="-",`) || !strings.Contains(got, `rx_drops_total="-",`) {
		t.Errorf("exit, drops not known: %s", got)
	}
	if got := string((&Printer{Clock: NewClock(nil)}).UDPFlow(nil, ev)); strings.Contains(got, "drops") {
		t.Errorf("console, drops not known: %s", got)
	}
	p := Printer{JSON: true, Clock: NewClock(nil)}
	if got := string(p.UDPFlow(nil, ev)); !strings.Contains(got, `"rx_drops":null`) || !strings.Contains(got, `"rx_drops_total":null`) {
		t.Errorf("JSON, drops not known: %s", got)
	}
}

func TestUDPConsoleAndJSON(t *testing.T) {
	p := Printer{Clock: NewClock(nil)}
	if line := string(p.UDPFlow(nil, udpFlowEvent())); !strings.Contains(line, " [U] udp interval: sock = 0xffff888172830a80 198.18.0.1:40000 -> 198.18.0.2:5353 rx = 3/300B tx = 2/222B total rx = 12/3726B tx = 12/3642B rx drops = 1 (total 2) pid = 24152 comm = udp.test\n") {
		t.Errorf("flow console: %q", line)
	}
	ev := udpDgramEvent()
	ev.Ext.UDP.Missing = event.MissingMac
	ev.Ext.UDP.Dgrams = 3
	if line := string(p.UDPDatagram(nil, ev)); !strings.Contains(line, " [U] udp rx 137B (3 datagrams): sock = ") {
		t.Errorf("GSO datagram console: %q", line)
	}
	ev.Ext.UDP.Dgrams = 1
	if line := string(p.UDPDatagram(nil, ev)); !strings.Contains(line, " [U] udp rx 137B: sock = 0xffff888172830a80 198.18.0.1:40000 -> 198.18.0.2:5353 mac = - ip = 5.398us udp = 21us pid = 24152 comm = udp.test\n") {
		t.Errorf("datagram console: %q", line)
	}

	p.JSON = true
	var m map[string]any
	line := p.UDPFlow(nil, udpFlowEvent())
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	for k, v := range map[string]any{"type": "udp_flow", "event": "interval", "src": "198.18.0.1:40000", "dst": "198.18.0.2:5353",
		"sock": "0xffff888172830a80", "netns": 4026532177.0, "pid": 24152.0, "comm": "udp.test", "conn_id": nil,
		"rx_dgrams": 3.0, "rx_bytes": 300.0, "tx_dgrams": 2.0, "tx_bytes": 222.0, "rx_dgrams_total": 12.0, "rx_bytes_total": 3726.0,
		"tx_dgrams_total": 12.0, "tx_bytes_total": 3642.0, "first_ns": 1000.0, "rx_drops": 1.0, "rx_drops_total": 2.0, "last_ns": 4e9, "ts_ns": 5e9} {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("flow JSON %s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	line = p.UDPDatagram(nil, ev)
	m = nil
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	for k, v := range map[string]any{"type": "udp", "rx": 1.0, "len": 137.0, "dgrams": 1.0, "mac_time_ns": nil, "ip_time_ns": 5398.0, "udp_time_ns": 21000.0, "pid": 24152.0} {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("datagram JSON %s = %v (present %v), want %v", k, got, ok, v)
		}
	}
}
