package httpinfo

import (
	"regexp"
	"strings"
	"testing"
)

// A reference parser, written independently of Parse from the grammar in the
// package documentation with regular expressions: slow and obviously right.
var (
	refRequest  = regexp.MustCompile(`^(GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH) ([!-~]+) (HTTP/1\.[01])$`)
	refResponse = regexp.MustCompile(`^(HTTP/1\.[01]) ([1-5][0-9][0-9])(?: ([\t -~]*))?$`)
	refEvidence = regexp.MustCompile(`^(GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH) ([^ ]+)`)
	refScheme   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
)

type refLine struct {
	kind                  Kind
	method, target, proto string
	status, reason        string
	truncated, captureCut bool
}

func refTargetOK(method, target string) bool {
	switch {
	case target[0] == '/':
		return true
	case target[0] == '*':
		return method == "OPTIONS" && target == "*"
	case method == "CONNECT":
		c := target[0]
		return c == '[' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	return refScheme.MatchString(target)
}

// refComplete parses a complete line (without CR LF).
func refComplete(line string) (refLine, bool) {
	if m := refRequest.FindStringSubmatch(line); m != nil && refTargetOK(m[1], m[2]) {
		return refLine{kind: Request, method: m[1], target: m[2], proto: m[3]}, true
	}
	if m := refResponse.FindStringSubmatch(line); m != nil {
		return refLine{kind: Response, proto: m[1], status: m[2], reason: m[3]}, true
	}
	return refLine{}, false
}

func refParse(payload []byte, cut bool) refLine {
	if len(payload) > MaxScan {
		payload, cut = payload[:MaxScan], true
	}
	s := string(payload)
	// One empty line may precede a request line (not a status line).
	skipped := false
	if strings.HasPrefix(s, "\r\n") {
		s, skipped = s[2:], true
	} else if strings.HasPrefix(s, "\n") {
		s, skipped = s[1:], true
	}
	line, _, complete := strings.Cut(s, "\n")
	line = strings.TrimSuffix(line, "\r")
	if complete {
		if r, _ := refComplete(line); r.kind == Request || !skipped {
			return r
		}
		return refLine{}
	}
	// Truncated: a prefix of some valid line, with enough evidence.
	if m := refEvidence.FindStringSubmatch(line); m != nil {
		for _, ext := range []string{"", " HTTP/1.1", ": HTTP/1.1", "HTTP/1.1", "TTP/1.1", "TP/1.1", "P/1.1", "/1.1", "1.1", ".1", "1"} {
			if r, ok := refComplete(line + ext); ok && r.kind == Request {
				r.target = m[2]
				if ext != "" {
					r.proto = ""
				}
				r.truncated, r.captureCut = true, cut
				return r
			}
		}
	}
	if len(line) >= 12 && !skipped {
		if r, ok := refComplete(line); ok && r.kind == Response {
			r.truncated, r.captureCut = true, cut
			return r
		}
	}
	return refLine{}
}

func fuzzSeeds() []string {
	seeds := []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\n",
		"GET /very/long/path/that/was/cut/by/the/capture/li",
		"HTTP/1.1 404",
		"\r\nPOST /x HTTP/1.0\n",
		"CONNECT [::1]:8443 HTTP/1.1\r\n",
		"OPTIONS * HTTP/1.1\r\n",
		"GET http://h/ HTTP/1.1\r\n",
		"GET h",
		"HTTP/1.1 200 \"quoted\\\" reason\r\n",
		tlsClientHello,
		h2Preface,
		"\x00\x00\x12\x04\x00\x00\x00\x00\x00", // HTTP/2 SETTINGS frame
		"SSH-2.0-OpenSSH_9.6\r\n",
		"*1\r\n$4\r\nPING\r\n", // RESP (Redis)
	}
	for _, tc := range parseCases {
		seeds = append(seeds, tc.in)
	}
	return seeds
}

// FuzzParse checks that Parse never panics nor reads out of bounds, that every
// offset lies within the payload, that AppendText output is always safe inside
// `http_info="..."`, and that Parse agrees with the reference parser.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, cut bool) {
		if len(data) > 1024 {
			// Far beyond any capture limit; such inputs only slow the engine
			// down (MaxScan clipping is covered by TestParseMaxScan).
			t.Skip()
		}
		payload := data[:len(data):len(data)] // no capacity to stray into
		l := Parse(payload, cut)
		checkLine(t, payload, l)

		got := refLine{kind: l.Kind, method: l.Method.String(), target: string(l.Target.Bytes(payload)),
			proto: l.Proto.String(), reason: string(l.Reason().Bytes(payload)),
			truncated: l.Truncated, captureCut: l.CaptureCut}
		if l.Kind == Response {
			got.status = itoa(uint64(l.Status))
		}
		if want := refParse(payload, cut); got != want {
			t.Fatalf("Parse(%q, %v):\n got  %+v\n want %+v", payload, cut, got, want)
		}

		// The display of a complete line does not depend on what follows it.
		if l.Kind != None && !l.Truncated {
			more := append(append([]byte(nil), payload...), "\x00trailing\"junk"...)
			if l2 := Parse(more, true); l2 != l {
				t.Fatalf("Parse(%q) = %+v, with more bytes after the line %+v", payload, l, l2)
			}
		}
	})
}

// FuzzPairer drives a small Pairer with random operations and compares it with
// a plain model (slices, linear search).
func FuzzPairer(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{0x00, 0x01, 0x10, 0x11, 0x02, 0x12, 0x23, 0x33, 0x03, 0x13, 0x40, 0x40, 0x50})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const maxConns, maxPending = 3, 4
		p := NewPairer(maxConns, maxPending)
		m := newModelPairer(maxConns, maxPending)
		var seq [8][2]uint32
		for i, op := range ops {
			conn := uint64(op & 7)
			ts := uint64(i) * 1000
			var l Line
			s := uint32(0)
			switch op >> 3 & 7 {
			case 0, 1, 2: // request, new data
				l = Line{Kind: Request, Method: Method(op>>3&7 + 1)}
				seq[conn][0] += 100
				s = seq[conn][0]
			case 3: // final response
				l = Line{Kind: Response, Status: 200 + uint16(op>>6)*100}
				seq[conn][1] += 100
				s = seq[conn][1]
			case 4: // interim response
				l = Line{Kind: Response, Status: 100 + uint16(op>>6&1)}
				seq[conn][1] += 100
				s = seq[conn][1]
			case 5: // retransmission of the last request or response
				if op&0x40 != 0 {
					l, s = Line{Kind: Request, Method: MethodGet}, seq[conn][0]
				} else {
					l, s = Line{Kind: Response, Status: 204}, seq[conn][1]
				}
			case 6:
				gs, gok := p.Forget(conn)
				ws, wok := m.forget(conn)
				if gs != ws || gok != wok {
					t.Fatalf("op %d Forget(%d) = %+v %v, model %+v %v", i, conn, gs, gok, ws, wok)
				}
				seq[conn] = [2]uint32{}
				continue
			case 7:
				if op&0x40 != 0 {
					ts = 0 // clock skew
				}
				l = Line{Kind: Response, Status: 500}
				seq[conn][1] += 100
				s = seq[conn][1]
			}
			gm, gok := p.Observe(conn, s, ts, l)
			wm, wok := m.observe(conn, s, ts, l)
			if gm != wm || gok != wok {
				t.Fatalf("op %d Observe(%d, %d, %d, %+v) = %+v %v, model %+v %v", i, conn, s, ts, l, gm, gok, wm, wok)
			}
			for c := uint64(0); c < 8; c++ {
				gs, gok := p.Summary(c)
				ws, wok := m.summary(c)
				if gs != ws || gok != wok {
					t.Fatalf("op %d Summary(%d) = %+v %v, model %+v %v", i, c, gs, gok, ws, wok)
				}
			}
			if gs, ws := p.Stats(), m.st; gs != ws {
				t.Fatalf("op %d Stats = %+v, model %+v", i, gs, ws)
			}
		}
	})
}

type modelConn struct {
	conn              uint64
	lastReq, lastResp *uint32
	q                 []pending
	sum               Summary
}

type modelPairer struct {
	maxConns, maxPending int
	conns                []*modelConn // most recently used first
	st                   Stats
}

func newModelPairer(maxConns, maxPending int) *modelPairer {
	return &modelPairer{maxConns: maxConns, maxPending: maxPending}
}

func (m *modelPairer) find(conn uint64) int {
	for i, c := range m.conns {
		if c.conn == conn {
			return i
		}
	}
	return -1
}

func (m *modelPairer) get(conn uint64) *modelConn {
	i := m.find(conn)
	var c *modelConn
	if i >= 0 {
		c = m.conns[i]
		m.conns = append(m.conns[:i], m.conns[i+1:]...)
	} else {
		if len(m.conns) == m.maxConns {
			old := m.conns[len(m.conns)-1]
			m.conns = m.conns[:len(m.conns)-1]
			m.st.Evicted++
			m.st.Lost += uint64(len(old.q))
		}
		c = &modelConn{conn: conn}
	}
	m.conns = append([]*modelConn{c}, m.conns...)
	m.st.Conns = len(m.conns)
	return c
}

func isDup(last **uint32, seq uint32) bool {
	if *last != nil && **last-seq < dupWindow { // at or shortly before the last one, mod 2^32
		return true
	}
	*last = &seq
	return false
}

func (m *modelPairer) observe(conn uint64, seq uint32, ts uint64, l Line) (Match, bool) {
	if l.Kind == None {
		return Match{}, false
	}
	c := m.get(conn)
	if l.Kind == Request {
		if isDup(&c.lastReq, seq) {
			m.st.Duplicates++
			return Match{}, false
		}
		m.st.Requests++
		c.sum.Requests++
		if len(c.q) == m.maxPending {
			m.st.Dropped++
			c.sum.Dropped++
			return Match{}, false
		}
		c.q = append(c.q, pending{ts: ts, method: l.Method})
		return Match{}, false
	}
	if isDup(&c.lastResp, seq) {
		m.st.Duplicates++
		return Match{}, false
	}
	m.st.Responses++
	c.sum.Responses++
	c.sum.Class[l.Status/100]++
	interim := l.Status/100 == 1 && l.Status != 101
	if interim {
		m.st.Interim++
		c.sum.Interim++
	}
	if len(c.q) == 0 {
		m.st.Unmatched++
		c.sum.Unmatched++
		return Match{}, false
	}
	r := c.q[0]
	mt := Match{Conn: conn, Method: r.method, Status: l.Status, ReqTS: r.ts, RespTS: ts, Interim: interim}
	if ts < r.ts {
		m.st.ClockSkew++
	} else {
		mt.Latency = ts - r.ts
	}
	if interim {
		return mt, true
	}
	c.q = c.q[1:]
	m.st.Matched++
	if c.sum.Matched == 0 {
		c.sum.MinLatency = mt.Latency
	}
	c.sum.MinLatency = min(c.sum.MinLatency, mt.Latency)
	c.sum.MaxLatency = max(c.sum.MaxLatency, mt.Latency)
	c.sum.SumLatency += mt.Latency
	c.sum.Matched++
	return mt, true
}

func (m *modelPairer) summary(conn uint64) (Summary, bool) {
	i := m.find(conn)
	if i < 0 {
		return Summary{}, false
	}
	s := m.conns[i].sum
	s.Pending = len(m.conns[i].q)
	return s, true
}

func (m *modelPairer) forget(conn uint64) (Summary, bool) {
	s, ok := m.summary(conn)
	if ok {
		i := m.find(conn)
		m.st.Unanswered += uint64(len(m.conns[i].q))
		m.conns = append(m.conns[:i], m.conns[i+1:]...)
		m.st.Conns = len(m.conns)
	}
	return s, ok
}
