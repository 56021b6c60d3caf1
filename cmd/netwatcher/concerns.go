package main

import (
	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/dropreason"
	"github.com/netwatcher/netwatcher/internal/drops"
	"github.com/netwatcher/netwatcher/internal/engine"
	"github.com/netwatcher/netwatcher/internal/icmp"
	"github.com/netwatcher/netwatcher/internal/l7cap"
	"github.com/netwatcher/netwatcher/internal/netfilter"
	"github.com/netwatcher/netwatcher/internal/packet"
	"github.com/netwatcher/netwatcher/internal/retrans"
	"github.com/netwatcher/netwatcher/internal/rst"
	"github.com/netwatcher/netwatcher/internal/rtt"
	"github.com/netwatcher/netwatcher/internal/tcpstate"
	"github.com/netwatcher/netwatcher/internal/udp"
)

// concerns lists the kernel concerns of a run, in one place: adding a
// concern is a folder under internal/ and one line here (see CONTRIBUTING
// in the README). Connection tracking comes first and is always on: the
// others share its maps and name their records after its connections.
func concerns(cfg *config.Config) []engine.Concern {
	cs := []engine.Concern{conn.New(cfg)} // connections: open/close, owners, -x state, connects.log
	add := func(on bool, c func() engine.Concern) {
		if on {
			cs = append(cs, c())
		}
	}
	add(!cfg.NoPackets, func() engine.Concern { return packet.New(cfg) }) // packets: seq/ack, -t layer times, -i payload (SPEC §2)
	add(cfg.Retrans, func() engine.Concern { return retrans.New(cfg) })   // -r: retransmitted segments, fast/timeout episodes
	add(cfg.Err, func() engine.Concern { return drops.New(cfg) })         // -e: segments the kernel rejects
	add(cfg.State, func() engine.Concern { return tcpstate.New(cfg) })    // -P: TCP state transitions, handshake latency
	// -k: every dropped packet, any protocol, with its reason (-F, -A)
	add(cfg.DropReason, func() engine.Concern { return dropreason.New(cfg) })
	add(cfg.Rtt, func() engine.Concern { return rtt.New(cfg) }) // --rtt: RTT sample histograms per connection
	add(cfg.Rst, func() engine.Concern { return rst.New(cfg) }) // --rst: resets sent/received, state, reason
	add(cfg.UDP, func() engine.Concern { return udp.New(cfg) }) // -u: UDP flows, -t datagram layer times
	// -I: ICMP/ICMPv6 messages, layer times, echo round trips
	add(cfg.ICMP, func() engine.Concern { return icmp.New(cfg) })
	// -N, -R, -M: one application capture for every protocol that is on (l7.go)
	add(len(l7protocols(cfg)) > 0, func() engine.Concern { return l7cap.New(cfg, l7protocols(cfg)...) })
	// -n: per packet, the time in each netfilter hook; per-hook summaries
	add(cfg.NetFilter, func() engine.Concern { return netfilter.New(cfg) })
	return cs
}
