package output

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// nfEvent: a TCP segment received: PRE_ROUTING 0.412 µs, LOCAL_IN 38.1 µs.
func nfEvent() *event.Event {
	ev := &event.Event{Type: event.NF, TS: 5_000_000_000, Conn: event.Conn{Sock: 0xffff8881456665c0, Netns: 4026532247, ID: 3, Pid: 6089},
		Ext: &event.Ext{}}
	copy(ev.Conn.Comm[:], "nwpeer")
	ev.Ext.NF = event.NFInfo{Family: afInet, Proto: event.ProtoTCP, Hooks: 1<<event.NFPreRouting | 1<<event.NFLocalIn,
		DurNs: [event.NFHooks]uint32{412, 38_100}, Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:8080")}
	return ev
}

// nfDrop: an ICMPv6 echo dropped by a rule in LOCAL_IN, no socket.
func nfDrop() *event.Event {
	ev := &event.Event{Type: event.NF, TS: 5_000_000_000, Conn: event.Conn{Netns: 4026532247}, Ext: &event.Ext{}}
	ev.Ext.NF = event.NFInfo{Family: afInet6, Proto: event.ProtoICMPv6, ICMPType: 128, Hooks: 1<<event.NFPreRouting | 1<<event.NFLocalIn,
		DurNs: [event.NFHooks]uint32{150, 2_000}, Src: netip.MustParseAddrPort("[fd00::1]:0"), Dst: netip.MustParseAddrPort("[fd00::2]:0"),
		Dropped: true, DropHook: event.NFLocalIn, Reason: 6, Name: "NETFILTER_DROP"}
	return ev
}

// nfSum: LOCAL_IN over IPv4, 3 traversals (300, 400, 5000 ns), 1 drop.
func nfSum(final bool) *event.Event {
	ev := &event.Event{Type: event.NF, TS: 5_000_000_000, Ext: &event.Ext{}}
	ev.Ext.NF = event.NFInfo{Summary: true, Sum: event.NFSummary{Final: final, Family: afInet, Hook: event.NFLocalIn, SumNs: 5700, MaxNs: 5000, Drops: 1}}
	ev.Ext.NF.Sum.Buckets[8], ev.Ext.NF.Sum.Buckets[12] = 2, 1
	return ev
}

func TestNFLogLines(t *testing.T) {
	for _, c := range []struct {
		ev   *event.Event
		want string
	}{
		{nfEvent(), `netfilter{netns="4026532247",proto="tcp",src="10.0.0.1:40000",dst="10.0.0.2:8080",verdict="accept",hooks="PRE_ROUTING:0.412,LOCAL_IN:38.100",drop_hook="-",reason="-",conn_id="3"}`},
		{nfDrop(), `netfilter{netns="4026532247",proto="icmpv6",src="fd00::1",dst="fd00::2",verdict="drop",hooks="PRE_ROUTING:0.150,LOCAL_IN:2.000",drop_hook="LOCAL_IN",reason="NETFILTER_DROP",conn_id="-"}`},
		{nfSum(false), `netfilter_summary{event="interval",family="ipv4",hook="LOCAL_IN",count="3",drops="1",p50="0.448",p99="5.000",mean="1.900",max="5.000"}`},
	} {
		if got := string(AppendNFLog(nil, c.ev)); got != c.want+"\n" {
			t.Errorf("got\n%s\nwant\n%s", got, c.want)
		}
	}
	ev := nfDrop()
	ev.Ext.NF.DropHook, ev.Ext.NF.Name = event.NFBetween, ""
	if got := string(AppendNFLog(nil, ev)); !strings.Contains(got, `drop_hook="-",reason="reason 6"`) {
		t.Errorf("dropped between hooks, unnamed reason: %s", got)
	}
}

func TestNFConsole(t *testing.T) {
	p := Printer{Clock: NewClock(nil)}
	for _, c := range []struct {
		ev   *event.Event
		want string
	}{
		{nfEvent(), " [N] nf tcp 10.0.0.1:40000 -> 10.0.0.2:8080: PRE_ROUTING 0.412us LOCAL_IN 38.100us netns = 4026532247 conn = 3 sock = 0xffff8881456665c0 pid = 6089 comm = nwpeer\n"},
		{nfDrop(), " [N] nf drop in LOCAL_IN (NETFILTER_DROP) icmpv6 fd00::1 -> fd00::2 type 128 code 0: PRE_ROUTING 0.150us LOCAL_IN 2.000us netns = 4026532247 conn = - sock = -\n"},
		{nfSum(true), " [N] nf summary exit: ipv4 LOCAL_IN packets = 3 p50 = 0.448us p99 = 5.000us mean = 1.900us max = 5.000us drops = 1\n"},
	} {
		if got := string(p.NF(nil, c.ev)); !strings.HasSuffix(got, c.want) {
			t.Errorf("got\n%s\nwant suffix\n%s", got, c.want)
		}
	}
}

func TestNFJSON(t *testing.T) {
	p := Printer{Clock: NewClock(nil), JSON: true}
	var m map[string]any
	if err := json.Unmarshal(p.NF(nil, nfEvent()), &m); err != nil {
		t.Fatal(err)
	}
	h, _ := m["hooks"].(map[string]any)
	if m["type"] != "netfilter" || m["netns"] != 4026532247.0 || m["sock"] != "0xffff8881456665c0" || m["conn_id"] != 3.0 ||
		m["src"] != "10.0.0.1:40000" || m["dst"] != "10.0.0.2:8080" || m["pid"] != 6089.0 || m["comm"] != "nwpeer" ||
		m["family"] != "ipv4" || m["proto"] != "tcp" || m["verdict"] != "accept" || len(h) != 2 ||
		h["PRE_ROUTING"] != 412.0 || h["LOCAL_IN"] != 38100.0 || m["total_ns"] != 38512.0 || m["ts_ns"] != 5e9 {
		t.Errorf("json %v", m)
	}
	if _, ok := m["reason"]; ok {
		t.Error("reason present for a packet that passed")
	}
	m = nil
	if err := json.Unmarshal(p.NF(nil, nfDrop()), &m); err != nil {
		t.Fatal(err)
	}
	if m["sock"] != nil || m["conn_id"] != nil || m["pid"] != nil || m["src"] != "fd00::1" || m["family"] != "ipv6" ||
		m["verdict"] != "drop" || m["drop_hook"] != "LOCAL_IN" || m["reason"] != "NETFILTER_DROP" || m["reason_code"] != 6.0 ||
		m["icmp_type"] != 128.0 || m["icmp_code"] != 0.0 {
		t.Errorf("json drop %v", m)
	}
	m = nil
	if err := json.Unmarshal(p.NF(nil, nfSum(false)), &m); err != nil {
		t.Fatal(err)
	}
	b, _ := m["buckets"].([]any)
	if m["type"] != "netfilter_summary" || m["event"] != "interval" || m["family"] != "ipv4" || m["hook"] != "LOCAL_IN" ||
		m["count"] != 3.0 || m["drops"] != 1.0 || m["p50_us"] != 0.448 || m["p99_us"] != 5.0 || m["mean_us"] != 1.9 ||
		m["max_us"] != 5.0 || len(b) != event.NFSlots || b[8] != 2.0 {
		t.Errorf("json summary %v", m)
	}
}

// A hook whose only packets were dropped in it: no time is known.
func TestNFSummaryDropsOnly(t *testing.T) {
	ev := nfSum(true)
	ev.Ext.NF.Sum.Buckets = [event.NFSlots]uint64{}
	ev.Ext.NF.Sum.SumNs, ev.Ext.NF.Sum.MaxNs = 0, 0
	if got := string(AppendNFLog(nil, ev)); !strings.Contains(got, `count="0",drops="1",p50="-",p99="-",mean="-",max="-"}`) {
		t.Errorf("log: %s", got)
	}
	p := Printer{Clock: NewClock(nil)}
	if got := string(p.NF(nil, ev)); !strings.HasSuffix(got, "packets = 0 p50 = - p99 = - mean = - max = - drops = 1\n") {
		t.Errorf("console: %s", got)
	}
	p.JSON = true
	var m map[string]any
	if err := json.Unmarshal(p.NF(nil, ev), &m); err != nil {
		t.Fatal(err)
	}
	if v, ok := m["p50_us"]; !ok || v != nil || m["max_us"] != nil || m["drops"] != 1.0 {
		t.Errorf("json: %v", m)
	}
}
