package output

import (
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// ---- Redis (-R) ----

// RedisLogName is the log of -R in --data-dir.
const RedisLogName = "redis.log"

// RedisReplyType names a reply's RESP type (simple, error, integer, bulk,
// array, null, and RESP3's double, boolean, bignum, blob_error, verbatim,
// map, set, push).
func RedisReplyType(t byte, null bool) string {
	if null {
		return "null"
	}
	switch t {
	case '+':
		return "simple"
	case '-':
		return "error"
	case ':':
		return "integer"
	case '$':
		return "bulk"
	case '*':
		return "array"
	case '_':
		return "null"
	case ',':
		return "double"
	case '#':
		return "boolean"
	case '(':
		return "bignum"
	case '!':
		return "blob_error"
	case '=':
		return "verbatim"
	case '%':
		return "map"
	case '~':
		return "set"
	case '>':
		return "push"
	case '|':
		return "attribute"
	}
	return "unknown"
}

// Redis formats one request/reply pair (or a lone request or reply):
// console line or JSON record "redis". Conn's Src is the local end.
//
// JSON: event (answer, unanswered, unmatched), side (client, server), cmd
// (null for an unmatched reply), key (the first argument, bounded to 64
// bytes, bytes outside printable ASCII as \xNN; null when none or not
// kept: AUTH, HELLO, ECHO, PING), key_cut (1: longer than kept), args
// (arguments after the command), reply (type; null when unanswered), error
// (an error reply's first word, else null), latency_ns (null unless
// answered).
func (p *Printer) Redis(b []byte, r *event.RedisResult) []byte {
	if p.JSON {
		b = p.jHead(b, "redis", r.TS)
		b = jConn(b, &r.Conn)
		b = append(b, `,"event":"`...)
		b = append(b, r.Kind.String()...)
		b = append(b, `","side":"`...)
		b = append(b, r.Side.String()...)
		b = append(b, '"')
		if r.Kind == event.RedisUnmatched {
			b = append(b, `,"cmd":null,"key":null,"key_cut":null,"args":null`...)
		} else {
			b = jStr(b, "cmd", r.Cmd)
			if r.Key != nil {
				b = jStr(b, "key", r.Key)
			} else {
				b = append(b, `,"key":null`...)
			}
			b = jU(b, "key_cut", b2u(r.KeyCut))
			b = jU(b, "args", uint64(r.Args))
		}
		if r.Kind == event.RedisUnanswered {
			b = append(b, `,"reply":null`...)
		} else {
			b = append(b, `,"reply":"`...)
			b = append(b, RedisReplyType(r.Reply, r.ReplyNull)...)
			b = append(b, '"')
		}
		if r.Err != nil {
			b = jStr(b, "error", r.Err)
		} else {
			b = append(b, `,"error":null`...)
		}
		b = jUOrNull(b, "latency_ns", r.LatencyNs, r.Kind == event.RedisAnswer)
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, r.TS)
	b = append(b, " [V] redis "...)
	b = append(b, r.Side.String()...)
	b = append(b, ' ')
	if r.Kind == event.RedisUnmatched {
		b = append(b, '-')
	} else {
		b = append(b, r.Cmd...)
		if r.Key != nil {
			b = append(b, ' ')
			b = append(b, r.Key...)
			if r.KeyCut {
				b = append(b, "..."...)
			}
		}
	}
	switch r.Kind {
	case event.RedisUnanswered:
		b = append(b, " unanswered"...)
	default:
		b = append(b, " -> "...)
		b = append(b, RedisReplyType(r.Reply, r.ReplyNull)...)
		if r.Err != nil {
			b = append(b, ' ')
			b = append(b, r.Err...)
		}
		b = appendLatencyText(b, r.LatencyNs, r.Kind == event.RedisAnswer, "- (no request seen)")
	}
	return appendConnLine(b, &r.Conn, r.Conn.Src, r.Conn.Dst)
}

// AppendRedisLog appends one redis.log line; "-" for what is unknown or
// does not apply. latency in µs, 3 decimals.
func AppendRedisLog(b []byte, r *event.RedisResult) []byte {
	c := &r.Conn
	b = appendLogHead(b, "redis", c)
	b = kvS(b, "event", r.Kind.String())
	b = kvS(b, "side", r.Side.String())
	b = kv(b, "cmd", false)
	if r.Kind == event.RedisUnmatched {
		b = append(b, '-')
	} else {
		b = append(b, r.Cmd...)
	}
	b = append(b, '"')
	b = kv(b, "key", false)
	if r.Key != nil {
		b = append(b, r.Key...)
	} else {
		b = append(b, '-')
	}
	b = append(b, '"')
	b = kvU(b, "key_cut", b2u(r.KeyCut))
	b = kv(b, "reply", false)
	if r.Kind == event.RedisUnanswered {
		b = append(b, '-')
	} else {
		b = append(b, RedisReplyType(r.Reply, r.ReplyNull)...)
	}
	b = append(b, '"')
	b = kv(b, "error", false)
	if r.Err != nil {
		b = append(b, r.Err...)
	} else {
		b = append(b, '-')
	}
	b = append(b, '"')
	b = kvUs3(b, "latency", r.LatencyNs, r.Kind == event.RedisAnswer)
	b = kvID(b, c.ID)
	return append(b, "}\n"...)
}

// RedisSummary formats one command's summary at one side (console line
// or JSON record "redis_summary": event interval or exit, side, cmd,
// calls, errors, paired (calls with a latency), p50_ns, p99_ns, max_ns
// (null when none paired)).
func (p *Printer) RedisSummary(b []byte, ts uint64, s *event.RedisSummary) []byte {
	if p.JSON {
		b = p.jHead(b, "redis_summary", ts)
		b = append(b, `,"event":"`...)
		b = append(b, intervalOrExit(s.Final)...)
		b = append(b, `","side":"`...)
		b = append(b, s.Side.String()...)
		b = append(b, '"')
		b = jStr(b, "cmd", s.Cmd)
		b = jU(b, "calls", s.Calls)
		b = jU(b, "errors", s.Errors)
		b = jU(b, "paired", s.Paired)
		b = jLatencies(b, s.Paired > 0, s.P50Ns, s.P99Ns, s.MaxNs)
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ts)
	b = append(b, " [V] redis summary ("...)
	b = append(b, intervalOrExit(s.Final)...)
	b = append(b, "): side = "...)
	b = append(b, s.Side.String()...)
	b = append(b, " cmd = "...)
	b = append(b, s.Cmd...)
	b = append(b, " calls = "...)
	b = strconv.AppendUint(b, s.Calls, 10)
	b = append(b, " errors = "...)
	b = strconv.AppendUint(b, s.Errors, 10)
	b = append(b, " p50 = "...)
	if s.Paired > 0 {
		b = appendDurText(b, max(s.P50Ns, 1))
		b = append(b, " p99 = "...)
		b = appendDurText(b, max(s.P99Ns, 1))
	} else {
		b = append(b, "- p99 = -"...)
	}
	return append(b, '\n')
}

// AppendRedisSummaryLog appends one redis.log summary line
// (redis_summary{...}, p50/p99 in µs, 3 decimals, "-" when none paired).
func AppendRedisSummaryLog(b []byte, s *event.RedisSummary) []byte {
	b = append(b, "redis_summary{"...)
	b = kv(b, "side", true)
	b = append(b, s.Side.String()...)
	b = append(b, '"')
	b = kvS(b, "event", intervalOrExit(s.Final))
	b = kvS(b, "cmd", s.Cmd)
	b = kvU(b, "calls", s.Calls)
	b = kvU(b, "errors", s.Errors)
	b = kvU(b, "paired", s.Paired)
	for _, f := range []struct {
		k string
		v uint64
	}{{"p50", s.P50Ns}, {"p99", s.P99Ns}} {
		b = kvUs3(b, f.k, f.v, s.Paired > 0)
	}
	return append(b, "}\n"...)
}
