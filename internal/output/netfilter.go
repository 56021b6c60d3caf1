package output

import (
	"net/netip"
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// ---- netfilter hook times (-n) ----

// NFLogName is the log of -n in --data-dir.
const NFLogName = "netfilter.log"

func nfFamily(f uint16) string {
	if f == afInet6 {
		return "ipv6"
	}
	return "ipv4"
}

// nfHookName is the name of hook h ("-" for NFBetween or unknown).
func nfHookName(h uint8) string {
	if int(h) < event.NFHooks {
		return event.NFHookNames[h]
	}
	return "-"
}

// NFTotalNs is the packet's time in netfilter: the sum of its hooks.
func NFTotalNs(n *event.NFInfo) uint64 {
	var t uint64
	for i, d := range n.DurNs {
		if n.Hooks&(1<<i) != 0 {
			t += uint64(d)
		}
	}
	return t
}

// NF formats one netfilter record: a packet's hook times, or a hook's
// summary (console line or JSON record).
func (p *Printer) NF(b []byte, ev *event.Event) []byte {
	n := &ev.Ext.NF
	if n.Summary {
		return p.nfSummary(b, ev)
	}
	isICMP := n.Proto == event.ProtoICMP || n.Proto == event.ProtoICMPv6
	c := &ev.Conn
	if p.JSON {
		b = p.jHead(b, "netfilter", ev.TS)
		b = jU(b, "netns", uint64(c.Netns))
		b = jSock(b, c.Sock)
		b = jID(b, c.ID)
		for _, a := range [2]struct {
			k  string
			ap netip.AddrPort
		}{{"src", n.Src}, {"dst", n.Dst}} {
			b = append(b, ',', '"')
			b = append(b, a.k...)
			b = append(b, `":"`...)
			b = appendPktAddr(b, n.HasPorts(), a.ap)
			b = append(b, '"')
		}
		b = jOwner(b, c.Pid, &c.Comm)
		b = append(b, `,"family":"`...)
		b = append(b, nfFamily(n.Family)...)
		b = append(b, `","proto":"`...)
		b = ipProtoName(b, n.Proto)
		b = append(b, '"')
		if isICMP {
			b = jU(b, "icmp_type", uint64(n.ICMPType))
			b = jU(b, "icmp_code", uint64(n.ICMPCode))
		}
		if n.Dropped {
			b = append(b, `,"verdict":"drop","drop_hook":`...)
			if n.DropHook == event.NFBetween {
				b = append(b, "null"...)
			} else {
				b = append(b, '"')
				b = append(b, nfHookName(n.DropHook)...)
				b = append(b, '"')
			}
			b = append(b, `,"reason":"`...)
			b = appendDropReason(b, n.Name, n.Reason)
			b = append(b, '"')
			b = jU(b, "reason_code", uint64(n.Reason))
		} else {
			b = append(b, `,"verdict":"accept"`...)
		}
		b = append(b, `,"hooks":{`...)
		first := true
		for i, d := range n.DurNs {
			if n.Hooks&(1<<i) == 0 {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '"')
			b = append(b, event.NFHookNames[i]...)
			b = append(b, `":`...)
			b = strconv.AppendUint(b, uint64(d), 10)
		}
		b = append(b, '}')
		b = jU(b, "total_ns", NFTotalNs(n))
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [N] nf "...)
	if n.Dropped {
		b = append(b, "drop in "...)
		if n.DropHook == event.NFBetween {
			b = append(b, "routing"...)
		} else {
			b = append(b, nfHookName(n.DropHook)...)
		}
		b = append(b, " ("...)
		b = appendDropReason(b, n.Name, n.Reason)
		b = append(b, ") "...)
	}
	b = ipProtoName(b, n.Proto)
	b = append(b, ' ')
	b = appendPktAddr(b, n.HasPorts(), n.Src)
	b = append(b, " -> "...)
	b = appendPktAddr(b, n.HasPorts(), n.Dst)
	if isICMP {
		b = appendICMPTypeText(b, n.ICMPType, n.ICMPCode)
	}
	b = append(b, ':')
	for i, d := range n.DurNs {
		if n.Hooks&(1<<i) == 0 {
			continue
		}
		b = append(b, ' ')
		b = append(b, event.NFHookNames[i]...)
		b = append(b, ' ')
		b = appendUs3(b, uint64(d))
		b = append(b, "us"...)
	}
	b = append(b, " netns = "...)
	b = strconv.AppendUint(b, uint64(c.Netns), 10)
	b = append(b, " conn = "...)
	b = appendIDText(b, c.ID)
	b = appendSockText(b, c.Sock)
	b = appendOwnerText(b, c)
	return append(b, '\n')
}

func nfSumKind(s *event.NFSummary) string {
	if s.Final {
		return "exit"
	}
	return "interval"
}

type nfStatVal struct {
	k string
	v uint64
}

// nfStats are a summary's p50, p99, mean and max (ns).
func nfStats(s *event.NFSummary) [4]nfStatVal {
	return [4]nfStatVal{{"p50", uint64(s.QuantileNs(0.5))}, {"p99", uint64(s.QuantileNs(0.99))}, {"mean", uint64(s.MeanNs())}, {"max", s.MaxNs}}
}

// nfStat appends v in µs, or none when the summary has no traversal (only
// drops): the times are not known.
func nfStat(b []byte, s *event.NFSummary, v uint64, none string) []byte {
	if s.Count() == 0 {
		return append(b, none...)
	}
	return appendUs3(b, v)
}

func (p *Printer) nfSummary(b []byte, ev *event.Event) []byte {
	s := &ev.Ext.NF.Sum
	if p.JSON {
		b = p.jHead(b, "netfilter_summary", ev.TS)
		b = append(b, `,"event":"`...)
		b = append(b, nfSumKind(s)...)
		b = append(b, `","family":"`...)
		b = append(b, nfFamily(s.Family)...)
		b = append(b, `","hook":"`...)
		b = append(b, nfHookName(s.Hook)...)
		b = append(b, '"')
		b = jU(b, "count", s.Count())
		b = jU(b, "drops", s.Drops)
		for _, q := range nfStats(s) {
			b = append(b, `,"`...)
			b = append(b, q.k...)
			b = append(b, `_us":`...)
			b = nfStat(b, s, q.v, "null")
		}
		b = append(b, `,"buckets":[`...)
		for i, c := range s.Buckets {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, c, 10)
		}
		return append(b, "]}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [N] nf summary "...)
	b = append(b, nfSumKind(s)...)
	b = append(b, ": "...)
	b = append(b, nfFamily(s.Family)...)
	b = append(b, ' ')
	b = append(b, nfHookName(s.Hook)...)
	b = append(b, " packets = "...)
	b = strconv.AppendUint(b, s.Count(), 10)
	for _, q := range nfStats(s) {
		b = append(b, ' ')
		b = append(b, q.k...)
		b = append(b, " = "...)
		b = nfStat(b, s, q.v, "-")
		if s.Count() > 0 {
			b = append(b, "us"...)
		}
	}
	b = append(b, " drops = "...)
	b = strconv.AppendUint(b, s.Drops, 10)
	return append(b, '\n')
}

// AppendNFLog appends one netfilter.log line: a packet's
// netfilter{netns,proto,src,dst,verdict,hooks,drop_hook,reason,conn_id}
// (hooks as HOOK:µs pairs, three decimals) or a hook's
// netfilter_summary{event,family,hook,count,drops,p50,p99,mean,max} (µs).
func AppendNFLog(b []byte, ev *event.Event) []byte {
	n := &ev.Ext.NF
	if n.Summary {
		s := &n.Sum
		b = append(b, "netfilter_summary{"...)
		b = kv(b, "event", true)
		b = append(b, nfSumKind(s)...)
		b = append(b, '"')
		b = kv(b, "family", false)
		b = append(b, nfFamily(s.Family)...)
		b = append(b, '"')
		b = kv(b, "hook", false)
		b = append(b, nfHookName(s.Hook)...)
		b = append(b, '"')
		b = kvU(b, "count", s.Count())
		b = kvU(b, "drops", s.Drops)
		for _, q := range nfStats(s) {
			b = kv(b, q.k, false)
			b = nfStat(b, s, q.v, "-")
			b = append(b, '"')
		}
		return append(b, "}\n"...)
	}
	b = append(b, "netfilter{"...)
	b = kv(b, "netns", true)
	b = strconv.AppendUint(b, uint64(ev.Conn.Netns), 10)
	b = append(b, '"')
	b = kv(b, "proto", false)
	b = ipProtoName(b, n.Proto)
	b = append(b, '"')
	b = kv(b, "src", false)
	b = appendPktAddr(b, n.HasPorts(), n.Src)
	b = append(b, '"')
	b = kv(b, "dst", false)
	b = appendPktAddr(b, n.HasPorts(), n.Dst)
	b = append(b, '"')
	b = kv(b, "verdict", false)
	if n.Dropped {
		b = append(b, "drop"...)
	} else {
		b = append(b, "accept"...)
	}
	b = append(b, '"')
	b = kv(b, "hooks", false)
	first := true
	for i, d := range n.DurNs {
		if n.Hooks&(1<<i) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, event.NFHookNames[i]...)
		b = append(b, ':')
		b = appendUs3(b, uint64(d))
	}
	b = append(b, '"')
	b = kv(b, "drop_hook", false)
	if n.Dropped {
		b = append(b, nfHookName(n.DropHook)...)
	} else {
		b = append(b, '-')
	}
	b = append(b, '"')
	b = kv(b, "reason", false)
	if n.Dropped {
		b = appendDropReason(b, n.Name, n.Reason)
	} else {
		b = append(b, '-')
	}
	b = append(b, '"')
	b = kvID(b, ev.Conn.ID)
	return append(b, "}\n"...)
}
