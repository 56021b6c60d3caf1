package httpinfo

import (
	"strings"
	"testing"
	"unsafe"
)

// TLS 1.2/1.3 ClientHello record start (handshake, TLS 1.0 record version).
const tlsClientHello = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x8a\x1f\x7e\x00GET / HTTP/1.1\r\n"

// HTTP/2 connection preface (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

type parseCase struct {
	name    string
	in      string
	cut     bool
	kind    Kind
	method  Method
	proto   Proto
	status  uint16
	trunc   bool
	capCut  bool
	target  string
	reason  string
	display string
}

var parseCases = []parseCase{
	// Complete request lines.
	{name: "get", in: "GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n",
		kind: Request, method: MethodGet, proto: HTTP11, target: "/index.html", display: "GET /index.html HTTP/1.1"},
	{name: "get only line", in: "GET / HTTP/1.0\r\n",
		kind: Request, method: MethodGet, proto: HTTP10, target: "/", display: "GET / HTTP/1.0"},
	{name: "lf only", in: "POST /api/v1/items?x=1 HTTP/1.1\nHost: a\n\n{}",
		kind: Request, method: MethodPost, proto: HTTP11, target: "/api/v1/items?x=1", display: "POST /api/v1/items?x=1 HTTP/1.1"},
	{name: "head", in: "HEAD /favicon.ico HTTP/1.1\r\n\r\n",
		kind: Request, method: MethodHead, proto: HTTP11, target: "/favicon.ico", display: "HEAD /favicon.ico HTTP/1.1"},
	{name: "options asterisk", in: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		kind: Request, method: MethodOptions, proto: HTTP11, target: "*", display: "OPTIONS * HTTP/1.1"},
	{name: "options path", in: "OPTIONS /x HTTP/1.1\r\n",
		kind: Request, method: MethodOptions, proto: HTTP11, target: "/x", display: "OPTIONS /x HTTP/1.1"},
	{name: "put", in: "PUT /a HTTP/1.1\r\n", kind: Request, method: MethodPut, proto: HTTP11, target: "/a", display: "PUT /a HTTP/1.1"},
	{name: "delete", in: "DELETE /a/1 HTTP/1.1\r\n", kind: Request, method: MethodDelete, proto: HTTP11, target: "/a/1", display: "DELETE /a/1 HTTP/1.1"},
	{name: "trace", in: "TRACE / HTTP/1.1\r\n", kind: Request, method: MethodTrace, proto: HTTP11, target: "/", display: "TRACE / HTTP/1.1"},
	{name: "patch", in: "PATCH /p HTTP/1.1\r\n", kind: Request, method: MethodPatch, proto: HTTP11, target: "/p", display: "PATCH /p HTTP/1.1"},
	{name: "connect authority", in: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		kind: Request, method: MethodConnect, proto: HTTP11, target: "example.com:443", display: "CONNECT example.com:443 HTTP/1.1"},
	{name: "connect v6", in: "CONNECT [2001:db8::1]:443 HTTP/1.1\r\n",
		kind: Request, method: MethodConnect, proto: HTTP11, target: "[2001:db8::1]:443", display: "CONNECT [2001:db8::1]:443 HTTP/1.1"},
	{name: "connect go rpc", in: "CONNECT /_goRPC_ HTTP/1.0\n\n",
		kind: Request, method: MethodConnect, proto: HTTP10, target: "/_goRPC_", display: "CONNECT /_goRPC_ HTTP/1.0"},
	{name: "absolute form (proxy)", in: "GET http://example.com/x?y HTTP/1.1\r\n",
		kind: Request, method: MethodGet, proto: HTTP11, target: "http://example.com/x?y", display: "GET http://example.com/x?y HTTP/1.1"},
	{name: "quote and backslash escaped", in: "GET /a\"b\\c HTTP/1.1\r\n",
		kind: Request, method: MethodGet, proto: HTTP11, target: "/a\"b\\c", display: `GET /a\"b\\c HTTP/1.1`},
	{name: "leading empty line", in: "\r\nGET /after-body HTTP/1.1\r\n",
		kind: Request, method: MethodGet, proto: HTTP11, target: "/after-body", display: "GET /after-body HTTP/1.1"},
	{name: "leading lf", in: "\nGET / HTTP/1.1\n",
		kind: Request, method: MethodGet, proto: HTTP11, target: "/", display: "GET / HTTP/1.1"},
	{name: "complete line, capture cut later", in: "GET / HTTP/1.1\r\nUser-Agent: curl/8", cut: true,
		kind: Request, method: MethodGet, proto: HTTP11, target: "/", display: "GET / HTTP/1.1"},

	// Truncated request lines.
	{name: "truncated in target (capture limit)", in: "GET /very/long/pa", cut: true,
		kind: Request, method: MethodGet, trunc: true, capCut: true, target: "/very/long/pa", display: "GET /very/long/pa...(truncated)"},
	{name: "truncated in target (segment end)", in: "GET /very/long/pa",
		kind: Request, method: MethodGet, trunc: true, target: "/very/long/pa", display: "GET /very/long/pa...(truncated)"},
	{name: "truncated one target byte", in: "GET /", cut: true,
		kind: Request, method: MethodGet, trunc: true, capCut: true, target: "/", display: "GET /...(truncated)"},
	{name: "truncated after target", in: "GET /x ", cut: true,
		kind: Request, method: MethodGet, trunc: true, capCut: true, target: "/x", display: "GET /x ...(truncated)"},
	{name: "truncated in version", in: "GET /x HTTP/1.", cut: true,
		kind: Request, method: MethodGet, trunc: true, capCut: true, target: "/x", display: "GET /x HTTP/1....(truncated)"},
	{name: "truncated before lf", in: "GET /x HTTP/1.1",
		kind: Request, method: MethodGet, proto: HTTP11, trunc: true, target: "/x", display: "GET /x HTTP/1.1...(truncated)"},
	{name: "truncated between cr and lf", in: "GET /x HTTP/1.1\r",
		kind: Request, method: MethodGet, proto: HTTP11, trunc: true, target: "/x", display: "GET /x HTTP/1.1...(truncated)"},
	{name: "truncated absolute scheme", in: "GET htt", cut: true,
		kind: Request, method: MethodGet, trunc: true, capCut: true, target: "htt", display: "GET htt...(truncated)"},
	{name: "truncated connect", in: "CONNECT 10.0.0.1:4", cut: true,
		kind: Request, method: MethodConnect, trunc: true, capCut: true, target: "10.0.0.1:4", display: "CONNECT 10.0.0.1:4...(truncated)"},

	// Responses.
	{name: "200 ok", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
		kind: Response, proto: HTTP11, status: 200, reason: "OK", display: "HTTP/1.1 200 OK"},
	{name: "404 multiword", in: "HTTP/1.0 404 Not Found\r\n",
		kind: Response, proto: HTTP10, status: 404, reason: "Not Found", display: "HTTP/1.0 404 Not Found"},
	{name: "no reason no sp", in: "HTTP/1.1 204\r\n\r\n",
		kind: Response, proto: HTTP11, status: 204, display: "HTTP/1.1 204"},
	{name: "empty reason", in: "HTTP/1.1 500 \r\n",
		kind: Response, proto: HTTP11, status: 500, display: "HTTP/1.1 500 "},
	{name: "response lf only", in: "HTTP/1.1 301 Moved Permanently\nLocation: /\n\n",
		kind: Response, proto: HTTP11, status: 301, reason: "Moved Permanently", display: "HTTP/1.1 301 Moved Permanently"},
	{name: "100 continue", in: "HTTP/1.1 100 Continue\r\n\r\n",
		kind: Response, proto: HTTP11, status: 100, reason: "Continue", display: "HTTP/1.1 100 Continue"},
	{name: "reason with tab", in: "HTTP/1.1 200 O\tK\r\n",
		kind: Response, proto: HTTP11, status: 200, reason: "O\tK", display: `HTTP/1.1 200 O\tK`},
	{name: "reason with quote", in: "HTTP/1.1 418 I'm a \"teapot\"\r\n",
		kind: Response, proto: HTTP11, status: 418, reason: "I'm a \"teapot\"", display: `HTTP/1.1 418 I'm a \"teapot\"`},
	{name: "response truncated in reason", in: "HTTP/1.1 503 Service Unav", cut: true,
		kind: Response, proto: HTTP11, status: 503, trunc: true, capCut: true, reason: "Service Unav", display: "HTTP/1.1 503 Service Unav...(truncated)"},
	{name: "response truncated after code", in: "HTTP/1.1 200",
		kind: Response, proto: HTTP11, status: 200, trunc: true, display: "HTTP/1.1 200...(truncated)"},
	{name: "response truncated after code cr", in: "HTTP/1.1 200\r", cut: true,
		kind: Response, proto: HTTP11, status: 200, trunc: true, capCut: true, display: "HTTP/1.1 200...(truncated)"},

	// None.
	{name: "empty", in: ""},
	{name: "binary", in: "\x00\x01\x02\x03\xff\xfe\x80GET / HTTP/1.1\r\n"},
	{name: "tls client hello", in: tlsClientHello, cut: true},
	{name: "h2 preface", in: h2Preface},
	{name: "h2 preface cut", in: "PRI * HTTP/2.0", cut: true},
	{name: "lowercase method", in: "get / HTTP/1.1\r\n"},
	{name: "mixed case method", in: "Get / HTTP/1.1\r\n"},
	{name: "unknown method", in: "PROPFIND / HTTP/1.1\r\n"},
	{name: "method prefix of token", in: "GETX / HTTP/1.1\r\n"},
	{name: "method only", in: "GET", cut: true},
	{name: "method and sp only", in: "GET ", cut: true},
	{name: "double sp", in: "GET  / HTTP/1.1\r\n"},
	{name: "http/0.9", in: "GET /\r\n"},
	{name: "http/2.0 request", in: "GET / HTTP/2.0\r\n"},
	{name: "http/1.2 request", in: "GET / HTTP/1.2\r\n"},
	{name: "lowercase version", in: "GET / http/1.1\r\n"},
	{name: "trailing space", in: "GET / HTTP/1.1 \r\n"},
	{name: "extra field", in: "GET /a b HTTP/1.1\r\n"},
	{name: "bad truncated version", in: "GET /x HTTQ", cut: true},
	{name: "control in target", in: "GET /a\x01b HTTP/1.1\r\n"},
	{name: "utf8 in target", in: "GET /caf\xc3\xa9 HTTP/1.1\r\n"},
	{name: "bare cr", in: "GET / HTTP/1.1\rHost: x\r\n"},
	{name: "tab separator", in: "GET\t/ HTTP/1.1\r\n"},
	{name: "target not a form", in: "GET index.html HTTP/1.1\r\n"},
	{name: "target digit", in: "GET 1/x HTTP/1.1\r\n"},
	{name: "asterisk not options", in: "GET * HTTP/1.1\r\n"},
	{name: "asterisk with more", in: "OPTIONS *x HTTP/1.1\r\n"},
	{name: "two empty lines first", in: "\r\n\r\nGET / HTTP/1.1\r\n"},
	{name: "header segment", in: "Host: example.com\r\nAccept: */*\r\n\r\n"},
	{name: "body segment", in: "{\"a\": \"GET / HTTP/1.1\"}"},
	{name: "body continuation with status text", in: "xHTTP/1.1 200 OK\r\n"},
	{name: "response no version digit", in: "HTTP/1.x 200 OK\r\n"},
	{name: "response http/2", in: "HTTP/2 200\r\n"},
	{name: "response http/2.0", in: "HTTP/2.0 200 OK\r\n"},
	{name: "response 2 digits", in: "HTTP/1.1 20 OK\r\n"},
	{name: "response 4 digits", in: "HTTP/1.1 2000 OK\r\n"},
	{name: "response code 099", in: "HTTP/1.1 099 X\r\n"},
	{name: "response code 600", in: "HTTP/1.1 600 X\r\n"},
	{name: "response letters", in: "HTTP/1.1 2x0 OK\r\n"},
	{name: "response no sp", in: "HTTP/1.1200 OK\r\n"},
	{name: "response truncated too early", in: "HTTP/1.1 20", cut: true},
	{name: "response truncated in version", in: "HTTP/1.", cut: true},
	{name: "response control in reason", in: "HTTP/1.1 200 O\x00K\r\n"},
	{name: "response obs-text in reason", in: "HTTP/1.1 200 \xe4\xbd\xa0\xe5\xa5\xbd\r\n"},
	{name: "response bare cr", in: "HTTP/1.1 200 OK\rX\r\n"},
	{name: "response cr after code", in: "HTTP/1.1 200\rOK\r\n"},
	{name: "lone lf", in: "\n"},
	{name: "crlf only", in: "\r\n"},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			payload := []byte(tc.in)
			l := Parse(payload[:len(payload):len(payload)], tc.cut)
			if l.Kind != tc.kind || l.Method != tc.method || l.Proto != tc.proto || l.Status != tc.status ||
				l.Truncated != tc.trunc || l.CaptureCut != tc.capCut {
				t.Fatalf("Parse(%q, %v) = %+v\nwant kind=%v method=%v proto=%v status=%d truncated=%v captureCut=%v",
					tc.in, tc.cut, l, tc.kind, tc.method, tc.proto, tc.status, tc.trunc, tc.capCut)
			}
			if got := string(l.Target.Bytes(payload)); got != tc.target {
				t.Errorf("target = %q, want %q", got, tc.target)
			}
			if got := string(l.Reason().Bytes(payload)); got != tc.reason {
				t.Errorf("reason = %q, want %q", got, tc.reason)
			}
			want := tc.display
			if tc.kind == None {
				want = "-"
				if l != (Line{}) {
					t.Errorf("None line is not the zero Line: %+v", l)
				}
			}
			if got := string(l.AppendText(nil, payload)); got != want {
				t.Errorf("AppendText = %q, want %q", got, want)
			}
			checkLine(t, payload, l)
		})
	}
}

// TestParseCapturePrefixes cuts well-formed segments at every length, as a
// capture limit would, and checks that a line is never reported complete
// unless its LF was captured, and that the kind never changes.
func TestParseCapturePrefixes(t *testing.T) {
	for _, tc := range parseCases {
		if tc.kind == None || tc.trunc {
			continue
		}
		full := []byte(tc.in)
		end := Parse(full, false).Raw.End()
		lf := end + strings.IndexByte(tc.in[end:], '\n') // index of the start line's LF
		for n := 0; n < len(full); n++ {
			p := full[:n:n]
			l := Parse(p, true)
			checkLine(t, p, l)
			if n <= lf {
				if l.Kind != None && (l.Kind != tc.kind || !l.Truncated || !l.CaptureCut) {
					t.Errorf("%s: cut at %d: %+v, want None or truncated %v", tc.name, n, l, tc.kind)
				}
				if l.Kind != None && !strings.HasSuffix(string(l.AppendText(nil, p)), TruncatedMarker) {
					t.Errorf("%s: cut at %d: display %q lacks the marker", tc.name, n, l.AppendText(nil, p))
				}
			} else if l != Parse(full, false) {
				t.Errorf("%s: cut at %d after the LF: %+v, want %+v", tc.name, n, l, Parse(full, false))
			}
		}
	}
}

func TestParseMaxScan(t *testing.T) {
	long := append([]byte("GET /"), make([]byte, MaxScan+10)...)
	for i := 5; i < len(long); i++ {
		long[i] = 'a'
	}
	long = append(long, " HTTP/1.1\r\n"...)
	l := Parse(long, false)
	if l.Kind != Request || !l.Truncated || !l.CaptureCut || l.Raw.End() != MaxScan {
		t.Fatalf("Parse(long line) = %+v, want truncated request ending at MaxScan", l)
	}
	checkLine(t, long, l)
}

func TestAppendTextNoAlloc(t *testing.T) {
	payload := []byte("GET /a\"b\\c HTTP/1.1\r\n")
	l := Parse(payload, false)
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		buf = l.AppendText(buf[:0], payload)
	})
	if allocs != 0 {
		t.Errorf("AppendText allocates %v times per call", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		l = Parse(payload, false)
	})
	if allocs != 0 {
		t.Errorf("Parse allocates %v times per call", allocs)
	}
}

func TestAppendTextAppends(t *testing.T) {
	payload := []byte("HTTP/1.1 200 OK\r\n")
	l := Parse(payload, false)
	got := string(l.AppendText([]byte(`http_info="`), payload))
	if got != `http_info="HTTP/1.1 200 OK` {
		t.Errorf("got %q", got)
	}
}

func TestAppendTextForeignPayload(t *testing.T) {
	// Misuse: a Line shown with other bytes than it was parsed from. Must not
	// panic, must stay escaped, must not look complete.
	l := Parse([]byte("GET /abcdef HTTP/1.1\r\n"), false)
	for _, p := range []string{"", "GET", "G\x00\n\"\\\xff T /abcdef HTTP/1.1 and more"} {
		out := l.AppendText(nil, []byte(p))
		checkDisplay(t, out)
		if len(p) < l.Raw.End() && !strings.HasSuffix(string(out), TruncatedMarker) {
			t.Errorf("AppendText over %q = %q: clipped line without marker", p, out)
		}
	}
}

func TestLineSize(t *testing.T) {
	// 16 bytes is one SSE move; 20 bytes made Parse 3x slower (overlapping
	// copies of the result defeat store-to-load forwarding).
	if n := unsafe.Sizeof(Line{}); n != 16 {
		t.Errorf("sizeof(Line) = %d, want 16", n)
	}
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{None.String(), "none"}, {Request.String(), "request"}, {Response.String(), "response"}, {Kind(7).String(), "Kind(7)"},
		{MethodGet.String(), "GET"}, {MethodPatch.String(), "PATCH"}, {MethodUnknown.String(), ""}, {Method(200).String(), "Method(200)"},
		{HTTP10.String(), "HTTP/1.0"}, {HTTP11.String(), "HTTP/1.1"}, {ProtoUnknown.String(), ""}, {Proto(3).String(), "Proto(3)"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// checkLine checks the invariants of any Parse result.
func checkLine(t testing.TB, payload []byte, l Line) {
	t.Helper()
	for _, s := range []Span{l.Raw, l.Target, l.Reason()} {
		if s.End() > len(payload) {
			t.Fatalf("span %+v outside payload of %d bytes (%+v)", s, len(payload), l)
		}
	}
	switch l.Kind {
	case None:
		if l != (Line{}) {
			t.Fatalf("None with fields set: %+v", l)
		}
	case Request:
		if l.Method == MethodUnknown || l.Status != 0 || l.Reason() != (Span{}) || l.Target.Len == 0 ||
			l.Target.Off < l.Raw.Off || l.Target.End() > l.Raw.End() {
			t.Fatalf("bad request line %+v", l)
		}
		if !l.Truncated && l.Proto == ProtoUnknown {
			t.Fatalf("complete request without version: %+v", l)
		}
	case Response:
		if l.Method != MethodUnknown || l.Status < 100 || l.Status > 599 || l.Proto == ProtoUnknown || l.Target != (Span{}) ||
			l.Raw.Off != 0 || l.Reason().Off < 12 || l.Reason().End() != max(12, l.Raw.End()) {
			t.Fatalf("bad status line %+v", l)
		}
	default:
		t.Fatalf("bad kind %+v", l)
	}
	if l.CaptureCut && !l.Truncated {
		t.Fatalf("CaptureCut without Truncated: %+v", l)
	}
	raw := l.Raw.Bytes(payload)
	for _, c := range raw {
		if c == '\r' || c == '\n' || (c < ' ' && c != '\t') || c >= 0x7f {
			t.Fatalf("raw line %q holds byte %#x", raw, c)
		}
	}
	if !l.Truncated && l.Kind != None {
		rest := payload[l.Raw.End():]
		if !strings.HasPrefix(string(rest), "\n") && !strings.HasPrefix(string(rest), "\r\n") {
			t.Fatalf("complete line %q not followed by CRLF/LF: %q", raw, rest)
		}
	}
	out := l.AppendText(nil, payload)
	checkDisplay(t, out)
	if l.Truncated != strings.HasSuffix(string(out), TruncatedMarker) && l.Kind == Request {
		// (a response's reason phrase could itself end with the marker text)
		t.Fatalf("display %q vs Truncated=%v", out, l.Truncated)
	}
	if l.Truncated && !strings.HasSuffix(string(out), TruncatedMarker) {
		t.Fatalf("truncated line displayed without marker: %q", out)
	}
}

// checkDisplay checks that out is safe inside `key="..."`: printable ASCII,
// no raw newline, every `"` and `\` escaped, escapes well formed.
func checkDisplay(t testing.TB, out []byte) {
	t.Helper()
	for i := 0; i < len(out); i++ {
		c := out[i]
		switch {
		case c < ' ' || c >= 0x7f:
			t.Fatalf("display %q holds raw byte %#x", out, c)
		case c == '"':
			t.Fatalf("display %q holds an unescaped quote at %d", out, i)
		case c == '\\':
			if i+1 >= len(out) {
				t.Fatalf("display %q ends in a lone backslash", out)
			}
			i++
			switch out[i] {
			case '\\', '"', 't':
			case 'u':
				if i+4 >= len(out) || string(out[i+1:i+3]) != "00" || !isHex(out[i+3]) || !isHex(out[i+4]) {
					t.Fatalf("display %q: bad \\u escape at %d", out, i)
				}
				i += 4
			default:
				t.Fatalf("display %q: bad escape at %d", out, i)
			}
		}
	}
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }
