package output

import (
	"net/netip"
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// ---- ICMP (-I) ----

// ICMPLogName is the log of -I in --data-dir.
const ICMPLogName = "icmp.log"

// ICMPName names an ICMP (family AF_INET) or ICMPv6 message by type and,
// where the code says what happened, code: echo_request, port_unreachable,
// time_exceeded, packet_too_big, ... ("type_N" for a type without a name).
func ICMPName(family uint16, typ, code uint8) string {
	if family == afInet6 {
		switch typ {
		case 1:
			switch code {
			case 0:
				return "no_route"
			case 1:
				return "admin_prohibited"
			case 3:
				return "address_unreachable"
			case 4:
				return "port_unreachable"
			}
			return "destination_unreachable"
		case 2:
			return "packet_too_big"
		case 3:
			if code == 1 {
				return "reassembly_time_exceeded"
			}
			return "time_exceeded"
		case 4:
			return "parameter_problem"
		case 128:
			return "echo_request"
		case 129:
			return "echo_reply"
		case 130:
			return "mld_query"
		case 131:
			return "mld_report"
		case 132:
			return "mld_done"
		case 133:
			return "router_solicitation"
		case 134:
			return "router_advertisement"
		case 135:
			return "neighbor_solicitation"
		case 136:
			return "neighbor_advertisement"
		case 137:
			return "redirect"
		case 143:
			return "mldv2_report"
		}
		return "type_" + strconv.Itoa(int(typ))
	}
	switch typ {
	case 0:
		return "echo_reply"
	case 3:
		switch code {
		case 0:
			return "net_unreachable"
		case 1:
			return "host_unreachable"
		case 2:
			return "protocol_unreachable"
		case 3:
			return "port_unreachable"
		case 4:
			return "fragmentation_needed"
		case 13:
			return "admin_prohibited"
		}
		return "destination_unreachable"
	case 4:
		return "source_quench"
	case 5:
		return "redirect"
	case 8:
		return "echo_request"
	case 11:
		if code == 1 {
			return "reassembly_time_exceeded"
		}
		return "time_exceeded"
	case 12:
		return "parameter_problem"
	case 13:
		return "timestamp_request"
	case 14:
		return "timestamp_reply"
	}
	return "type_" + strconv.Itoa(int(typ))
}

// ipProtoName names an IP protocol number (tcp, udp, icmp, icmpv6, else
// the number).
func ipProtoName(b []byte, p uint8) []byte {
	switch p {
	case event.ProtoTCP:
		return append(b, "tcp"...)
	case event.ProtoUDP:
		return append(b, "udp"...)
	case event.ProtoICMP:
		return append(b, "icmp"...)
	case event.ProtoICMPv6:
		return append(b, "icmpv6"...)
	}
	b = append(b, "ip-proto-"...)
	return strconv.AppendUint(b, uint64(p), 10)
}

func icmpInnerPorts(i *event.ICMPInfo) bool {
	return i.InnerProto == event.ProtoTCP || i.InnerProto == event.ProtoUDP
}

func icmpInnerEcho(i *event.ICMPInfo) bool {
	return i.InnerProto == event.ProtoICMP || i.InnerProto == event.ProtoICMPv6
}

// appendInnerAddr: ip:port for TCP/UDP, the address alone otherwise.
func appendInnerAddr(b []byte, i *event.ICMPInfo, ap netip.AddrPort) []byte {
	if icmpInnerPorts(i) {
		return ap.AppendTo(b)
	}
	return ap.Addr().AppendTo(b)
}

func icmpDir(i *event.ICMPInfo) string {
	if i.Rx {
		return "received"
	}
	return "sent"
}

// icmpOwner: "process" (pid/comm known), "kernel" (made or answered by
// the kernel itself), "" (not known: an error handed to its flow's socket,
// an echo nobody read).
func icmpOwner(ev *event.Event) string {
	switch {
	case ev.Ext.ICMP.Kernel:
		return "kernel"
	case ev.Conn.Pid != 0:
		return "process"
	}
	return ""
}

// icmpRtt: the echo round trip is given on echo replies only.
func icmpRtt(i *event.ICMPInfo) bool { return i.IsReply() }

// ICMP formats one ICMP message: console line or JSON record.
//
// JSON: netns, sock (null: no application socket), conn_id (null: not a
// connection), src/dst (the local and the remote address; the message
// goes dst -> src when rx is 1), pid/comm, owner (process, kernel, null),
// family, rx, icmp_type, icmp_code, kind (its name), id/seq (echo only),
// len (ICMP bytes), mac_time_ns, ip_time_ns, icmp_time_ns (null: boundary
// not seen), rtt_ns (echo replies: the round trip as the kernel saw it,
// null when the request was not seen), inner_proto, inner_src, inner_dst
// (error types: the quoted packet; inner_id/inner_seq when it is an echo).
func (p *Printer) ICMP(b []byte, ev *event.Event) []byte {
	i := &ev.Ext.ICMP
	c := &ev.Conn
	if p.JSON {
		b = p.jHead(b, "icmp", ev.TS)
		b = jU(b, "netns", uint64(c.Netns))
		if c.Sock == 0 {
			b = append(b, `,"sock":null`...)
		} else {
			b = append(b, `,"sock":"`...)
			b = appendHex(b, c.Sock)
			b = append(b, '"')
		}
		b = jID(b, c.ID)
		b = jAddr(b, "src", i.Local)
		b = jAddr(b, "dst", i.Remote)
		b = jOwner(b, c.Pid, &c.Comm)
		if o := icmpOwner(ev); o == "" {
			b = append(b, `,"owner":null`...)
		} else {
			b = jStr(b, "owner", []byte(o))
		}
		if i.Family == afInet6 {
			b = append(b, `,"family":"ipv6"`...)
		} else {
			b = append(b, `,"family":"ipv4"`...)
		}
		b = jU(b, "rx", b2u(i.Rx))
		b = jU(b, "icmp_type", uint64(i.Type))
		b = jU(b, "icmp_code", uint64(i.Code))
		b = jStr(b, "kind", []byte(ICMPName(i.Family, i.Type, i.Code)))
		if i.IsEcho() {
			b = jU(b, "id", uint64(i.ID))
			b = jU(b, "seq", uint64(i.Seq))
		}
		b = jU(b, "len", uint64(i.Len))
		b = jTime(b, "mac_time_ns", i.MacNs, i.Missing&event.MissingMac != 0)
		b = jTime(b, "ip_time_ns", i.IPNs, i.Missing&event.MissingIP != 0)
		b = jTime(b, "icmp_time_ns", i.ICMPNs, i.Missing&event.MissingTCP != 0)
		if icmpRtt(i) {
			b = jTime(b, "rtt_ns", i.RttNs, i.RttNs == 0)
		}
		if i.InnerProto != 0 {
			b = append(b, `,"inner_proto":"`...)
			b = ipProtoName(b, i.InnerProto)
			b = append(b, `","inner_src":"`...)
			b = appendInnerAddr(b, i, i.InnerSrc)
			b = append(b, `","inner_dst":"`...)
			b = appendInnerAddr(b, i, i.InnerDst)
			b = append(b, '"')
			if icmpInnerEcho(i) {
				b = jU(b, "inner_id", uint64(i.InnerSrc.Port()))
				b = jU(b, "inner_seq", uint64(i.InnerDst.Port()))
			}
		}
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [I] "...)
	b = append(b, ICMPName(i.Family, i.Type, i.Code)...)
	b = append(b, ' ')
	b = append(b, icmpDir(i)...)
	b = append(b, ": "...)
	b = appendAddr(b, i.Local)
	if i.Rx {
		b = append(b, " <- "...)
	} else {
		b = append(b, " -> "...)
	}
	b = appendAddr(b, i.Remote)
	if i.IsEcho() {
		b = append(b, " id = "...)
		b = strconv.AppendUint(b, uint64(i.ID), 10)
		b = append(b, " seq = "...)
		b = strconv.AppendUint(b, uint64(i.Seq), 10)
	}
	if i.InnerProto != 0 {
		b = append(b, " for "...)
		b = ipProtoName(b, i.InnerProto)
		b = append(b, ' ')
		b = appendInnerAddr(b, i, i.InnerSrc)
		b = append(b, " -> "...)
		b = appendInnerAddr(b, i, i.InnerDst)
		if icmpInnerEcho(i) {
			b = append(b, " id "...)
			b = strconv.AppendUint(b, uint64(i.InnerSrc.Port()), 10)
			b = append(b, " seq "...)
			b = strconv.AppendUint(b, uint64(i.InnerDst.Port()), 10)
		}
	}
	b = append(b, " len = "...)
	b = strconv.AppendUint(b, uint64(i.Len), 10)
	b = append(b, " mac_time = "...)
	b = layerUs(b, i.MacNs, i.Missing&event.MissingMac != 0)
	b = append(b, " ip_time = "...)
	b = layerUs(b, i.IPNs, i.Missing&event.MissingIP != 0)
	b = append(b, " icmp_time = "...)
	b = layerUs(b, i.ICMPNs, i.Missing&event.MissingTCP != 0)
	if icmpRtt(i) {
		b = append(b, " rtt = "...)
		b = layerUs(b, i.RttNs, i.RttNs == 0)
	}
	b = append(b, " netns = "...)
	b = strconv.AppendUint(b, uint64(c.Netns), 10)
	b = appendSockText(b, c.Sock)
	if i.Kernel {
		b = append(b, " kernel"...)
	}
	b = appendOwnerText(b, c)
	return append(b, '\n')
}

func jAddr(b []byte, k string, a netip.Addr) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	if !a.IsValid() {
		return append(b, `":null`...)
	}
	b = append(b, `":"`...)
	b = a.AppendTo(b)
	return append(b, '"')
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, '-')
	}
	return a.AppendTo(b)
}

// AppendICMPLog appends one icmp.log line:
//
//	icmp{netns="…",sock="0x…"|"-",src="ip",dst="ip",pid="…",comm="…",owner="process|kernel|-",
//	rx="0|1",family="ipv4|ipv6",type="echo_request",icmp_type="8",code="0",id="…",seq="…",len="…",
//	mac_time="…",ip_time="…",icmp_time="…",rtt="…",inner_proto="…",inner_src="…",inner_dst="…",conn_id="-"}
//
// Times in µs; "-" for what is not known or does not apply (id/seq of a
// message that is not an echo, rtt of anything but a paired echo reply,
// the inner fields of a message that quotes no packet).
func AppendICMPLog(b []byte, ev *event.Event) []byte {
	i := &ev.Ext.ICMP
	c := &ev.Conn
	b = append(b, "icmp{"...)
	b = kv(b, "netns", true)
	b = strconv.AppendUint(b, uint64(c.Netns), 10)
	b = append(b, '"')
	b = kv(b, "sock", false)
	if c.Sock == 0 {
		b = append(b, '-')
	} else {
		b = appendHex(b, c.Sock)
	}
	b = append(b, '"')
	b = kv(b, "src", false)
	b = appendAddr(b, i.Local)
	b = append(b, '"')
	b = kv(b, "dst", false)
	b = appendAddr(b, i.Remote)
	b = append(b, '"')
	b = kvOwner(b, c.Pid, &c.Comm, false)
	b = kv(b, "owner", false)
	if o := icmpOwner(ev); o == "" {
		b = append(b, '-')
	} else {
		b = append(b, o...)
	}
	b = append(b, '"')
	b = kvU(b, "rx", b2u(i.Rx))
	b = kv(b, "family", false)
	if i.Family == afInet6 {
		b = append(b, "ipv6"...)
	} else {
		b = append(b, "ipv4"...)
	}
	b = append(b, '"')
	b = kv(b, "type", false)
	b = append(b, ICMPName(i.Family, i.Type, i.Code)...)
	b = append(b, '"')
	b = kvU(b, "icmp_type", uint64(i.Type))
	b = kvU(b, "code", uint64(i.Code))
	if i.IsEcho() {
		b = kvU(b, "id", uint64(i.ID))
		b = kvU(b, "seq", uint64(i.Seq))
	} else {
		b = append(b, `,id="-",seq="-"`...)
	}
	b = kvU(b, "len", uint64(i.Len))
	b = kvLayer(b, "mac_time", i.MacNs, i.Missing&event.MissingMac != 0)
	b = kvLayer(b, "ip_time", i.IPNs, i.Missing&event.MissingIP != 0)
	b = kvLayer(b, "icmp_time", i.ICMPNs, i.Missing&event.MissingTCP != 0)
	b = kvLayer(b, "rtt", i.RttNs, i.RttNs == 0)
	if i.InnerProto == 0 {
		b = append(b, `,inner_proto="-",inner_src="-",inner_dst="-"`...)
	} else {
		b = kv(b, "inner_proto", false)
		b = ipProtoName(b, i.InnerProto)
		b = append(b, '"')
		b = kv(b, "inner_src", false)
		b = appendInnerAddr(b, i, i.InnerSrc)
		b = append(b, '"')
		b = kv(b, "inner_dst", false)
		b = appendInnerAddr(b, i, i.InnerDst)
		b = append(b, '"')
	}
	b = kvID(b, c.ID)
	return append(b, "}\n"...)
}
