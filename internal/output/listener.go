package output

import (
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// Listener formats one listening socket's -x values: a console line or a
// JSON record of type "listener". what is "sample" (new or changed since
// the last walk) or "closed" (gone since the last walk: its last values).
func (p *Printer) Listener(b []byte, what string, ts uint64, l *event.Listener) []byte {
	if p.JSON {
		b = p.jHead(b, "listener", ts)
		b = append(b, `,"event":"`...)
		b = append(b, what...)
		b = append(b, '"')
		b = jU(b, "netns", uint64(l.Netns))
		b = append(b, `,"sock":"`...)
		b = appendHex(b, l.Sock)
		b = append(b, '"')
		b = jAP(b, "local", l.Local)
		if l.Pid == 0 && l.OwnerSrc == event.OwnerNone {
			b = append(b, `,"pid":null,"comm":null`...)
		} else {
			b = jU(b, "pid", uint64(l.Pid))
			b = jStr(b, "comm", l.Comm.Bytes())
		}
		b = append(b, `,"owner":"`...)
		b = append(b, l.OwnerSrc.String()...)
		b = append(b, '"')
		b = jU(b, "backlog", uint64(l.Backlog))
		b = jU(b, "maxbacklog", uint64(l.MaxBacklog))
		b = jU(b, "drops", uint64(l.Drops))
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ts)
	b = append(b, " [L] listener"...)
	if what != "sample" {
		b = append(b, ' ')
		b = append(b, what...)
	}
	b = append(b, ": sock = "...)
	b = appendHex(b, l.Sock)
	b = append(b, " local = "...)
	b = appendAP(b, l.Local)
	b = append(b, " netns = "...)
	b = strconv.AppendUint(b, uint64(l.Netns), 10)
	b = append(b, " backlog = "...)
	b = strconv.AppendUint(b, uint64(l.Backlog), 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(l.MaxBacklog), 10)
	b = append(b, " drops = "...)
	b = strconv.AppendUint(b, uint64(l.Drops), 10)
	c := event.Conn{Pid: l.Pid, Comm: l.Comm}
	b = appendOwnerText(b, &c)
	return append(b, '\n')
}

// AppendListenerLog appends one connects.log line of a listening socket
// (-x; after the connections), newline included.
func AppendListenerLog(b []byte, l *event.Listener) []byte {
	b = append(b, "listener{"...)
	b = kvOwner(b, l.Pid, &l.Comm, true)
	b = kv(b, "sock", false)
	b = appendHex(b, l.Sock)
	b = append(b, '"')
	b = kv(b, "local", false)
	b = appendAP(b, l.Local)
	b = append(b, '"')
	b = kvU(b, "netns", uint64(l.Netns))
	b = kvU(b, "backlog", uint64(l.Backlog))
	b = kvU(b, "maxbacklog", uint64(l.MaxBacklog))
	b = kvU(b, "drops", uint64(l.Drops))
	return append(b, "}\n"...)
}
