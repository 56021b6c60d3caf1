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
// of the HTTP line ("-" when none); sample is --sample (said after conn_id
// when more than 1).
func AppendPacketLog(b []byte, c *event.Conn, p *event.PacketInfo, timed bool, http []byte, sample uint32) []byte {
	sk := c.Sock
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
	b = append(b, http...) // escaped for a quoted value (httpinfo.Line.AppendText)
	b = append(b, '"')
	b = kvU(b, "rx", b2u(p.Rx))
	b = kvID(b, c.ID)
	if sample > 1 {
		b = kvU(b, "sample", uint64(sample))
	}
	return append(b, "}\n"...)
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

// AppendErrLog appends one err.log line.
func AppendErrLog(b []byte, c *event.Conn, e *event.ErrorInfo, reason string) []byte {
	sk := c.Sock
	b = append(b, `error{sock="`...)
	b = appendHex(b, sk)
	b = append(b, '"')
	b = kvU(b, "seq", uint64(e.Seq))
	b = kvU(b, "ack", uint64(e.Ack))
	b = kv(b, "reason", false)
	b = append(b, reason...)
	b = append(b, '"')
	b = kvID(b, c.ID)
	return append(b, "}\n"...)
}

// kvID appends the connection's number, or "-" when it is not known (-q
// without -a: a connection that closed before a walk of the kernel table
// or a lookup found it).
func kvID(b []byte, id uint64) []byte {
	b = kv(b, "conn_id", false)
	if id == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendUint(b, id, 10)
	}
	return append(b, '"')
}
