package output

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// icmpReply: an echo reply received by ping, paired with its request.
func icmpReply() *event.Event {
	ev := &event.Event{Type: event.ICMP, TS: 5_000_000_000, Conn: event.Conn{Sock: 0xffff888167c9cd80, Netns: 4026532314, Pid: 20636}, Ext: &event.Ext{}}
	copy(ev.Conn.Comm[:], "ping")
	ev.Ext.ICMP = event.ICMPInfo{Rx: true, Family: afInet, Type: 0, ID: 20636, Seq: 1, Len: 64,
		Local: netip.MustParseAddr("198.18.250.1"), Remote: netip.MustParseAddr("198.18.250.2"), End: event.ICMPEndCopy,
		MacNs: 541, IPNs: 791, ICMPNs: 8794, RttNs: 17_000}
	return ev
}

// icmpUnreach: a port unreachable the kernel sent, quoting a UDP datagram.
func icmpUnreach() *event.Event {
	ev := &event.Event{Type: event.ICMP, TS: 5_000_000_000, Conn: event.Conn{Netns: 4026532383}, Ext: &event.Ext{}}
	ev.Ext.ICMP = event.ICMPInfo{Family: afInet6, Type: 1, Code: 4, Len: 57, Kernel: true,
		Local: netip.MustParseAddr("fd00::2"), Remote: netip.MustParseAddr("fd00::1"),
		InnerProto: event.ProtoUDP, InnerSrc: netip.MustParseAddrPort("[fd00::1]:40002"), InnerDst: netip.MustParseAddrPort("[fd00::2]:9"),
		MacNs: 371, IPNs: 2453, Missing: event.MissingTCP}
	return ev
}

func TestICMPLogLine(t *testing.T) {
	got := string(AppendICMPLog(nil, icmpReply()))
	want := `icmp{netns="4026532314",sock="0xffff888167c9cd80",src="198.18.250.1",dst="198.18.250.2",pid="20636",comm="ping",owner="process",rx="1",family="ipv4",type="echo_reply",icmp_type="0",code="0",id="20636",seq="1",len="64",mac_time="0.541",ip_time="0.791",icmp_time="8.794",rtt="17",inner_proto="-",inner_src="-",inner_dst="-",conn_id="-"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	got = string(AppendICMPLog(nil, icmpUnreach()))
	want = `icmp{netns="4026532383",sock="-",src="fd00::2",dst="fd00::1",pid="-",comm="-",owner="kernel",rx="0",family="ipv6",type="port_unreachable",icmp_type="1",code="4",id="-",seq="-",len="57",mac_time="0.371",ip_time="2.453",icmp_time="-",rtt="-",inner_proto="udp",inner_src="[fd00::1]:40002",inner_dst="[fd00::2]:9",conn_id="-"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestICMPConsole(t *testing.T) {
	p := Printer{Clock: NewClock(nil)}
	for _, c := range []struct {
		ev   *event.Event
		want string
	}{
		{icmpReply(), " [I] echo_reply received: 198.18.250.1 <- 198.18.250.2 id = 20636 seq = 1 len = 64 mac_time = 0.541 ip_time = 0.791 icmp_time = 8.794 rtt = 17 netns = 4026532314 sock = 0xffff888167c9cd80 pid = 20636 comm = ping\n"},
		{icmpUnreach(), " [I] port_unreachable sent: fd00::2 -> fd00::1 for udp [fd00::1]:40002 -> [fd00::2]:9 len = 57 mac_time = 0.371 ip_time = 2.453 icmp_time = - netns = 4026532383 sock = - kernel\n"},
	} {
		if line := string(p.ICMP(nil, c.ev)); !strings.HasSuffix(line, c.want) {
			t.Errorf("console\n%q\nwant suffix\n%q", line, c.want)
		}
	}
	// an unpaired reply: rtt "-"; a time exceeded quoting an echo: its id/seq
	ev := icmpReply()
	ev.Ext.ICMP.RttNs = 0
	if line := string(p.ICMP(nil, ev)); !strings.Contains(line, " rtt = - ") {
		t.Errorf("unpaired: %s", line)
	}
	ev = icmpUnreach()
	ev.Ext.ICMP.Family, ev.Ext.ICMP.Type, ev.Ext.ICMP.Code, ev.Ext.ICMP.InnerProto = afInet, 11, 0, event.ProtoICMP
	ev.Ext.ICMP.InnerSrc = netip.MustParseAddrPort("198.19.250.1:77")
	ev.Ext.ICMP.InnerDst = netip.MustParseAddrPort("198.19.251.2:3")
	if line := string(p.ICMP(nil, ev)); !strings.Contains(line, " [I] time_exceeded sent: ") || !strings.Contains(line, " for icmp 198.19.250.1 -> 198.19.251.2 id 77 seq 3 ") {
		t.Errorf("time exceeded: %s", line)
	}
}

func TestICMPJSON(t *testing.T) {
	p := Printer{JSON: true, Clock: NewClock(nil)}
	var m map[string]any
	if err := json.Unmarshal(p.ICMP(nil, icmpReply()), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{
		"type": "icmp", "netns": 4026532314.0, "sock": "0xffff888167c9cd80", "conn_id": nil, "src": "198.18.250.1", "dst": "198.18.250.2",
		"pid": 20636.0, "comm": "ping", "owner": "process", "family": "ipv4", "rx": 1.0, "icmp_type": 0.0, "icmp_code": 0.0,
		"kind": "echo_reply", "id": 20636.0, "seq": 1.0, "len": 64.0, "mac_time_ns": 541.0, "ip_time_ns": 791.0, "icmp_time_ns": 8794.0, "rtt_ns": 17000.0,
	} {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if _, ok := m["inner_proto"]; ok {
		t.Errorf("inner fields on an echo: %v", m)
	}
	m = nil
	if err := json.Unmarshal(p.ICMP(nil, icmpUnreach()), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{
		"sock": nil, "pid": nil, "comm": nil, "owner": "kernel", "family": "ipv6", "rx": 0.0, "kind": "port_unreachable",
		"icmp_time_ns": nil, "inner_proto": "udp", "inner_src": "[fd00::1]:40002", "inner_dst": "[fd00::2]:9",
	} {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	for _, k := range []string{"id", "seq", "rtt_ns"} {
		if _, ok := m[k]; ok {
			t.Errorf("%s on a port unreachable: %v", k, m)
		}
	}
}

func TestICMPNames(t *testing.T) {
	for _, c := range []struct {
		family    uint16
		typ, code uint8
		want      string
	}{
		{afInet, 8, 0, "echo_request"}, {afInet, 3, 1, "host_unreachable"}, {afInet, 3, 7, "destination_unreachable"},
		{afInet, 11, 1, "reassembly_time_exceeded"}, {afInet, 200, 0, "type_200"},
		{afInet6, 128, 0, "echo_request"}, {afInet6, 2, 0, "packet_too_big"}, {afInet6, 135, 0, "neighbor_solicitation"},
		{afInet6, 1, 0, "no_route"},
	} {
		if got := ICMPName(c.family, c.typ, c.code); got != c.want {
			t.Errorf("ICMPName(%d, %d, %d) = %q, want %q", c.family, c.typ, c.code, got, c.want)
		}
	}
}
