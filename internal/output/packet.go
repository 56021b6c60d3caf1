package output

import (
	"github.com/netwatcher/netwatcher/internal/event"
)

// layerUs appends a layer time in µs, or "-" when the boundary was missing
// or times were not requested. Sub-µs times print with decimals so that a
// fast path is not shown as 0.
func layerUs(b []byte, ns uint64, missing bool) []byte {
	if missing {
		return append(b, '-')
	}
	us := ns / 1000
	if ns >= 10000 {
		return appendUint(b, us)
	}
	// ns/1000 with up to three decimals, trailing zeros dropped (what
	// AppendFloat(..., 'f', -1) printed, without the float formatting that
	// was a fifth of the CPU of a -t run).
	frac := ns - us*1000
	if frac == 0 {
		return append(b, byte('0'+us))
	}
	hi, lo := frac/10, frac%10 // hi: the first two decimals
	switch {
	case lo != 0:
		return append(b, byte('0'+us), '.', digits2[2*hi], digits2[2*hi+1], byte('0'+lo))
	case hi%10 != 0:
		return append(b, byte('0'+us), '.', digits2[2*hi], digits2[2*hi+1])
	}
	return append(b, byte('0'+us), '.', byte('0'+hi/10))
}

func pktMissing(p *event.PacketInfo, timed bool, bit uint8) bool {
	return !timed || p.Missing&bit != 0
}

// untimedLayers is the layer times of a packets.log line without -t.
const untimedLayers = `",mac_time="-",ip_time="-",tcp_time="-",http_info="`

// PacketLogLen bounds an AppendPacketLog line without its HTTP text (245
// bytes with every number at its widest).
const PacketLogLen = 320

// AppendPacketLog appends one packets.log line. http is the display text
// of the HTTP line ("-" when none); sample is --sample (said after conn_id
// when more than 1).
func AppendPacketLog(b []byte, c *event.Conn, p *event.PacketInfo, timed bool, http []byte, sample uint32) []byte {
	// One constant between two values (`",seq="`): what kv and kvU
	// write, a third of the appends.
	b = append(b, `packet{sock="`...)
	b = appendHex(b, c.Sock)
	b = append(b, `",seq="`...)
	b = appendU32(b, p.Seq)
	b = append(b, `",ack="`...)
	b = appendU32(b, p.Ack)
	if timed {
		b = append(b, `",mac_time="`...)
		b = layerUs(b, p.MacNs, pktMissing(p, timed, event.MissingMac))
		b = append(b, `",ip_time="`...)
		b = layerUs(b, p.IPNs, pktMissing(p, timed, event.MissingIP))
		b = append(b, `",tcp_time="`...)
		b = layerUs(b, p.TCPNs, pktMissing(p, timed, event.MissingTCP))
		b = append(b, `",http_info="`...)
	} else {
		b = append(b, untimedLayers...) // without -t every time is "-"
	}
	b = append(b, http...) // escaped for a quoted value (httpinfo.Line.AppendText)
	if p.Rx {
		b = append(b, `",rx="1",conn_id="`...)
	} else {
		b = append(b, `",rx="0",conn_id="`...)
	}
	if c.ID == 0 {
		b = append(b, '-')
	} else {
		b = appendUint(b, c.ID)
	}
	if sample > 1 {
		b = append(b, `",sample="`...)
		b = appendUint(b, uint64(sample))
	}
	return append(b, "\"}\n"...)
}

// jNs appends ns, or null when missing.
func jNs(b []byte, ns uint64, missing bool) []byte {
	if missing {
		return append(b, "null"...)
	}
	return appendUint(b, ns)
}

func jTime(b []byte, k string, ns uint64, missing bool) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, `":`...)
	if missing {
		return append(b, "null"...)
	}
	return appendUint(b, ns)
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
		b = appendUint(b, id)
	}
	return append(b, '"')
}
