package output

import (
	"net/netip"
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/httpinfo"
	"github.com/netwatcher/netwatcher/internal/track"
)

// Printer formats console records: aligned table lines for people, or one
// JSON object per line for programs. Every record of a connection names it
// the same way in both: wall-clock time, its number (conn_id), addresses
// and owner. One null convention in JSON: a value that is not known is
// null, a value that does not apply is absent.
//
// Table columns are sized to their content: address columns start wide
// enough for IPv4 (21) and grow, with the header printed again, when a
// wider address (IPv6) appears.
type Printer struct {
	JSON   bool
	Timed  bool   // -t: layer times
	HTTP   bool   // -i
	Sample uint32 // --sample N: packet records say "sample":N when N > 1
	Fields Fields
	Clock  *Clock

	addrW          int
	connHdr, pktHd int        // address width the last header was printed for (0: none)
	texts          *connTexts // recent connections' formatted identity (conntext.go)
}

const minAddrW = len("255.255.255.255:65535")

func (p *Printer) fit(aps ...netip.AddrPort) {
	if p.addrW < minAddrW {
		p.addrW = minAddrW
	}
	for _, ap := range aps {
		if ap.Addr().Is4() {
			continue // never wider than minAddrW: no need to format it
		}
		if n := apLen(ap); n > p.addrW {
			p.addrW = n
		}
	}
}

func apLen(ap netip.AddrPort) int {
	if !ap.IsValid() {
		return 1
	}
	var buf [64]byte
	return len(ap.AppendTo(buf[:0]))
}

// ---- JSON helpers ----

// jHead starts a JSON record: type, wall-clock time, monotonic ns.
func (p *Printer) jHead(b []byte, typ string, ts uint64) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","time":"`...)
	b = p.Clock.AppendJSON(b, ts)
	b = append(b, '"')
	return jU(b, "ts_ns", ts)
}

// jConn appends what names a connection and its owner.
func jConn(b []byte, c *event.Conn) []byte {
	b = jU(b, "netns", uint64(c.Netns))
	b = append(b, `,"sock":"`...)
	b = appendHex(b, c.Sock)
	b = append(b, '"')
	b = jID(b, c.ID)
	b = jAP(b, "src", c.Src)
	b = jAP(b, "dst", c.Dst)
	if c.Pid == 0 && c.OwnerSrc == event.OwnerNone {
		b = append(b, `,"pid":null,"comm":null`...)
	} else {
		b = jU(b, "pid", uint64(c.Pid))
		if comm := c.Comm.Bytes(); len(comm) > 0 {
			b = jStr(b, "comm", comm)
		} else {
			// the pid without its name: program types that may read
			// the task's pid but not its comm (cgroup_skb, netfilter
			// before 6.13)
			b = append(b, `,"comm":null`...)
		}
	}
	return b
}

func jID(b []byte, id uint64) []byte {
	if id == 0 {
		return append(b, `,"conn_id":null`...)
	}
	return jU(b, "conn_id", id)
}

// ---- table helpers ----

func (p *Printer) tTime(b []byte, ts uint64) []byte {
	s := len(b)
	b = p.Clock.AppendTable(b, ts)
	return pad(b, s, 15)
}

func tID(b []byte, id uint64) []byte {
	s := len(b)
	if id == 0 {
		b = append(b, '-')
	} else {
		b = appendUint(b, id)
	}
	return pad(b, s, 6)
}

func (p *Printer) tAP(b []byte, ap netip.AddrPort) []byte {
	s := len(b)
	b = appendAP(b, ap)
	return pad(b, s, p.addrW)
}

func (p *Printer) header(b []byte, cols ...any) []byte {
	for _, c := range cols {
		s := len(b)
		switch c := c.(type) {
		case string:
			b = append(b, c...)
		case [2]any: // name, width
			b = append(b, c[0].(string)...)
			b = pad(b, s, c[1].(int))
			continue
		}
		b = append(b, ' ')
	}
	b[len(b)-1] = '\n'
	return b
}

func col(name string, w int) [2]any { return [2]any{name, w} }

// ---- connections ----

// Conn formats a connection event: open, owner, close, exists (found at
// start-up) or sample (-x values, every second).
func (p *Printer) Conn(b []byte, what string, ts uint64, e *track.Entry, nowNs uint64) []byte {
	c := &e.Conn
	if p.JSON {
		b = p.jHead(b, "connection", ts)
		b = append(b, `,"event":"`...)
		b = append(b, what...)
		b = append(b, '"')
		b = jConn(b, c)
		b = append(b, `,"owner":"`...)
		b = append(b, c.OwnerSrc.String()...)
		b = append(b, '"')
		b = jU(b, "is_server", b2u(c.IsServer))
		if p.Fields.Extra && e.HasStats {
			s := &e.Stats
			b = jU(b, "backlog", uint64(s.Backlog))
			b = jU(b, "maxbacklog", uint64(s.MaxBacklog))
			b = jU(b, "rwnd", uint64(s.SndWnd))
			b = jU(b, "rcv_wnd", uint64(s.RcvWnd))
			b = jU(b, "cwnd", uint64(s.Cwnd))
			b = jU(b, "ssthresh", uint64(s.Ssthresh))
			b = jU(b, "sndbuf", uint64(s.Sndbuf))
			b = jU(b, "wmem_queued", uint64(s.WmemQueued))
			b = jU(b, "rx_bytes", s.BytesReceived)
			b = jU(b, "tx_bytes", s.BytesAcked)
			b = jU(b, "srtt_us", uint64(s.SrttUs()))
			b = jU(b, "duration_us", DurationUs(e, nowNs))
			b = jU(b, "total_retrans", uint64(s.TotalRetrans))
			b = jU(b, "state", uint64(s.State))
		}
		if p.Fields.Retrans {
			b = jU(b, "fast_retrans", uint64(c.FastRetrans))
			b = jU(b, "timeout_retrans", uint64(c.TimeoutRetrans))
			b = jU(b, "retrans_segs", RetransSegs(e))
			b = jU(b, "retrans_seen", uint64(c.RetransSegs))
		}
		return append(b, "}\n"...)
	}
	p.fit(c.Src, c.Dst)
	if p.connHdr != p.addrW {
		p.connHdr = p.addrW
		b = p.header(b, col("TIME", 15), col("EVENT", 7), col("CONN", 6), col("PID", 7), col("COMM", 15),
			col("SOCK", 18), col("SRC", p.addrW), col("DST", p.addrW), "SERVER")
	}
	b = p.tTime(b, ts)
	s := len(b)
	b = append(b, what...)
	b = pad(b, s, 7)
	b = tID(b, c.ID)
	s = len(b)
	b = appendUint(b, uint64(c.Pid))
	b = pad(b, s, 7)
	s = len(b)
	b = append(b, c.Comm.Bytes()...)
	b = pad(b, s, 15)
	s = len(b)
	b = appendHex(b, c.Sock)
	b = pad(b, s, 18)
	b = p.tAP(b, c.Src)
	b = p.tAP(b, c.Dst)
	b = appendUint(b, b2u(c.IsServer))
	// -x/-r values: on close and sample lines (an open line has none yet)
	withStats := p.Fields.Extra && e.HasStats
	withRetrans := p.Fields.Retrans && (e.Closed || what == "sample")
	if withStats || withRetrans {
		b = append(b, "     "...)
	}
	if withStats {
		st := &e.Stats
		b = append(b, " srtt="...)
		b = appendUint(b, uint64(st.SrttUs()))
		b = append(b, "us cwnd="...)
		b = appendUint(b, uint64(st.Cwnd))
		b = append(b, " ssthresh="...)
		b = appendUint(b, uint64(st.Ssthresh))
		b = append(b, " rwnd="...)
		b = appendUint(b, uint64(st.SndWnd))
		b = append(b, " sndbuf="...)
		b = appendUint(b, uint64(st.Sndbuf))
		b = append(b, " wmem_queued="...)
		b = appendUint(b, uint64(st.WmemQueued))
		b = append(b, " backlog="...)
		b = appendUint(b, uint64(st.Backlog))
		b = append(b, '/')
		b = appendUint(b, uint64(st.MaxBacklog))
		b = append(b, " rx_bytes="...)
		b = AppendHumanBytes(b, st.BytesReceived)
		b = append(b, " tx_bytes="...)
		b = AppendHumanBytes(b, st.BytesAcked)
		b = append(b, " duration="...)
		b = appendUint(b, DurationUs(e, nowNs))
		b = append(b, "us total_retrans="...)
		b = appendUint(b, uint64(st.TotalRetrans))
	}
	if withRetrans {
		b = append(b, " fast_retrans="...)
		b = appendUint(b, uint64(c.FastRetrans))
		b = append(b, " timeout_retrans="...)
		b = appendUint(b, uint64(c.TimeoutRetrans))
		b = append(b, " retrans_segs="...)
		b = appendUint(b, RetransSegs(e))
	}
	return append(b, '\n')
}

// ---- packets ----

// Packet formats one data segment; http is the raw HTTP line text (nil or
// "-" when none).
func (p *Printer) Packet(b []byte, ev *event.Event, http []byte) []byte {
	pk := &ev.Packet
	if p.JSON {
		// jHead, jConn (from the connection's slot, conntext.go) and
		// jU with one constant between two values
		b = append(b, `{"type":"packet","time":"`...)
		b = p.Clock.AppendJSON(b, ev.TS)
		b = append(b, `","ts_ns":`...)
		b = appendUint(b, ev.TS)
		b = p.jConnText(b, &ev.Conn)
		b = append(b, `,"seq":`...)
		b = appendUint(b, uint64(pk.Seq))
		b = append(b, `,"ack":`...)
		b = appendUint(b, uint64(pk.Ack))
		b = append(b, `,"len":`...)
		b = appendUint(b, uint64(pk.Len))
		if pk.Rx {
			b = append(b, `,"rx":1`...)
		} else {
			b = append(b, `,"rx":0`...)
		}
		if p.Sample > 1 {
			b = append(b, `,"sample":`...)
			b = appendUint(b, uint64(p.Sample))
		}
		if p.Timed {
			b = append(b, `,"mac_time_ns":`...)
			b = jNs(b, pk.MacNs, pk.Missing&event.MissingMac != 0)
			b = append(b, `,"ip_time_ns":`...)
			b = jNs(b, pk.IPNs, pk.Missing&event.MissingIP != 0)
			b = append(b, `,"tcp_time_ns":`...)
			b = jNs(b, pk.TCPNs, pk.Missing&event.MissingTCP != 0)
		}
		if p.HTTP {
			if len(http) == 0 || string(http) == "-" {
				b = append(b, `,"http_info":null`...)
			} else {
				// already escaped for a JSON string (httpinfo.Line.AppendText)
				b = append(b, `,"http_info":"`...)
				b = append(b, http...)
				b = append(b, '"')
			}
		}
		return append(b, "}\n"...)
	}
	p.fit(ev.Conn.Src, ev.Conn.Dst)
	if p.pktHd != p.addrW {
		p.pktHd = p.addrW
		b = p.header(b, col("TIME", 15), col("CONN", 6), col("SOCK", 18), col("SEQ", 10), col("ACK", 10),
			col("MAC_TIME", 8), col("IP_TIME", 8), col("TCP_TIME", 8), col("RX", 2), col("LEN", 6),
			col("SRC", p.addrW), col("DST", p.addrW), "HTTP")
	}
	b = p.tTime(b, ev.TS)
	ct := p.textSlot(&ev.Conn) // CONN, SOCK, SRC, DST: the connection's slot (conntext.go)
	if !ct.hasIDSock {
		t := tID(ct.idSock[:0], ev.Conn.ID)
		s := len(t)
		t = appendHex(t, ev.Conn.Sock)
		ct.idSock, ct.hasIDSock = pad(t, s, 18), true
	}
	b = append(b, ct.idSock...)
	s := len(b)
	b = appendUint(b, uint64(pk.Seq))
	b = pad(b, s, 10)
	s = len(b)
	b = appendUint(b, uint64(pk.Ack))
	b = pad(b, s, 10)
	s = len(b)
	b = layerUs(b, pk.MacNs, pktMissing(pk, p.Timed, event.MissingMac))
	b = pad(b, s, 8)
	s = len(b)
	b = layerUs(b, pk.IPNs, pktMissing(pk, p.Timed, event.MissingIP))
	b = pad(b, s, 8)
	s = len(b)
	b = layerUs(b, pk.TCPNs, pktMissing(pk, p.Timed, event.MissingTCP))
	b = pad(b, s, 8)
	s = len(b)
	b = appendUint(b, b2u(pk.Rx))
	b = pad(b, s, 2)
	s = len(b)
	b = appendUint(b, uint64(pk.Len))
	b = pad(b, s, 6)
	if ct.addrW != p.addrW {
		ct.addrs, ct.addrW = p.tAP(p.tAP(ct.addrs[:0], ev.Conn.Src), ev.Conn.Dst), p.addrW
	}
	b = append(b, ct.addrs...)
	if len(http) == 0 {
		b = append(b, '-')
	} else {
		b = append(b, http...) // escaped, printable (httpinfo.Line.AppendText)
	}
	return append(b, '\n')
}

// ---- errors ----

// Error formats a rejected segment (an alert: printed even with -q).
func (p *Printer) Error(b []byte, ev *event.Event, reason string) []byte {
	if p.JSON {
		b = p.jHead(b, "error", ev.TS)
		c := ev.Conn
		// the segment's own addresses (it may belong to an older connection of the socket)
		c.Src, c.Dst = ev.Err.Src, ev.Err.Dst
		b = jConn(b, &c)
		b = jU(b, "seq", uint64(ev.Err.Seq))
		b = jU(b, "ack", uint64(ev.Err.Ack))
		b = jStr(b, "reason", []byte(reason))
		b = jU(b, "reason_code", uint64(ev.Err.Reason))
		b = jU(b, "rx", b2u(ev.Err.Rx))
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [X] "...)
	b = append(b, reason...)
	b = appendConnHead(b, &ev.Conn)
	b = append(b, " seq = "...)
	b = appendUint(b, uint64(ev.Err.Seq))
	b = append(b, " ack = "...)
	b = appendUint(b, uint64(ev.Err.Ack))
	b = append(b, ' ')
	b = appendFlowText(b, ev.Err.Src, ev.Err.Dst)
	b = appendOwnerText(b, &ev.Conn)
	return append(b, '\n')
}

// appendConnHead appends ": conn = ID sock = 0x…", the name every alert
// line ([X], [R], [S], [K], [T]) gives its connection.
func appendConnHead(b []byte, c *event.Conn) []byte {
	b = append(b, ": conn = "...)
	b = appendIDText(b, c.ID)
	b = append(b, " sock = "...)
	return appendHex(b, c.Sock)
}

// appendConnLine ends an alert line: the connection's name, src -> dst,
// its owner, the newline.
func appendConnLine(b []byte, c *event.Conn, src, dst netip.AddrPort) []byte {
	b = appendConnHead(b, c)
	b = append(b, ' ')
	b = appendFlowText(b, src, dst)
	b = appendOwnerText(b, c)
	return append(b, '\n')
}

func appendIDText(b []byte, id uint64) []byte {
	if id == 0 {
		return append(b, '-')
	}
	return appendUint(b, id)
}

// appendFlowText appends "src -> dst" ("-" for an unknown address).
func appendFlowText(b []byte, src, dst netip.AddrPort) []byte {
	b = appendAP(b, src)
	b = append(b, " -> "...)
	return appendAP(b, dst)
}

func appendOwnerText(b []byte, c *event.Conn) []byte {
	if c.Pid == 0 {
		return b
	}
	b = append(b, " pid = "...)
	b = appendUint(b, uint64(c.Pid))
	b = append(b, " comm = "...)
	return append(b, c.Comm.Bytes()...)
}

// ---- retransmissions ----

var caNames = [...]string{"Open", "Disorder", "CWR", "Recovery", "Loss"}

// CaName names a TCP congestion-avoidance state (icsk_ca_state).
func CaName(s uint8) string {
	if int(s) < len(caNames) {
		return caNames[s]
	}
	return "state" + strconv.Itoa(int(s))
}

// Episode formats a retransmission episode (entry into fast recovery or
// RTO loss). syn: the connection was not established yet (a SYN or SYN-ACK
// retransmitted after a timeout).
func (p *Printer) Episode(b []byte, ev *event.Event, kind string) []byte {
	r := &ev.Retrans
	if p.JSON {
		b = p.jHead(b, "retrans", ev.TS)
		b = jConn(b, &ev.Conn)
		b = append(b, `,"kind":"`...)
		b = append(b, kind...)
		b = append(b, `","from":"`...)
		b = append(b, CaName(r.OldState)...)
		b = append(b, `","to":"`...)
		b = append(b, CaName(r.CaState)...)
		b = append(b, '"')
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [R] "...)
	b = append(b, kind...)
	b = append(b, " retransmit ("...)
	b = append(b, CaName(r.OldState)...)
	b = append(b, " -> "...)
	b = append(b, CaName(r.CaState)...)
	b = append(b, ')')
	return appendConnLine(b, &ev.Conn, ev.Conn.Src, ev.Conn.Dst)
}

// RetransSegment formats one retransmitted segment (JSON only: the console
// shows episodes).
func (p *Printer) RetransSegment(b []byte, ev *event.Event) []byte {
	b = p.jHead(b, "retrans_segment", ev.TS)
	b = jConn(b, &ev.Conn)
	b = jU(b, "seq", uint64(ev.Retrans.Seq))
	b = jU(b, "segs", uint64(ev.Retrans.Segs))
	b = append(b, `,"ca_state":"`...)
	b = append(b, CaName(ev.Retrans.CaState)...)
	return append(b, "\"}\n"...)
}

// ---- HTTP ----

// HTTPMatch formats a request paired with its response (JSON only: the
// console shows the lines themselves and a summary at close).
func (p *Printer) HTTPMatch(b []byte, ts uint64, c *event.Conn, m *httpinfo.Match) []byte {
	b = p.jHead(b, "http", ts)
	b = jConn(b, c)
	b = append(b, `,"method":"`...)
	b = append(b, m.Method.String()...)
	b = append(b, '"')
	b = jU(b, "status", uint64(m.Status))
	b = jU(b, "latency_ns", m.Latency)
	b = append(b, `,"interim":`...)
	b = strconv.AppendBool(b, m.Interim)
	return append(b, "}\n"...)
}

// HTTPSummary formats the request/response statistics of a closed
// connection. Latencies exist only for matched pairs: without any, they
// are null (JSON) or "-" (table), never zeros.
func (p *Printer) HTTPSummary(b []byte, ts uint64, c *event.Conn, s *httpinfo.Summary) []byte {
	lat := s.Matched > 0
	if p.JSON {
		b = p.jHead(b, "http_summary", ts)
		b = jConn(b, c)
		b = jU(b, "requests", s.Requests)
		b = jU(b, "responses", s.Responses)
		b = jU(b, "matched", s.Matched)
		b = jU(b, "unmatched", s.Unmatched)
		if lat {
			b = jU(b, "latency_min_ns", s.MinLatency)
			b = jU(b, "latency_avg_ns", s.AvgLatency())
			b = jU(b, "latency_max_ns", s.MaxLatency)
		} else {
			b = append(b, `,"latency_min_ns":null,"latency_avg_ns":null,"latency_max_ns":null`...)
		}
		for cl := 2; cl <= 5; cl++ {
			b = append(b, `,"status_`...)
			b = strconv.AppendInt(b, int64(cl), 10)
			b = append(b, `xx":`...)
			b = appendUint(b, s.Class[cl])
		}
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ts)
	b = append(b, " [H] http: conn = "...)
	b = appendIDText(b, c.ID)
	b = append(b, " sock = "...)
	b = appendHex(b, c.Sock)
	b = append(b, ' ')
	b = appendFlowText(b, c.Src, c.Dst)
	b = append(b, " requests = "...)
	b = appendUint(b, s.Requests)
	b = append(b, " responses = "...)
	b = appendUint(b, s.Responses)
	b = append(b, " matched = "...)
	b = appendUint(b, s.Matched)
	b = append(b, " latency min/avg/max = "...)
	if !lat {
		b = append(b, '-')
	} else {
		b = strconv.AppendFloat(b, float64(s.MinLatency)/1000, 'f', 1, 64)
		b = append(b, '/')
		b = strconv.AppendFloat(b, float64(s.AvgLatency())/1000, 'f', 1, 64)
		b = append(b, '/')
		b = strconv.AppendFloat(b, float64(s.MaxLatency)/1000, 'f', 1, 64)
		b = append(b, " us"...)
	}
	return append(b, '\n')
}
