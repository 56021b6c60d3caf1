package output

import (
	"net/netip"
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel/ksym"
)

// ---- packet drops (-k, -F, -A) ----

// DropLogName is the log of -k in --data-dir.
const DropLogName = "drop.log"

// DropOpts says what a drop record shows beyond the fixed fields.
type DropOpts struct {
	Syms     *ksym.Table // kernel symbols (nil: addresses in hex)
	Location bool        // -F: the location on the console line (JSON and drop.log always have it)
	Stack    bool        // -A
}

// appendProto names the protocol of a drop: tcp, udp, icmp, icmpv6, the
// IP protocol number of any other, "arp" or the ethertype of a packet
// that is not IP, "-" when nothing is known.
func appendProto(b []byte, d *event.DropInfo) []byte {
	switch {
	case d.Family != 0:
		return ipProtoName(b, d.Proto)
	case d.L3 == 0x0806:
		return append(b, "arp"...)
	case d.L3 != 0:
		b = append(b, "ethertype-0x"...)
		return strconv.AppendUint(b, uint64(d.L3), 16)
	}
	return append(b, '-')
}

func jDropAddr(b []byte, k string, d *event.DropInfo, ap netip.AddrPort) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	if !ap.IsValid() {
		return append(b, `":null`...)
	}
	b = append(b, `":"`...)
	b = appendPktAddr(b, d.HasPorts(), ap)
	return append(b, '"')
}

// Drop formats one dropped packet: console line (with -A, one more line
// per stack frame) or JSON record.
func (p *Printer) Drop(b []byte, ev *event.Event, o DropOpts) []byte {
	d := &ev.Ext.Drop
	isICMP := d.Family != 0 && (d.Proto == event.ProtoICMP || d.Proto == event.ProtoICMPv6)
	if p.JSON {
		b = p.jHead(b, "drop", ev.TS)
		c := &ev.Conn
		b = jU(b, "netns", uint64(c.Netns))
		b = jSock(b, c.Sock)
		b = jID(b, c.ID)
		b = jDropAddr(b, "src", d, d.Src)
		b = jDropAddr(b, "dst", d, d.Dst)
		b = jOwner(b, c.Pid, &c.Comm)
		switch d.Family {
		case afInet:
			b = append(b, `,"family":"ipv4"`...)
		case afInet6:
			b = append(b, `,"family":"ipv6"`...)
		default:
			b = append(b, `,"family":null`...)
		}
		b = append(b, `,"proto":"`...)
		b = appendProto(b, d)
		b = append(b, `","reason":"`...)
		b = appendDropReason(b, d.Name, d.Reason)
		b = append(b, '"')
		b = jU(b, "reason_code", uint64(d.Reason))
		b = append(b, `,"location":"`...)
		b = o.Syms.Append(b, d.Location)
		b = append(b, '"')
		b = jU(b, "location_addr", d.Location)
		if isICMP {
			b = jU(b, "icmp_type", uint64(d.ICMPType))
			b = jU(b, "icmp_code", uint64(d.ICMPCode))
		}
		b = jU(b, "from_sock", b2u(d.FromSock))
		if o.Stack {
			b = append(b, `,"stack":[`...)
			for i, a := range DropStack(d) {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, '"')
				b = o.Syms.Append(b, a)
				b = append(b, '"')
			}
			b = append(b, ']')
		}
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [D] "...)
	b = appendDropReason(b, d.Name, d.Reason)
	b = append(b, ": "...)
	b = appendProto(b, d)
	b = append(b, ' ')
	b = appendPktAddr(b, d.HasPorts(), d.Src)
	b = append(b, " -> "...)
	b = appendPktAddr(b, d.HasPorts(), d.Dst)
	if isICMP {
		b = appendICMPTypeText(b, d.ICMPType, d.ICMPCode)
	}
	b = append(b, " netns = "...)
	b = strconv.AppendUint(b, uint64(ev.Conn.Netns), 10)
	b = append(b, " conn = "...)
	b = appendIDText(b, ev.Conn.ID)
	b = appendSockText(b, ev.Conn.Sock)
	b = appendOwnerText(b, &ev.Conn)
	if o.Location || o.Stack {
		b = append(b, " at "...)
		b = o.Syms.Append(b, d.Location)
	}
	b = append(b, '\n')
	if o.Stack {
		for i, a := range DropStack(d) {
			b = append(b, "    #"...)
			b = strconv.AppendUint(b, uint64(i), 10)
			b = append(b, ' ')
			b = o.Syms.Append(b, a)
			b = append(b, '\n')
		}
	}
	return b
}

// DropStack is the kernel stack of a drop from the location on: the frames
// above it (the tracepoint and BPF machinery that took the stack) are left
// out, so the first frame is the function that dropped the packet. When
// the location is not among the frames, the whole stack.
func DropStack(d *event.DropInfo) []uint64 {
	st := d.Stack[:min(int(d.NStack), len(d.Stack))]
	for i, a := range st {
		if a == d.Location {
			return st[i:]
		}
	}
	return st
}

// AppendDropLog appends one drop.log line.
func AppendDropLog(b []byte, ev *event.Event, o DropOpts) []byte {
	d := &ev.Ext.Drop
	b = append(b, "drop{"...)
	b = kv(b, "netns", true)
	b = strconv.AppendUint(b, uint64(ev.Conn.Netns), 10)
	b = append(b, '"')
	b = kv(b, "proto", false)
	b = appendProto(b, d)
	b = append(b, '"')
	b = kv(b, "src", false)
	b = appendPktAddr(b, d.HasPorts(), d.Src)
	b = append(b, '"')
	b = kv(b, "dst", false)
	b = appendPktAddr(b, d.HasPorts(), d.Dst)
	b = append(b, '"')
	b = kv(b, "reason", false)
	b = appendDropReason(b, d.Name, d.Reason)
	b = append(b, '"')
	b = kv(b, "location", false)
	b = o.Syms.Append(b, d.Location)
	b = append(b, '"')
	if o.Stack {
		b = kv(b, "stack", false)
		for i, a := range DropStack(d) {
			if i > 0 {
				b = append(b, ';')
			}
			b = o.Syms.Append(b, a)
		}
		b = append(b, '"')
	}
	b = kvID(b, ev.Conn.ID)
	return append(b, "}\n"...)
}

// ListenOverflow is one listener's accept-queue overflows in a run.
type ListenOverflow struct {
	Netns uint32
	Port  uint16
	Drops uint64
	Pid   uint32
	Comm  event.Comm
}

// ListenOverflowLine formats one listener's overflow count (at exit):
// console line or JSON record.
func (p *Printer) ListenOverflowLine(b []byte, ts uint64, l *ListenOverflow) []byte {
	if p.JSON {
		b = p.jHead(b, "listen_overflow", ts)
		b = jU(b, "netns", uint64(l.Netns))
		b = jU(b, "port", uint64(l.Port))
		b = jU(b, "drops", l.Drops)
		b = jOwner(b, l.Pid, &l.Comm)
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ts)
	b = append(b, " [L] listen overflow: netns = "...)
	b = strconv.AppendUint(b, uint64(l.Netns), 10)
	b = append(b, " port = "...)
	b = strconv.AppendUint(b, uint64(l.Port), 10)
	b = append(b, " drops = "...)
	b = strconv.AppendUint(b, l.Drops, 10)
	c := event.Conn{Pid: l.Pid, Comm: l.Comm}
	b = appendOwnerText(b, &c)
	return append(b, '\n')
}

// AppendListenOverflowLog appends one drop.log summary line of a listener
// (at exit).
func AppendListenOverflowLog(b []byte, l *ListenOverflow) []byte {
	b = append(b, "listen_overflow{"...)
	b = kv(b, "netns", true)
	b = strconv.AppendUint(b, uint64(l.Netns), 10)
	b = append(b, '"')
	b = kvU(b, "port", uint64(l.Port))
	b = kvU(b, "drops", l.Drops)
	b = kvOwner(b, l.Pid, &l.Comm, false)
	return append(b, "}\n"...)
}

const (
	afInet  = 2
	afInet6 = 10
)
