// Package output formats events for people (console table), programs (JSON
// lines) and the SPEC §3 log files. Every formatter appends to a caller's
// buffer: no allocation per event.
package output

import (
	"net/netip"
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/track"
)

// Fields selects the optional connection fields.
type Fields struct {
	Extra   bool // -x
	Retrans bool // -r
}

// AppendHumanBytes formats a byte count like the original tool: exact below
// 1 KiB, else three decimals with K/M/G/T suffix (powers of 1024).
func AppendHumanBytes(b []byte, v uint64) []byte {
	if v < 1024 {
		return appendUint(b, v)
	}
	f := float64(v)
	units := "KMGTP"
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	b = strconv.AppendFloat(b, f, 'f', 3, 64)
	return append(b, units[i])
}

func kv(b []byte, k string, first bool) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, k...)
	return append(b, '=', '"')
}

// kvOwner appends pid="…",comm="…" ("-" for both when the owner is not
// known, for comm alone when only the pid is).
func kvOwner(b []byte, pid uint32, comm *event.Comm, first bool) []byte {
	b = kv(b, "pid", first)
	if pid == 0 {
		b = append(b, '-')
	} else {
		b = appendUint(b, uint64(pid))
	}
	b = append(b, '"')
	b = kv(b, "comm", false)
	if c := comm.Bytes(); pid == 0 || len(c) == 0 {
		b = append(b, '-') // the pid may be known without its name
	} else {
		b = append(b, c...)
	}
	return append(b, '"')
}

func kvU(b []byte, k string, v uint64) []byte {
	b = kv(b, k, false)
	b = appendUint(b, v)
	return append(b, '"')
}

// DurationUs is µs between established and now (or close).
func DurationUs(e *track.Entry, nowNs uint64) uint64 {
	end := nowNs
	if e.Closed && e.CloseNs != 0 {
		end = e.CloseNs
	}
	if e.Conn.EstNs == 0 || end < e.Conn.EstNs {
		return 0
	}
	return (end - e.Conn.EstNs) / 1000
}

// AppendConnLog appends one connects.log line (SPEC §3), newline included.
func AppendConnLog(b []byte, e *track.Entry, f Fields, nowNs uint64) []byte {
	c := &e.Conn
	b = append(b, "connection{"...)
	b = kv(b, "pid", true)
	b = appendUint(b, uint64(c.Pid))
	b = append(b, '"')
	b = kv(b, "sock", false)
	b = appendHex(b, c.Sock)
	b = append(b, '"')
	b = kv(b, "src", false)
	b = appendAddrPort(b, c.Src)
	b = append(b, '"')
	b = kv(b, "dst", false)
	b = appendAddrPort(b, c.Dst)
	b = append(b, '"')
	b = kvU(b, "is_server", b2u(c.IsServer))
	if f.Extra {
		s := &e.Stats
		b = kvU(b, "backlog", uint64(s.Backlog))
		b = kvU(b, "maxbacklog", uint64(s.MaxBacklog))
		b = kvU(b, "rwnd", uint64(s.SndWnd))
		b = kvU(b, "cwnd", uint64(s.Cwnd))
		b = kvU(b, "ssthresh", uint64(s.Ssthresh))
		b = kvU(b, "sndbuf", uint64(s.Sndbuf))
		b = kvU(b, "wmem_queued", uint64(s.WmemQueued))
		b = kv(b, "rx_bytes", false)
		b = AppendHumanBytes(b, s.BytesReceived)
		b = append(b, '"')
		b = kv(b, "tx_bytes", false)
		b = AppendHumanBytes(b, s.BytesAcked)
		b = append(b, '"')
		b = kvU(b, "srtt", uint64(s.SrttUs()))
		b = kvU(b, "duration", DurationUs(e, nowNs))
		b = kvU(b, "total_retrans", uint64(s.TotalRetrans))
	}
	if f.Retrans {
		b = kvU(b, "fast_retrans", uint64(c.FastRetrans))
		b = kvU(b, "timeout_retrans", uint64(c.TimeoutRetrans))
		b = kvU(b, "retrans_segs", RetransSegs(e))
	}
	b = kvU(b, "conn_id", c.ID)
	return append(b, "}\n"...)
}

// RetransSegs is the number of retransmitted segments of a connection: the
// socket's own count (tp->total_retrans, which also covers tail-loss probes
// that bypass the tcp_retransmit_skb tracepoint) once sampled, else the
// tracepoint count.
func RetransSegs(e *track.Entry) uint64 {
	if e.HasStats {
		return uint64(e.Stats.TotalRetrans)
	}
	return uint64(e.Conn.RetransSegs)
}

func b2u(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// ---- JSON ----

func jStr(b []byte, k string, v []byte) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, `":"`...)
	b = AppendJSONEscaped(b, v)
	return append(b, '"')
}

func jU(b []byte, k string, v uint64) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, `":`...)
	return appendUint(b, v)
}

// jAP appends "k":"ip:port", or "k":null when unknown.
func jAP(b []byte, k string, ap netip.AddrPort) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	if !ap.IsValid() {
		return append(b, `":null`...)
	}
	b = append(b, `":"`...)
	b = appendAddrPort(b, ap)
	return append(b, '"')
}

// appendAP appends ip:port, or "-" when unknown.
func appendAP(b []byte, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return append(b, '-')
	}
	return appendAddrPort(b, ap)
}

// AppendJSONEscaped escapes s for a JSON string body.
func AppendJSONEscaped(b []byte, s []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return b
}

func pad(b []byte, start, width int) []byte {
	n := width - (len(b) - start)
	for n > len(spaces) {
		b = append(b, spaces...)
		n -= len(spaces)
	}
	if n > 0 {
		b = append(b, spaces[:n]...)
	}
	return append(b, ' ')
}
