package engine

import (
	"net/netip"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

// ---- ICMP (-I) ----

// icmpPairLen bounds the echo requests kept for pairing with their reply
// (the oldest is forgotten first: its reply then has no rtt).
const icmpPairLen = 4096

// icmpKey names an echo: its namespace, local and remote ends, id and
// seq, and on which side of the exchange it was seen (rx: the request was
// received here, this host answers).
type icmpKey struct {
	netns         uint32
	local, remote netip.Addr
	id, seq       uint16
	rx            bool
}

// icmpTrack is the pipeline's state for -I: icmp.log and the echo
// requests waiting for their reply.
type icmpTrack struct {
	log     *output.Log
	logDone bool
	req     map[icmpKey]uint64 // request's stamp: leaving (sent) or arriving (received)
	ring    [icmpPairLen]icmpKey
	n       int
}

// icmpPair: a request is kept; a reply gets the round trip as the kernel
// saw it. Pinging side (request sent, reply received): the request leaving
// (driver, else the last boundary seen) -> the reply arriving (link, else
// the first boundary seen). Answering side (request received, reply sent):
// the request arriving -> the reply leaving.
func (t *icmpTrack) pair(ev *event.Event) {
	i := &ev.Ext.ICMP
	switch {
	case i.IsRequest():
		k := icmpKey{ev.Conn.Netns, i.Local, i.Remote, i.ID, i.Seq, i.Rx}
		stamp := i.Last // sent: leaving
		if i.Rx {
			stamp = i.First // received: arriving
		}
		if stamp == 0 {
			return
		}
		if t.req == nil {
			t.req = make(map[icmpKey]uint64)
		}
		if _, ok := t.req[k]; !ok {
			slot := t.n % icmpPairLen
			if t.n >= icmpPairLen {
				delete(t.req, t.ring[slot])
			}
			t.ring[slot] = k
			t.n++
		}
		t.req[k] = stamp
	case i.IsReply():
		// the reply received pairs with a request sent, and the reverse
		k := icmpKey{ev.Conn.Netns, i.Local, i.Remote, i.ID, i.Seq, !i.Rx}
		req, ok := t.req[k]
		if !ok {
			return
		}
		end := i.First // received: arriving
		if !i.Rx {
			end = i.Last // sent: leaving
		}
		if end > req {
			i.RttNs = end - req
		}
	}
}

func (p *pipeline) icmpEvent(ev *event.Event) {
	t := &p.icmp
	t.pair(ev)
	if !t.logDone {
		t.log, t.logDone = p.files.Log(output.ICMPLogName), true
	}
	if t.log != nil {
		p.lbuf = output.AppendICMPLog(p.lbuf[:0], ev)
		t.log.Write(p.lbuf)
	}
	if !p.cfg.Quiet {
		p.buf = p.pr.ICMP(p.buf[:0], ev)
		p.out.Write(p.buf)
	}
}
