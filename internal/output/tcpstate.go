package output

import (
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// ---- TCP state transitions (-P) ----

// StateLogName is the log of -P in --data-dir.
const StateLogName = "tcpstate.log"

// appendDurText appends ns as a human duration with its unit (µs below a
// second: "312us", "1.042s"), or "-" when unknown (0).
func appendDurText(b []byte, ns uint64) []byte {
	switch {
	case ns == 0:
		return append(b, '-')
	case ns < 1e9:
		b = strconv.AppendFloat(b, float64(ns)/1e3, 'f', -1, 64)
		return append(b, "us"...)
	default:
		b = strconv.AppendFloat(b, float64(ns)/1e9, 'f', 3, 64)
		return append(b, 's')
	}
}

// State formats one TCP state transition: console line or JSON record.
// The connection (ID, owner) is the tracked one where the table has it;
// the tuple is the socket's own at the transition.
func (p *Printer) State(b []byte, ev *event.Event) []byte {
	s := &ev.Ext.State
	if p.JSON {
		b = p.jHead(b, "tcpstate", ev.TS)
		c := ev.Conn
		c.Src, c.Dst = s.Src, s.Dst
		b = jConn(b, &c)
		b = append(b, `,"old":"`...)
		b = append(b, event.TCPStateName(s.Old)...)
		b = append(b, `","new":"`...)
		b = append(b, event.TCPStateName(s.New)...)
		b = append(b, '"')
		b = append(b, `,"duration_ns":`...)
		if s.InOldNs == 0 {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendUint(b, s.InOldNs, 10)
		}
		b = jU(b, "handshake", b2u(s.Handshake()))
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [S] "...)
	b = append(b, event.TCPStateName(s.Old)...)
	b = append(b, " -> "...)
	b = append(b, event.TCPStateName(s.New)...)
	b = append(b, " after "...)
	b = appendDurText(b, s.InOldNs)
	if s.Handshake() {
		b = append(b, " (handshake)"...)
	}
	return appendConnLine(b, &ev.Conn, s.Src, s.Dst)
}

// AppendStateLog appends one tcpstate.log line: duration in µs (3
// decimals), "-" when unknown.
func AppendStateLog(b []byte, ev *event.Event) []byte {
	s := &ev.Ext.State
	b = append(b, `tcpstate{sock="`...)
	b = appendHex(b, ev.Conn.Sock)
	b = append(b, '"')
	b = kv(b, "src", false)
	b = appendAP(b, s.Src)
	b = append(b, '"')
	b = kv(b, "dst", false)
	b = appendAP(b, s.Dst)
	b = append(b, '"')
	b = kv(b, "old", false)
	b = append(b, event.TCPStateName(s.Old)...)
	b = append(b, '"')
	b = kv(b, "new", false)
	b = append(b, event.TCPStateName(s.New)...)
	b = append(b, '"')
	b = kv(b, "duration", false)
	if s.InOldNs == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendFloat(b, float64(s.InOldNs)/1e3, 'f', 3, 64)
	}
	b = append(b, '"')
	b = kvID(b, ev.Conn.ID)
	return append(b, "}\n"...)
}
