package output

import (
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// ---- protocol counters (-C) ----

// CountLogName is the log of -C in --data-dir.
const CountLogName = "count.log"

// Count formats one protocol's counters of one -C interval (or of the
// whole run, final): console line or JSON record.
func (p *Printer) Count(b []byte, ts uint64, c *event.ProtoCount, final bool) []byte {
	what := "interval"
	if final {
		what = "total"
	}
	if p.JSON {
		b = p.jHead(b, "count", ts)
		b = append(b, `,"event":"`...)
		b = append(b, what...)
		b = append(b, `","proto":"`...)
		b = append(b, c.Proto.String()...)
		b = append(b, `","unit":"`...)
		b = append(b, c.Proto.Unit()...)
		b = append(b, '"')
		b = jU(b, "interval_ns", c.PeriodNs)
		b = jU(b, "rx", c.Rx.N)
		b = jBytes(b, "rx_bytes", c.Rx.Bytes, c.Proto.HasBytes())
		b = jU(b, "tx", c.Tx.N)
		b = jBytes(b, "tx_bytes", c.Tx.Bytes, c.Proto.HasBytes())
		if c.Proto.HasRequests() {
			b = jU(b, "requests", c.Requests)
		}
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ts)
	b = append(b, " [C] count "...)
	b = append(b, what...)
	b = append(b, ' ')
	s := len(b)
	b = append(b, c.Proto.String()...)
	b = pad(b, s, 5)
	b = append(b, "rx = "...)
	b = appendCountDir(b, &c.Rx, c.Proto)
	b = append(b, " tx = "...)
	b = appendCountDir(b, &c.Tx, c.Proto)
	if c.Proto.HasRequests() {
		b = append(b, " requests = "...)
		b = strconv.AppendUint(b, c.Requests, 10)
	}
	return append(b, '\n')
}

// appendCountDir appends "n unit / bytes" (bytes for the protocols that
// count them).
func appendCountDir(b []byte, d *event.CountDir, p event.CountProto) []byte {
	b = strconv.AppendUint(b, d.N, 10)
	b = append(b, ' ')
	b = append(b, p.Unit()...)
	if p.HasBytes() {
		b = append(b, ' ')
		b = strconv.AppendUint(b, d.Bytes, 10)
		b = append(b, 'B')
	}
	return b
}

func jBytes(b []byte, k string, v uint64, has bool) []byte {
	if !has {
		b = append(b, ',', '"')
		b = append(b, k...)
		return append(b, `":null`...)
	}
	return jU(b, k, v)
}

// AppendCountLog appends one count.log line.
func AppendCountLog(b []byte, c *event.ProtoCount, final bool) []byte {
	b = append(b, `count{proto="`...)
	b = append(b, c.Proto.String()...)
	b = append(b, '"')
	b = kv(b, "event", false)
	if final {
		b = append(b, "total"...)
	} else {
		b = append(b, "interval"...)
	}
	b = append(b, '"')
	b = kv(b, "unit", false)
	b = append(b, c.Proto.Unit()...)
	b = append(b, '"')
	b = kvU(b, "interval_ns", c.PeriodNs)
	b = kvU(b, "rx", c.Rx.N)
	b = kvBytes(b, "rx_bytes", c.Rx.Bytes, c.Proto.HasBytes())
	b = kvU(b, "tx", c.Tx.N)
	b = kvBytes(b, "tx_bytes", c.Tx.Bytes, c.Proto.HasBytes())
	if c.Proto.HasRequests() {
		b = kvU(b, "requests", c.Requests)
	}
	return append(b, "}\n"...)
}

func kvBytes(b []byte, k string, v uint64, has bool) []byte {
	if !has {
		b = kv(b, k, false)
		return append(b, `-"`...)
	}
	return kvU(b, k, v)
}
