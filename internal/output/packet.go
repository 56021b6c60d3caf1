package output

import (
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// layerUs appends a layer time in µs, or "-" when the boundary was missing
// or times were not requested. Sub-µs times print with decimals so that a
// fast path is not shown as 0.
func layerUs(b []byte, ns uint64, missing bool) []byte {
	if missing {
		return append(b, '-')
	}
	if ns >= 10000 {
		return strconv.AppendUint(b, ns/1000, 10)
	}
	// ns/1000 with up to three decimals, trailing zeros dropped (what
	// AppendFloat(..., 'f', -1) printed, without the float formatting that
	// was a fifth of the CPU of a -t run).
	b = append(b, byte('0'+ns/1000))
	frac := ns % 1000
	if frac == 0 {
		return b
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

func pktMissing(p *event.PacketInfo, timed bool, bit uint8) bool {
	return !timed || p.Missing&bit != 0
}

// AppendPacketLog appends one packets.log line. http is the display text
// of the HTTP line ("-" when none).
func AppendPacketLog(b []byte, sk uint64, p *event.PacketInfo, timed bool, http []byte) []byte {
	b = append(b, `packet{sock="`...)
	b = appendHex(b, sk)
	b = append(b, '"')
	b = kvU(b, "seq", uint64(p.Seq))
	b = kvU(b, "ack", uint64(p.Ack))
	b = kv(b, "mac_time", false)
	b = layerUs(b, p.MacNs, pktMissing(p, timed, event.MissingMac))
	b = append(b, '"')
	b = kv(b, "ip_time", false)
	b = layerUs(b, p.IPNs, pktMissing(p, timed, event.MissingIP))
	b = append(b, '"')
	b = kv(b, "tcp_time", false)
	b = layerUs(b, p.TCPNs, pktMissing(p, timed, event.MissingTCP))
	b = append(b, '"')
	b = kv(b, "http_info", false)
	b = appendLogEscaped(b, http)
	b = append(b, '"')
	b = kvU(b, "rx", b2u(p.Rx))
	return append(b, "}\n"...)
}

// appendLogEscaped keeps a value inside "..." well formed.
func appendLogEscaped(b []byte, s []byte) []byte {
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c >= 0x7f:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return b
}

// PacketHeader is the console header for packet lines.
const PacketHeader = "SOCK                 SEQ         ACK         MAC_TIME  IP_TIME   TCP_TIME  RX LEN    SRC                                             DST                                             HTTP\n"

// AppendPacketTable appends one aligned console packet line (times in µs).
func AppendPacketTable(b []byte, ev *event.Event, timed bool, http []byte) []byte {
	p := &ev.Packet
	s := len(b)
	b = appendHex(b, ev.Conn.Sock)
	b = pad(b, s, 20)
	s = len(b)
	b = strconv.AppendUint(b, uint64(p.Seq), 10)
	b = pad(b, s, 11)
	s = len(b)
	b = strconv.AppendUint(b, uint64(p.Ack), 10)
	b = pad(b, s, 11)
	s = len(b)
	b = layerUs(b, p.MacNs, pktMissing(p, timed, event.MissingMac))
	b = pad(b, s, 9)
	s = len(b)
	b = layerUs(b, p.IPNs, pktMissing(p, timed, event.MissingIP))
	b = pad(b, s, 9)
	s = len(b)
	b = layerUs(b, p.TCPNs, pktMissing(p, timed, event.MissingTCP))
	b = pad(b, s, 9)
	s = len(b)
	b = strconv.AppendUint(b, b2u(p.Rx), 10)
	b = pad(b, s, 2)
	s = len(b)
	b = strconv.AppendUint(b, uint64(p.Len), 10)
	b = pad(b, s, 6)
	s = len(b)
	b = appendAP(b, ev.Conn.Src)
	b = pad(b, s, 47)
	s = len(b)
	b = appendAP(b, ev.Conn.Dst)
	b = pad(b, s, 47)
	b = appendLogEscaped(b, http)
	return append(b, '\n')
}

func jTime(b []byte, k string, ns uint64, missing bool) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, `":`...)
	if missing {
		return append(b, "null"...)
	}
	return strconv.AppendUint(b, ns, 10)
}

// AppendPacketJSON appends one packet event as JSON (times in ns, null when
// missing, absent without -t).
func AppendPacketJSON(b []byte, ev *event.Event, timed bool, http []byte) []byte {
	p := &ev.Packet
	b = jHead(b, "packet", ev.TS, ev.Conn.Netns, ev.Conn.Sock)
	b = jU(b, "seq", uint64(p.Seq))
	b = jU(b, "ack", uint64(p.Ack))
	b = jU(b, "len", uint64(p.Len))
	b = jU(b, "rx", b2u(p.Rx))
	b = jAP(b, "src", ev.Conn.Src)
	b = jAP(b, "dst", ev.Conn.Dst)
	if timed {
		b = jTime(b, "mac_time_ns", p.MacNs, p.Missing&event.MissingMac != 0)
		b = jTime(b, "ip_time_ns", p.IPNs, p.Missing&event.MissingIP != 0)
		b = jTime(b, "tcp_time_ns", p.TCPNs, p.Missing&event.MissingTCP != 0)
	}
	if http != nil {
		b = jStr(b, "http_info", http)
	}
	return append(b, "}\n"...)
}

// AppendErrLog appends one err.log line.
func AppendErrLog(b []byte, sk uint64, e *event.ErrorInfo, reason string) []byte {
	b = append(b, `error{sock="`...)
	b = appendHex(b, sk)
	b = append(b, '"')
	b = kvU(b, "seq", uint64(e.Seq))
	b = kvU(b, "ack", uint64(e.Ack))
	b = kv(b, "reason", false)
	b = append(b, reason...)
	return append(b, "\"}\n"...)
}

// AppendErrTable appends the console alert for a rejected segment.
func AppendErrTable(b []byte, ev *event.Event, reason string) []byte {
	b = append(b, "[X] "...)
	b = append(b, reason...)
	b = append(b, ": sock = "...)
	b = appendHex(b, ev.Conn.Sock)
	b = append(b, " seq = "...)
	b = strconv.AppendUint(b, uint64(ev.Err.Seq), 10)
	b = append(b, " ack = "...)
	b = strconv.AppendUint(b, uint64(ev.Err.Ack), 10)
	b = append(b, ' ')
	b = ev.Err.Src.AppendTo(b)
	b = append(b, " -> "...)
	b = ev.Err.Dst.AppendTo(b)
	if ev.Conn.Pid != 0 {
		b = append(b, " pid = "...)
		b = strconv.AppendUint(b, uint64(ev.Conn.Pid), 10)
		b = append(b, " comm = "...)
		b = append(b, ev.Conn.Comm.Bytes()...)
	}
	return append(b, '\n')
}

// AppendErrJSON appends one error event as JSON.
func AppendErrJSON(b []byte, ev *event.Event, reason string) []byte {
	b = jHead(b, "error", ev.TS, ev.Conn.Netns, ev.Conn.Sock)
	b = jU(b, "seq", uint64(ev.Err.Seq))
	b = jU(b, "ack", uint64(ev.Err.Ack))
	b = jStr(b, "reason", []byte(reason))
	b = jU(b, "reason_code", uint64(ev.Err.Reason))
	b = jU(b, "rx", b2u(ev.Err.Rx))
	b = jAP(b, "src", ev.Err.Src)
	b = jAP(b, "dst", ev.Err.Dst)
	b = jU(b, "pid", uint64(ev.Conn.Pid))
	b = jStr(b, "comm", ev.Conn.Comm.Bytes())
	return append(b, "}\n"...)
}
