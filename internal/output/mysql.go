package output

import (
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// ---- MySQL (-M) ----

// appendQuoted appends q between double quotes, escaped for a log value
// or the console: \" \\ \n \r \t, other bytes outside printable ASCII as
// \xNN; then "..." when the text was cut (whole length n > len(q)).
func appendQuoted(b []byte, q []byte, n uint32) []byte {
	b = append(b, '"')
	b = appendEscaped(b, q)
	b = append(b, '"')
	if n > uint32(len(q)) {
		b = append(b, "..."...)
	}
	return b
}

// appendEscaped is appendQuoted's escaping, without the quotes.
func appendEscaped(b []byte, q []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range q {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return b
}

func mysqlHasQuery(r *event.MySQLResult) bool { return r.QueryLen > 0 || len(r.Query) > 0 }

// MySQL formats one request with its response: console line or JSON
// record "mysql". Conn's Src is the local end.
//
// JSON: side, command (COM_* name, or "handshake") and command_code (the
// byte; null for the handshake), query (null for a command without text)
// with query_len (the whole text's length: longer than query when cut),
// stmt_id (null unless a statement is named), response (ok, error, eof,
// rows, prepared, string, stream, tls, none, unanswered, unknown),
// error_code and sql_state (null unless error), affected (null unless
// ok), rows (null unless rows), columns, params (prepared), warnings,
// results (OKs and result sets of the response), latency_ns (null without
// a response), truncated (1: response bytes not captured, rows a lower
// bound), thread_id (the server's connection id, null if the handshake
// was not seen); the handshake adds version and compress.
func (p *Printer) MySQL(b []byte, r *event.MySQLResult) []byte {
	hs := r.Command == event.MySQLHandshake
	answered := r.Resp != event.MySQLNoResp && r.Resp != event.MySQLUnanswered
	if p.JSON {
		b = p.jHead(b, "mysql", r.TS)
		b = jConn(b, &r.Conn)
		b = append(b, `,"side":"`...)
		b = append(b, r.Side.String()...)
		b = append(b, `","command":"`...)
		b = append(b, event.MySQLCommandName(r.Command)...)
		b = append(b, '"')
		if hs {
			b = append(b, `,"command_code":null`...)
		} else {
			b = jU(b, "command_code", uint64(r.Command))
		}
		if mysqlHasQuery(r) {
			b = jStr(b, "query", r.Query)
			b = jU(b, "query_len", uint64(r.QueryLen))
		} else {
			b = append(b, `,"query":null,"query_len":null`...)
		}
		b = jUOrNull(b, "stmt_id", uint64(r.StmtID), r.HasStmt)
		b = append(b, `,"response":"`...)
		b = append(b, r.Resp.String()...)
		b = append(b, '"')
		if r.Resp == event.MySQLErr {
			b = jU(b, "error_code", uint64(r.ErrCode))
			if r.SQLState[0] != 0 {
				b = jStr(b, "sql_state", r.SQLState[:])
			} else {
				b = append(b, `,"sql_state":null`...)
			}
		} else {
			b = append(b, `,"error_code":null,"sql_state":null`...)
		}
		b = jUOrNull(b, "affected", r.Affected, r.Resp == event.MySQLOK)
		b = jUOrNull(b, "rows", r.Rows, r.Resp == event.MySQLRows || r.Rows > 0)
		b = jU(b, "columns", uint64(r.Columns))
		b = jU(b, "params", uint64(r.Params))
		b = jU(b, "warnings", uint64(r.Warnings))
		b = jU(b, "results", uint64(r.Results))
		b = jUOrNull(b, "latency_ns", r.LatencyNs, answered)
		b = jU(b, "truncated", b2u(r.Truncated))
		b = jUOrNull(b, "thread_id", uint64(r.ThreadID), r.ThreadID != 0)
		if hs {
			b = jStr(b, "version", r.Version)
			b = jU(b, "compress", b2u(r.Compress))
		}
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, r.TS)
	b = append(b, " [M] mysql "...)
	b = append(b, r.Side.String()...)
	b = append(b, ' ')
	b = append(b, event.MySQLCommandName(r.Command)...)
	if mysqlHasQuery(r) {
		b = append(b, ' ')
		b = appendQuoted(b, r.Query, r.QueryLen)
	}
	if r.HasStmt {
		b = append(b, " stmt = "...)
		b = strconv.AppendUint(b, uint64(r.StmtID), 10)
	}
	b = append(b, " -> "...)
	b = appendMySQLResp(b, r)
	if answered {
		b = appendLatencyText(b, r.LatencyNs, true, "")
	}
	if hs && len(r.Version) > 0 {
		b = append(b, " version = "...)
		b = append(b, r.Version...)
	}
	if r.ThreadID != 0 {
		b = append(b, " thread = "...)
		b = strconv.AppendUint(b, uint64(r.ThreadID), 10)
	}
	return appendConnLine(b, &r.Conn, r.Conn.Src, r.Conn.Dst)
}

func appendMySQLResp(b []byte, r *event.MySQLResult) []byte {
	switch r.Resp {
	case event.MySQLNoResp:
		return append(b, "(no response)"...)
	case event.MySQLErr:
		b = append(b, "error "...)
		b = strconv.AppendUint(b, uint64(r.ErrCode), 10)
		if r.SQLState[0] != 0 {
			b = append(b, " ("...)
			b = append(b, r.SQLState[:]...)
			b = append(b, ')')
		}
	case event.MySQLOK:
		b = append(b, "ok"...)
		if r.Command != event.MySQLHandshake {
			b = append(b, " affected = "...)
			b = strconv.AppendUint(b, r.Affected, 10)
		}
	case event.MySQLRows:
		b = append(b, "rows = "...)
		if r.Truncated {
			b = append(b[:len(b)-2], ">= "...) // a lower bound
		}
		b = strconv.AppendUint(b, r.Rows, 10)
		b = append(b, " columns = "...)
		b = strconv.AppendUint(b, uint64(r.Columns), 10)
	case event.MySQLPrepared:
		b = append(b, "prepared params = "...)
		b = strconv.AppendUint(b, uint64(r.Params), 10)
		b = append(b, " columns = "...)
		b = strconv.AppendUint(b, uint64(r.Columns), 10)
	default:
		b = append(b, r.Resp.String()...)
	}
	if r.Results > 1 {
		b = append(b, " results = "...)
		b = strconv.AppendUint(b, uint64(r.Results), 10)
	}
	if r.Warnings > 0 {
		b = append(b, " warnings = "...)
		b = strconv.AppendUint(b, uint64(r.Warnings), 10)
	}
	if r.Truncated && r.Resp != event.MySQLRows {
		b = append(b, " (truncated)"...)
	}
	return b
}

// AppendMySQLLog appends one mysql.log line; "-" for what is unknown or
// does not apply. latency in µs, 3 decimals.
func AppendMySQLLog(b []byte, r *event.MySQLResult) []byte {
	c := &r.Conn
	b = appendLogHead(b, "mysql", c)
	b = kvS(b, "side", r.Side.String())
	b = kv(b, "thread_id", false)
	if r.ThreadID != 0 {
		b = strconv.AppendUint(b, uint64(r.ThreadID), 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, '"')
	b = kvS(b, "command", event.MySQLCommandName(r.Command))
	b = append(b, ",query="...)
	if mysqlHasQuery(r) {
		b = appendQuoted(b, r.Query, 0)
		b = kvU(b, "query_len", uint64(r.QueryLen))
	} else {
		b = append(b, `"-",query_len="-"`...)
	}
	b = kv(b, "stmt_id", false)
	if r.HasStmt {
		b = strconv.AppendUint(b, uint64(r.StmtID), 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, '"')
	b = kvS(b, "response", r.Resp.String())
	if r.Resp == event.MySQLErr {
		b = kvU(b, "error", uint64(r.ErrCode))
		b = kv(b, "sqlstate", false)
		if r.SQLState[0] != 0 {
			b = append(b, r.SQLState[:]...)
		} else {
			b = append(b, '-')
		}
		b = append(b, '"')
	} else {
		b = append(b, `,error="-",sqlstate="-"`...)
	}
	if r.Resp == event.MySQLOK {
		b = kvU(b, "affected", r.Affected)
	} else {
		b = append(b, `,affected="-"`...)
	}
	if r.Resp == event.MySQLRows || r.Rows > 0 {
		b = kvU(b, "rows", r.Rows)
	} else {
		b = append(b, `,rows="-"`...)
	}
	b = kvUs3(b, "latency", r.LatencyNs, r.Resp != event.MySQLNoResp && r.Resp != event.MySQLUnanswered)
	b = kvU(b, "truncated", b2u(r.Truncated))
	if r.Command == event.MySQLHandshake {
		b = kv(b, "version", false)
		b = appendEscaped(b, r.Version)
		b = append(b, '"')
	}
	b = kvID(b, c.ID)
	return append(b, "}\n"...)
}

// MySQLStats formats one command's counters at one side (console line or
// JSON record "mysql_stats"): calls, errors, unanswered, rows, and the
// latency of the answered calls (p50, p99, max; null when none:
// commands without a response, or none answered).
func (p *Printer) MySQLStats(b []byte, ts uint64, s *event.MySQLStats, final bool) []byte {
	answered := s.Answered > 0
	if p.JSON {
		b = p.jHead(b, "mysql_stats", ts)
		b = append(b, `,"event":"`...)
		b = append(b, intervalOrExit(final)...)
		b = append(b, `","side":"`...)
		b = append(b, s.Side.String()...)
		b = append(b, `","command":"`...)
		b = append(b, event.MySQLCommandName(s.Command)...)
		b = append(b, '"')
		b = jU(b, "calls", s.Calls)
		b = jU(b, "errors", s.Errors)
		b = jU(b, "unanswered", s.Unanswered)
		b = jU(b, "rows", s.Rows)
		b = jLatencies(b, answered, s.P50Ns, s.P99Ns, s.MaxNs)
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ts)
	b = append(b, " [M] mysql stats ("...)
	b = append(b, intervalOrExit(final)...)
	b = append(b, "): "...)
	b = append(b, s.Side.String()...)
	b = append(b, ' ')
	b = append(b, event.MySQLCommandName(s.Command)...)
	b = append(b, " calls = "...)
	b = strconv.AppendUint(b, s.Calls, 10)
	b = append(b, " errors = "...)
	b = strconv.AppendUint(b, s.Errors, 10)
	b = append(b, " unanswered = "...)
	b = strconv.AppendUint(b, s.Unanswered, 10)
	b = append(b, " rows = "...)
	b = strconv.AppendUint(b, s.Rows, 10)
	if answered {
		b = append(b, " p50 = "...)
		b = appendDurText(b, max(s.P50Ns, 1))
		b = append(b, " p99 = "...)
		b = appendDurText(b, max(s.P99Ns, 1))
		b = append(b, " max = "...)
		b = appendDurText(b, max(s.MaxNs, 1))
	}
	return append(b, '\n')
}

// AppendMySQLStatsLog appends one mysql.log counters line.
func AppendMySQLStatsLog(b []byte, s *event.MySQLStats, final bool) []byte {
	b = append(b, "mysql_stats{"...)
	b = kv(b, "side", true)
	b = append(b, s.Side.String()...)
	b = append(b, '"')
	b = kvS(b, "event", intervalOrExit(final))
	b = kvS(b, "command", event.MySQLCommandName(s.Command))
	b = kvU(b, "calls", s.Calls)
	b = kvU(b, "errors", s.Errors)
	b = kvU(b, "unanswered", s.Unanswered)
	b = kvU(b, "rows", s.Rows)
	for _, q := range [...]struct {
		k string
		v uint64
	}{{"p50", s.P50Ns}, {"p99", s.P99Ns}, {"max", s.MaxNs}} {
		b = kvUs3(b, q.k, q.v, s.Answered > 0)
	}
	return append(b, "}\n"...)
}
