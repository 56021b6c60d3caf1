package output

import (
	"github.com/netwatcher/netwatcher/internal/event"
)

// ---- TCP resets (--rst) ----

// RstLogName is the log of --rst in --data-dir.
const RstLogName = "rst.log"

func rstDir(r *event.RstInfo) string {
	if r.Rx {
		return "received"
	}
	return "sent"
}

// Rst formats one reset sent or received: console line or JSON record.
// The connection (ID, owner) is the tracked one where the pipeline named
// it; the tuple is the reset's own (local, remote).
//
// JSON: dir (sent/received), state (absent for a reset sent for no
// socket), aborted (1: state is the one the socket left for CLOSE right
// before an active reset), reason and reason_code (sent only; null on a
// kernel without reasons, before 6.10), conn_rst_sent/conn_rst_received
// (the connection's resets so far, this one included; absent when the
// connection is unknown, and with -q).
func (p *Printer) Rst(b []byte, ev *event.Event) []byte {
	r := &ev.Ext.Rst
	if p.JSON {
		b = p.jHead(b, "rst", ev.TS)
		c := ev.Conn
		c.Src, c.Dst = r.Src, r.Dst
		b = jConn(b, &c)
		b = append(b, `,"dir":"`...)
		b = append(b, rstDir(r)...)
		b = append(b, '"')
		if r.State != 0 {
			b = append(b, `,"state":"`...)
			b = append(b, event.TCPStateName(r.State)...)
			b = append(b, '"')
		}
		b = jU(b, "aborted", b2u(r.Aborted))
		if !r.Rx {
			if r.HasReason {
				b = jStr(b, "reason", []byte(r.Name))
				b = jU(b, "reason_code", uint64(r.Reason))
			} else {
				b = append(b, `,"reason":null,"reason_code":null`...)
			}
		}
		if r.ConnSent+r.ConnReceived != 0 {
			b = jU(b, "conn_rst_sent", uint64(r.ConnSent))
			b = jU(b, "conn_rst_received", uint64(r.ConnReceived))
		}
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [K] rst "...)
	b = append(b, rstDir(r)...)
	if !r.Rx && r.HasReason {
		b = append(b, " ("...)
		b = append(b, r.Name...)
		b = append(b, ')')
	}
	if r.State == 0 {
		b = append(b, " for no socket"...)
	} else {
		b = append(b, " in "...)
		b = append(b, event.TCPStateName(r.State)...)
		if r.Aborted {
			b = append(b, " (abort)"...)
		}
	}
	return appendConnLine(b, &ev.Conn, r.Src, r.Dst)
}

// AppendRstLog appends one rst.log line; "-" for what is unknown or does
// not apply (state of a reset for no socket, reason of a reset received or
// on a kernel without reasons).
func AppendRstLog(b []byte, ev *event.Event) []byte {
	r := &ev.Ext.Rst
	b = append(b, `rst{sock="`...)
	b = appendHex(b, ev.Conn.Sock)
	b = append(b, '"')
	b = kv(b, "src", false)
	b = appendAP(b, r.Src)
	b = append(b, '"')
	b = kv(b, "dst", false)
	b = appendAP(b, r.Dst)
	b = append(b, '"')
	b = kv(b, "dir", false)
	b = append(b, rstDir(r)...)
	b = append(b, '"')
	b = kv(b, "state", false)
	if r.State == 0 {
		b = append(b, '-')
	} else {
		b = append(b, event.TCPStateName(r.State)...)
	}
	b = append(b, '"')
	b = kv(b, "reason", false)
	if r.Rx || !r.HasReason {
		b = append(b, '-')
	} else {
		b = append(b, r.Name...)
	}
	b = append(b, '"')
	b = kvID(b, ev.Conn.ID)
	return append(b, "}\n"...)
}
