package output

import (
	"net/netip"
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// Pieces shared by the record formats of several concerns (dns.go,
// redis.go, mysql.go; icmp.go, udp.go, netfilter.go, dropreason.go).

// intervalOrExit names a summary's occasion: "interval" (what changed
// since the previous --interval) or "exit" (everything, at exit).
func intervalOrExit(final bool) string {
	if final {
		return "exit"
	}
	return "interval"
}

// appendLogHead appends the start of a log line of a record that names a
// connection without being one: name{netns="…",sock="…",src="…",dst="…",
// pid="…",comm="…" (conn_id goes last: kvID).
func appendLogHead(b []byte, name string, c *event.Conn) []byte {
	b = append(b, name...)
	b = append(b, `{netns="`...)
	b = strconv.AppendUint(b, uint64(c.Netns), 10)
	b = append(b, '"')
	b = kv(b, "sock", false)
	b = appendHex(b, c.Sock)
	b = append(b, '"')
	b = kv(b, "src", false)
	b = appendAP(b, c.Src)
	b = append(b, '"')
	b = kv(b, "dst", false)
	b = appendAP(b, c.Dst)
	b = append(b, '"')
	return kvOwner(b, c.Pid, &c.Comm, false)
}

// kvS appends ,k="v" (v as is).
func kvS[S ~string | ~[]byte](b []byte, k string, v S) []byte {
	b = kv(b, k, false)
	b = append(b, v...)
	return append(b, '"')
}

// kvUs3 appends ,k="µs with 3 decimals", or ,k="-" unless ok.
func kvUs3(b []byte, k string, ns uint64, ok bool) []byte {
	b = kv(b, k, false)
	if ok {
		b = appendUs3(b, ns)
	} else {
		b = append(b, '-')
	}
	return append(b, '"')
}

// jUOrNull appends ,"k":v, or ,"k":null unless ok.
func jUOrNull(b []byte, k string, v uint64, ok bool) []byte {
	if ok {
		return jU(b, k, v)
	}
	b = append(b, ',', '"')
	b = append(b, k...)
	return append(b, `":null`...)
}

// jLatencies appends the p50_ns, p99_ns and max_ns of a summary (null
// when none was paired: !ok).
func jLatencies(b []byte, ok bool, p50, p99, max uint64) []byte {
	if !ok {
		return append(b, `,"p50_ns":null,"p99_ns":null,"max_ns":null`...)
	}
	b = jU(b, "p50_ns", p50)
	b = jU(b, "p99_ns", p99)
	return jU(b, "max_ns", max)
}

// appendLatencyText appends " latency = <duration>" (at least 1 ns: a
// measured latency never reads "-"), or " latency = " + missing unless ok.
func appendLatencyText(b []byte, ns uint64, ok bool, missing string) []byte {
	b = append(b, " latency = "...)
	if !ok {
		return append(b, missing...)
	}
	return appendDurText(b, max(ns, 1))
}

// jOwner appends the owner of a record that is not a connection:
// "pid":null,"comm":null when unknown.
func jOwner(b []byte, pid uint32, comm *event.Comm) []byte {
	if pid == 0 {
		return append(b, `,"pid":null,"comm":null`...)
	}
	b = jU(b, "pid", uint64(pid))
	return jStr(b, "comm", comm.Bytes())
}

// jSock appends "sock":"0x…", or null for a packet without a socket.
func jSock(b []byte, sock uint64) []byte {
	if sock == 0 {
		return append(b, `,"sock":null`...)
	}
	b = append(b, `,"sock":"`...)
	b = appendHex(b, sock)
	return append(b, '"')
}

// appendSockText appends " sock = 0x…", or " sock = -" without a socket.
func appendSockText(b []byte, sock uint64) []byte {
	b = append(b, " sock = "...)
	if sock == 0 {
		return append(b, '-')
	}
	return appendHex(b, sock)
}

// appendPktAddr appends a packet's address: ip:port for TCP/UDP
// (hasPorts), ip for other IP packets, "-" when unknown (not IP).
func appendPktAddr(b []byte, hasPorts bool, ap netip.AddrPort) []byte {
	switch {
	case !ap.IsValid():
		return append(b, '-')
	case hasPorts:
		return ap.AppendTo(b)
	}
	return ap.Addr().AppendTo(b)
}

// appendDropReason appends a drop reason's kernel name, or "reason N" for
// a code the kernel's BTF does not name (a subsystem's reason).
func appendDropReason(b []byte, name string, code uint32) []byte {
	if name != "" {
		return append(b, name...)
	}
	b = append(b, "reason "...)
	return strconv.AppendUint(b, uint64(code), 10)
}

// appendICMPTypeText appends " type T code C".
func appendICMPTypeText(b []byte, typ, code uint8) []byte {
	b = append(b, " type "...)
	b = strconv.AppendUint(b, uint64(typ), 10)
	b = append(b, " code "...)
	return strconv.AppendUint(b, uint64(code), 10)
}

// kvLayer appends ,k="layer time in µs" ("-" when missing: layerUs).
func kvLayer(b []byte, k string, ns uint64, missing bool) []byte {
	b = kv(b, k, false)
	b = layerUs(b, ns, missing)
	return append(b, '"')
}
