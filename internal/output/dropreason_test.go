package output

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel/ksym"
)

func dropEvent() *event.Event {
	ev := &event.Event{Type: event.Drop, TS: 1000, Conn: event.Conn{Netns: 4026532177, Sock: 0xffff8881, ID: 3, Pid: 42}, Ext: &event.Ext{}}
	copy(ev.Conn.Comm[:], "srv")
	ev.Ext.Drop = event.DropInfo{Reason: 12, Name: "NETFILTER_DROP", Location: 0xffffffff81000110, Family: afInet, Proto: event.ProtoUDP,
		Src: netip.MustParseAddrPort("10.0.0.1:5000"), Dst: netip.MustParseAddrPort("10.0.0.2:53"),
		NStack: 3, Stack: [event.DropStackMax]uint64{0xffffffff81000005, 0xffffffff81000110, 0xffffffff81000208}}
	return ev
}

func TestDropFormats(t *testing.T) {
	syms, err := ksym.Parse(strings.NewReader("ffffffff81000000 t bpf_trace_run4\nffffffff81000100 T nft_do_chain\nffffffff81000200 t nf_hook_slow\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := DropOpts{Syms: syms, Location: true, Stack: true}
	ev := dropEvent()
	log := string(AppendDropLog(nil, ev, o))
	want := `drop{netns="4026532177",proto="udp",src="10.0.0.1:5000",dst="10.0.0.2:53",reason="NETFILTER_DROP",location="nft_do_chain+0x10",stack="nft_do_chain+0x10;nf_hook_slow+0x8",conn_id="3"}` + "\n"
	if log != want {
		t.Errorf("log:\n%s\nwant\n%s", log, want)
	}
	p := Printer{Clock: NewClock(nil)}
	line := string(p.Drop(nil, ev, o))
	for _, s := range []string{" [D] NETFILTER_DROP: udp 10.0.0.1:5000 -> 10.0.0.2:53 netns = 4026532177 conn = 3 sock = 0xffff8881 pid = 42 comm = srv at nft_do_chain+0x10\n", "    #0 nft_do_chain+0x10\n    #1 nf_hook_slow+0x8\n"} {
		if !strings.Contains(line, s) {
			t.Errorf("console %q: want %q", line, s)
		}
	}
	p.JSON = true
	js := string(p.Drop(nil, ev, o))
	for _, s := range []string{`"type":"drop"`, `"proto":"udp"`, `"reason":"NETFILTER_DROP","reason_code":12`, `"location":"nft_do_chain+0x10"`, `"stack":["nft_do_chain+0x10","nf_hook_slow+0x8"]`, `"conn_id":3`, `"pid":42,"comm":"srv"`} {
		if !strings.Contains(js, s) {
			t.Errorf("json %s: want %s", js, s)
		}
	}
	// ICMP: no ports; not IP: no addresses; unnamed reason
	ev.Ext.Drop.Proto, ev.Ext.Drop.ICMPType, ev.Ext.Drop.Name = event.ProtoICMP, 8, ""
	if l := string(AppendDropLog(nil, ev, DropOpts{Syms: syms})); !strings.Contains(l, `proto="icmp",src="10.0.0.1",dst="10.0.0.2",reason="reason 12"`) {
		t.Errorf("icmp log %s", l)
	}
	ev.Ext.Drop.Family, ev.Ext.Drop.L3, ev.Ext.Drop.Src, ev.Ext.Drop.Dst = 0, 0x0806, netip.AddrPort{}, netip.AddrPort{}
	if l := string(AppendDropLog(nil, ev, DropOpts{})); !strings.Contains(l, `proto="arp",src="-",dst="-"`) || !strings.Contains(l, `location="0xffffffff81000110"`) {
		t.Errorf("arp log %s", l)
	}
}
