package output

import (
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// ---- UDP (-u) ----

// UDPLogName is the log of -u in --data-dir.
const UDPLogName = "udp.log"

var udpWhy = [...]string{event.UDPInterval: "interval", event.UDPIdle: "idle", event.UDPExit: "exit"}

func udpWhyName(w uint8) string {
	if int(w) < len(udpWhy) {
		return udpWhy[w]
	}
	return "interval"
}

func udpDir(u *event.UDPInfo) string {
	if u.Rx {
		return "rx"
	}
	return "tx"
}

// UDPFlow formats a flow record (console line or JSON). JSON (type
// udp_flow): the connection fields (conn_id null: not a TCP connection;
// src local, dst remote), event (interval, idle, exit), datagrams and
// payload bytes per direction since the flow's previous record and since
// its first datagram (*_total), rx_drops (datagrams the kernel dropped for
// the socket, counted in rx_dgrams too when dropped after the UDP hook;
// null before Linux 6.11), first_ns/last_ns (monotonic ns of its first and
// latest datagram).
func (p *Printer) UDPFlow(b []byte, ev *event.Event) []byte {
	u := &ev.Ext.UDP
	if p.JSON {
		b = p.jHead(b, "udp_flow", ev.TS)
		b = jConn(b, &ev.Conn)
		b = append(b, `,"event":"`...)
		b = append(b, udpWhyName(u.Why)...)
		b = append(b, '"')
		b = jU(b, "rx_dgrams", u.RxDgrams)
		b = jU(b, "rx_bytes", u.RxBytes)
		b = jUOrNull(b, "rx_drops", u.RxDrops, u.HasDrops)
		b = jU(b, "tx_dgrams", u.TxDgrams)
		b = jU(b, "tx_bytes", u.TxBytes)
		b = jU(b, "rx_dgrams_total", u.RxDgramsTotal)
		b = jU(b, "rx_bytes_total", u.RxBytesTotal)
		b = jUOrNull(b, "rx_drops_total", u.RxDropsTotal, u.HasDrops)
		b = jU(b, "tx_dgrams_total", u.TxDgramsTotal)
		b = jU(b, "tx_bytes_total", u.TxBytesTotal)
		b = jU(b, "first_ns", u.FirstNs)
		b = jU(b, "last_ns", u.LastNs)
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [U] udp "...)
	b = append(b, udpWhyName(u.Why)...)
	b = append(b, ": sock = "...)
	b = appendHex(b, ev.Conn.Sock)
	b = append(b, ' ')
	b = appendFlowText(b, u.Src, u.Dst)
	b = append(b, " rx = "...)
	b = strconv.AppendUint(b, u.RxDgrams, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, u.RxBytes, 10)
	b = append(b, "B tx = "...)
	b = strconv.AppendUint(b, u.TxDgrams, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, u.TxBytes, 10)
	b = append(b, "B total rx = "...)
	b = strconv.AppendUint(b, u.RxDgramsTotal, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, u.RxBytesTotal, 10)
	b = append(b, "B tx = "...)
	b = strconv.AppendUint(b, u.TxDgramsTotal, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, u.TxBytesTotal, 10)
	b = append(b, 'B')
	if u.HasDrops && u.RxDropsTotal > 0 {
		b = append(b, " rx drops = "...)
		b = strconv.AppendUint(b, u.RxDrops, 10)
		b = append(b, " (total "...)
		b = strconv.AppendUint(b, u.RxDropsTotal, 10)
		b = append(b, ')')
	}
	b = appendOwnerText(b, &ev.Conn)
	return append(b, '\n')
}

// UDPDatagram formats one datagram with its layer times (-u -t). JSON
// (type udp): the connection fields, rx (1 received), len (payload
// bytes), dgrams (datagrams in the skb: more than 1 with UDP_SEGMENT or
// UDP_GRO), mac_time_ns, ip_time_ns, udp_time_ns (null: a boundary not
// observed; udp_time_ns is always null on send).
func (p *Printer) UDPDatagram(b []byte, ev *event.Event) []byte {
	u := &ev.Ext.UDP
	if p.JSON {
		b = p.jHead(b, "udp", ev.TS)
		b = jConn(b, &ev.Conn)
		b = jU(b, "rx", b2u(u.Rx))
		b = jU(b, "len", uint64(u.Len))
		b = jU(b, "dgrams", uint64(u.Dgrams))
		b = jTime(b, "mac_time_ns", u.MacNs, u.Missing&event.MissingMac != 0)
		b = jTime(b, "ip_time_ns", u.IPNs, u.Missing&event.MissingIP != 0)
		b = jTime(b, "udp_time_ns", u.UDPNs, u.Missing&event.MissingTCP != 0)
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [U] udp "...)
	b = append(b, udpDir(u)...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(u.Len), 10)
	b = append(b, 'B')
	if u.Dgrams > 1 {
		b = append(b, " ("...)
		b = strconv.AppendUint(b, uint64(u.Dgrams), 10)
		b = append(b, " datagrams)"...)
	}
	b = append(b, ": sock = "...)
	b = appendHex(b, ev.Conn.Sock)
	b = append(b, ' ')
	b = appendFlowText(b, u.Src, u.Dst)
	b = append(b, " mac = "...)
	b = udpLayer(b, u.MacNs, u.Missing&event.MissingMac != 0)
	b = append(b, " ip = "...)
	b = udpLayer(b, u.IPNs, u.Missing&event.MissingIP != 0)
	b = append(b, " udp = "...)
	b = udpLayer(b, u.UDPNs, u.Missing&event.MissingTCP != 0)
	b = appendOwnerText(b, &ev.Conn)
	return append(b, '\n')
}

// AppendUDPLog appends one udp.log line. Flows:
//
//	udp{event="interval",sock="0x…",src="ip:port",dst="ip:port",netns="…",pid="…",comm="…",rx_dgrams="…",rx_bytes="…",rx_drops="…",tx_dgrams="…",tx_bytes="…",rx_dgrams_total="…",rx_bytes_total="…",rx_drops_total="…",tx_dgrams_total="…",tx_bytes_total="…",conn_id="-"}
//
// datagrams (-t), times in µs, "-" when not observed:
//
//	udp{event="rx",sock="0x…",src=…,dst=…,netns=…,pid=…,comm=…,len="…",dgrams="…",mac_time="…",ip_time="…",udp_time="…",conn_id="-"}
func AppendUDPLog(b []byte, ev *event.Event) []byte {
	u := &ev.Ext.UDP
	b = append(b, `udp{event="`...)
	if ev.Type == event.UDP {
		b = append(b, udpDir(u)...)
	} else {
		b = append(b, udpWhyName(u.Why)...)
	}
	b = append(b, '"')
	b = kv(b, "sock", false)
	b = appendHex(b, ev.Conn.Sock)
	b = append(b, '"')
	b = kv(b, "src", false)
	b = appendAP(b, u.Src)
	b = append(b, '"')
	b = kv(b, "dst", false)
	b = appendAP(b, u.Dst)
	b = append(b, '"')
	b = kvU(b, "netns", uint64(ev.Conn.Netns))
	b = kvOwner(b, ev.Conn.Pid, &ev.Conn.Comm, false)
	if ev.Type == event.UDP {
		b = kvU(b, "len", uint64(u.Len))
		b = kvU(b, "dgrams", uint64(u.Dgrams))
		b = kvLayer(b, "mac_time", u.MacNs, u.Missing&event.MissingMac != 0)
		b = kvLayer(b, "ip_time", u.IPNs, u.Missing&event.MissingIP != 0)
		b = kvLayer(b, "udp_time", u.UDPNs, u.Missing&event.MissingTCP != 0)
	} else {
		b = kvU(b, "rx_dgrams", u.RxDgrams)
		b = kvU(b, "rx_bytes", u.RxBytes)
		b = kvDrops(b, "rx_drops", u.RxDrops, u.HasDrops)
		b = kvU(b, "tx_dgrams", u.TxDgrams)
		b = kvU(b, "tx_bytes", u.TxBytes)
		b = kvU(b, "rx_dgrams_total", u.RxDgramsTotal)
		b = kvU(b, "rx_bytes_total", u.RxBytesTotal)
		b = kvDrops(b, "rx_drops_total", u.RxDropsTotal, u.HasDrops)
		b = kvU(b, "tx_dgrams_total", u.TxDgramsTotal)
		b = kvU(b, "tx_bytes_total", u.TxBytesTotal)
	}
	b = kvID(b, ev.Conn.ID)
	return append(b, "}\n"...)
}

// udpLayer appends a layer time in µs with its unit, "-" when missing.
func udpLayer(b []byte, ns uint64, missing bool) []byte {
	b = layerUs(b, ns, missing)
	if !missing {
		b = append(b, "us"...)
	}
	return b
}

func kvDrops(b []byte, k string, v uint64, known bool) []byte {
	if !known {
		b = kv(b, k, false)
		return append(b, '-', '"')
	}
	return kvU(b, k, v)
}
