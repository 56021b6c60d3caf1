package output

import (
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// ---- DNS (-N) ----

// DNSLogName is the log of -N in --data-dir.
const DNSLogName = "dns.log"

var dnsTypeNames = map[uint16]string{
	1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 17: "RP",
	18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR", 36: "KX",
	37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY",
	46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA",
	53: "SMIMEA", 55: "HIP", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD",
	64: "SVCB", 65: "HTTPS", 99: "SPF", 108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG",
	251: "IXFR", 252: "AXFR", 255: "ANY", 256: "URI", 257: "CAA",
}

// AppendDNSType appends a query type's mnemonic (RFC 3597 "TYPE123" when
// it has none).
func AppendDNSType(b []byte, t uint16) []byte {
	if s, ok := dnsTypeNames[t]; ok {
		return append(b, s...)
	}
	return strconv.AppendUint(append(b, "TYPE"...), uint64(t), 10)
}

var dnsRcodeNames = [16]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
	"YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15"}

// DNSRcodeName is a 4-bit response code's name (RFC 1035, 2136).
func DNSRcodeName(r uint8) string { return dnsRcodeNames[r&0xf] }

func dnsProto(r *event.DNSResult) string {
	if r.TCP {
		return "tcp"
	}
	return "udp"
}

// appendUs3 appends ns as µs with three decimals.
func appendUs3(b []byte, ns uint64) []byte {
	return strconv.AppendFloat(b, float64(ns)/1e3, 'f', 3, 64)
}

// DNS formats one query/response pair (or a lone query or response):
// console line or JSON record. Conn's Src is the local end (the client at
// the client side, the server at the server side).
//
// JSON: event (answer, unanswered, unmatched), side (client, server),
// proto, id, qname and qtype/qtype_code (null for a message without a
// question), rcode/rcode_code, answers (the header's answer count) and tc
// (responses only: absent for an unanswered query), latency_ns (null
// unless answered), evicted (1: an unanswered query pushed out of the full
// pending table).
func (p *Printer) DNS(b []byte, r *event.DNSResult) []byte {
	if p.JSON {
		b = p.jHead(b, "dns", r.TS)
		b = jConn(b, &r.Conn)
		b = append(b, `,"event":"`...)
		b = append(b, r.Kind.String()...)
		b = append(b, `","side":"`...)
		b = append(b, r.Side.String()...)
		b = append(b, `","proto":"`...)
		b = append(b, dnsProto(r)...)
		b = append(b, '"')
		b = jU(b, "id", uint64(r.ID))
		if r.HasQuestion {
			b = jStr(b, "qname", r.Name)
			b = append(b, `,"qtype":"`...)
			b = AppendDNSType(b, r.QType)
			b = append(b, '"')
			b = jU(b, "qtype_code", uint64(r.QType))
		} else {
			b = append(b, `,"qname":null,"qtype":null,"qtype_code":null`...)
		}
		if r.Kind != event.DNSUnanswered {
			b = append(b, `,"rcode":"`...)
			b = append(b, DNSRcodeName(r.Rcode)...)
			b = append(b, '"')
			b = jU(b, "rcode_code", uint64(r.Rcode))
			b = jU(b, "answers", uint64(r.Answers))
			b = jU(b, "tc", b2u(r.TC))
		}
		b = jUOrNull(b, "latency_ns", r.LatencyNs, r.Kind == event.DNSAnswer)
		if r.Evicted {
			b = jU(b, "evicted", 1)
		}
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, r.TS)
	b = append(b, " [Q] dns "...)
	b = append(b, r.Side.String()...)
	b = append(b, ' ')
	b = append(b, dnsProto(r)...)
	b = append(b, ' ')
	if r.HasQuestion {
		b = AppendDNSType(b, r.QType)
		b = append(b, ' ')
		b = append(b, r.Name...)
	} else {
		b = append(b, "- -"...)
	}
	switch r.Kind {
	case event.DNSUnanswered:
		b = append(b, " unanswered"...)
		if r.Evicted {
			b = append(b, " (evicted)"...)
		}
	default:
		b = append(b, ' ')
		b = append(b, DNSRcodeName(r.Rcode)...)
		b = append(b, " answers = "...)
		b = strconv.AppendUint(b, uint64(r.Answers), 10)
		if r.TC {
			b = append(b, " TC"...)
		}
		b = appendLatencyText(b, r.LatencyNs, r.Kind == event.DNSAnswer, "- (no query seen)")
	}
	b = append(b, " id = "...)
	b = strconv.AppendUint(b, uint64(r.ID), 10)
	return appendConnLine(b, &r.Conn, r.Conn.Src, r.Conn.Dst)
}

// AppendDNSLog appends one dns.log line; "-" for what is unknown or does
// not apply (qname/qtype without a question; rcode, answers, tc of an
// unanswered query; latency unless answered). latency in µs, 3 decimals.
func AppendDNSLog(b []byte, r *event.DNSResult) []byte {
	c := &r.Conn
	b = appendLogHead(b, "dns", c)
	b = kvS(b, "event", r.Kind.String())
	b = kvS(b, "side", r.Side.String())
	b = kvS(b, "proto", dnsProto(r))
	b = kvU(b, "id", uint64(r.ID))
	b = kv(b, "qname", false)
	if r.HasQuestion {
		b = append(b, r.Name...)
	} else {
		b = append(b, '-')
	}
	b = append(b, '"')
	b = kv(b, "qtype", false)
	if r.HasQuestion {
		b = AppendDNSType(b, r.QType)
	} else {
		b = append(b, '-')
	}
	b = append(b, '"')
	if r.Kind == event.DNSUnanswered {
		b = append(b, `,rcode="-",answers="-",tc="-"`...)
	} else {
		b = kvS(b, "rcode", DNSRcodeName(r.Rcode))
		b = kvU(b, "answers", uint64(r.Answers))
		b = kvU(b, "tc", b2u(r.TC))
	}
	b = kvUs3(b, "latency", r.LatencyNs, r.Kind == event.DNSAnswer)
	b = kvID(b, c.ID)
	return append(b, "}\n"...)
}

func appendRcodes(b []byte, c *event.DNSProcCounters, json bool) []byte {
	first := true
	for i, n := range c.Rcodes {
		if n == 0 {
			continue
		}
		switch {
		case json && !first:
			b = append(b, ',')
		case !json && !first:
			b = append(b, ' ')
		}
		first = false
		if json {
			b = append(b, '"')
		}
		b = append(b, DNSRcodeName(uint8(i))...)
		if json {
			b = append(b, '"')
		}
		b = append(b, ':')
		b = strconv.AppendUint(b, n, 10)
	}
	if first && !json {
		b = append(b, '-')
	}
	return b
}

// DNSCounters formats one process's counters at one side (console line
// or JSON record "dns_counters").
func (p *Printer) DNSCounters(b []byte, ts uint64, c *event.DNSProcCounters, final bool) []byte {
	if p.JSON {
		b = p.jHead(b, "dns_counters", ts)
		b = append(b, `,"event":"`...)
		b = append(b, intervalOrExit(final)...)
		b = append(b, '"')
		b = jOwner(b, c.Pid, &c.Comm)
		b = append(b, `,"side":"`...)
		b = append(b, c.Side.String()...)
		b = append(b, '"')
		b = jU(b, "queries", c.Queries)
		b = jU(b, "answered", c.Answered)
		b = jU(b, "unanswered", c.Unanswered)
		b = jU(b, "unmatched", c.Unmatched)
		b = append(b, `,"rcodes":{`...)
		b = appendRcodes(b, c, true)
		return append(b, "}}\n"...)
	}
	b = p.Clock.AppendTable(b, ts)
	b = append(b, " [Q] dns counters ("...)
	b = append(b, intervalOrExit(final)...)
	b = append(b, "): pid = "...)
	if c.Pid == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendUint(b, uint64(c.Pid), 10)
		b = append(b, " comm = "...)
		b = append(b, c.Comm.Bytes()...)
	}
	b = append(b, " side = "...)
	b = append(b, c.Side.String()...)
	b = append(b, " queries = "...)
	b = strconv.AppendUint(b, c.Queries, 10)
	b = append(b, " answered = "...)
	b = strconv.AppendUint(b, c.Answered, 10)
	b = append(b, " unanswered = "...)
	b = strconv.AppendUint(b, c.Unanswered, 10)
	b = append(b, " unmatched = "...)
	b = strconv.AppendUint(b, c.Unmatched, 10)
	b = append(b, " rcodes = "...)
	b = appendRcodes(b, c, false)
	return append(b, '\n')
}

// AppendDNSCountersLog appends one dns.log counters line.
func AppendDNSCountersLog(b []byte, c *event.DNSProcCounters, final bool) []byte {
	b = append(b, "dns_counters{"...)
	b = kvOwner(b, c.Pid, &c.Comm, true)
	b = kvS(b, "side", c.Side.String())
	b = kvS(b, "event", intervalOrExit(final))
	b = kvU(b, "queries", c.Queries)
	b = kvU(b, "answered", c.Answered)
	b = kvU(b, "unanswered", c.Unanswered)
	b = kvU(b, "unmatched", c.Unmatched)
	b = kv(b, "rcodes", false)
	b = appendRcodes(b, c, false)
	return append(b, "\"}\n"...)
}
