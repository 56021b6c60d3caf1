package engine

import (
	"net/netip"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

func icmpEv(netns uint32, rx bool, typ uint8, seq uint16, first, last uint64) *event.Event {
	ev := &event.Event{Type: event.ICMP, Conn: event.Conn{Netns: netns}, Ext: &event.Ext{}}
	ev.Ext.ICMP = event.ICMPInfo{Rx: rx, Family: 2, Type: typ, ID: 7, Seq: seq, First: first, Last: last,
		Local: netip.MustParseAddr("198.18.0.1"), Remote: netip.MustParseAddr("198.18.0.2")}
	return ev
}

// The pinging side: request leaving (its last stamp) -> reply arriving
// (its first); the answering side: request arriving -> reply leaving. A
// reply pairs only with a request of its namespace, ends and seq, seen on
// the other direction; an unknown one has no rtt.
func TestICMPPairing(t *testing.T) {
	var tr icmpTrack
	tr.pair(icmpEv(1, false, 8, 1, 100, 130)) // sent request
	rep := icmpEv(1, true, 0, 1, 500, 900)
	tr.pair(rep)
	if got := rep.Ext.ICMP.RttNs; got != 370 {
		t.Errorf("pinging side rtt %d, want 370", got)
	}
	tr.pair(icmpEv(2, true, 8, 1, 200, 300)) // received request (answering side)
	rep = icmpEv(2, false, 0, 1, 310, 350)
	tr.pair(rep)
	if got := rep.Ext.ICMP.RttNs; got != 150 {
		t.Errorf("answering side rtt %d, want 150", got)
	}
	for _, ev := range []*event.Event{
		icmpEv(1, true, 0, 2, 500, 900),  // another seq
		icmpEv(3, true, 0, 1, 500, 900),  // another namespace
		icmpEv(1, false, 0, 1, 500, 900), // same direction as the request
		icmpEv(1, true, 0, 1, 120, 900),  // arriving before the request left: no rtt
	} {
		tr.pair(ev)
		if ev.Ext.ICMP.RttNs != 0 {
			t.Errorf("%+v paired: rtt %d", ev.Ext.ICMP, ev.Ext.ICMP.RttNs)
		}
	}
	// bounded: the oldest requests are forgotten
	for s := 0; s < icmpPairLen+10; s++ {
		tr.pair(icmpEv(9, false, 8, uint16(s), 1, 1))
	}
	if len(tr.req) != icmpPairLen {
		t.Errorf("%d requests kept, want %d", len(tr.req), icmpPairLen)
	}
}
