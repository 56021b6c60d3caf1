// Package httpinfo recognizes the HTTP/1.x request line or status line that a
// TCP segment starts with (netwatcher `-i, --http`, SPEC §2 "Packets") and pairs
// requests with their responses.
//
// The input is the first bytes of one TCP segment's payload as captured in the
// kernel, up to a capture limit. Only the first line is ever looked at: header
// lines and bodies are never reported. Parse does not allocate and never reads
// outside the slice it is given. A Line is a 16-byte value without pointers that
// refers to the payload by offsets: keep the payload (or display the line with
// AppendText) while both are at hand.
//
// Recognized, strictly (anything else is None):
//
//	request-line = method SP request-target SP HTTP-version (CRLF | LF)
//	status-line  = HTTP-version SP 3DIGIT [ SP reason-phrase ] (CRLF | LF)
//	method       = GET | HEAD | POST | PUT | DELETE | CONNECT | OPTIONS | TRACE | PATCH
//	HTTP-version = "HTTP/1.0" | "HTTP/1.1"
//
// Methods are case-sensitive (RFC 9110 §9.1), so "get / HTTP/1.1" is None; so are
// "PRI * HTTP/2.0" (the HTTP/2 connection preface), TLS records and any line that
// contains a control byte, a byte >= 0x80 or a bare CR. The request-target must
// be printable ASCII without spaces and have one of the RFC 9112 §3.2 forms:
// origin-form ("/..."), absolute-form ("scheme:..."), authority-form (CONNECT
// only) or asterisk-form ("*", OPTIONS only). The status code must be 100..599;
// the reason phrase may be missing ("HTTP/1.1 200") or empty. One empty line
// before a request line is skipped (RFC 9112 §2.2).
//
// A line whose end (LF) is not within the captured bytes is reported with
// Truncated set, provided the captured part is a prefix of a valid line that
// carries enough evidence: a request needs its method, the SP and at least one
// byte of the target ("GET /very/long/pa"); a status line needs version, SP and
// the three status digits ("HTTP/1.1 200"). Truncated lines are displayed with
// TruncatedMarker appended, never as if they were complete.
package httpinfo

import "bytes"

// MaxScan is the most payload bytes Parse examines. A line that has no LF within
// the first MaxScan bytes is reported as Truncated (and CaptureCut), as if the
// capture limit were MaxScan. It keeps every offset in a uint16.
const MaxScan = 1<<16 - 1

// TruncatedMarker is appended by AppendText to a line whose end was not
// captured. It is meant to be grepped for (e.g. `grep -F '...(truncated)"'`).
// Line.Truncated is the authoritative flag: a server could in theory send a
// reason phrase that itself ends with these characters.
const TruncatedMarker = "...(truncated)"

// Kind says what a segment starts with.
type Kind uint8

// Kinds of Line.
const (
	None     Kind = iota // no HTTP/1.x start line: headers, body, binary, TLS, HTTP/2, ...
	Request              // a request line
	Response             // a status line
)

func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case Request:
		return "request"
	case Response:
		return "response"
	}
	return "Kind(" + itoa(uint64(k)) + ")"
}

// Method is one of the RFC 9110 request methods; MethodUnknown for responses
// and None.
type Method uint8

// Request methods (RFC 9110 §9 plus PATCH, RFC 5789).
const (
	MethodUnknown Method = iota
	MethodGet
	MethodHead
	MethodPost
	MethodPut
	MethodDelete
	MethodConnect
	MethodOptions
	MethodTrace
	MethodPatch
)

var methodNames = [...]string{
	MethodUnknown: "",
	MethodGet:     "GET",
	MethodHead:    "HEAD",
	MethodPost:    "POST",
	MethodPut:     "PUT",
	MethodDelete:  "DELETE",
	MethodConnect: "CONNECT",
	MethodOptions: "OPTIONS",
	MethodTrace:   "TRACE",
	MethodPatch:   "PATCH",
}

// String returns the method token ("GET"), or "" for MethodUnknown.
func (m Method) String() string {
	if int(m) < len(methodNames) {
		return methodNames[m]
	}
	return "Method(" + itoa(uint64(m)) + ")"
}

// Proto is the HTTP version of a line.
type Proto uint8

// Protocol versions. ProtoUnknown is used for None and for a truncated request
// line that was cut before its version was complete.
const (
	ProtoUnknown Proto = iota
	HTTP10
	HTTP11
)

func (p Proto) String() string {
	switch p {
	case ProtoUnknown:
		return ""
	case HTTP10:
		return "HTTP/1.0"
	case HTTP11:
		return "HTTP/1.1"
	}
	return "Proto(" + itoa(uint64(p)) + ")"
}

// Span is a byte range [Off, Off+Len) of the payload given to Parse.
type Span struct {
	Off, Len uint16
}

// End returns Off+Len.
func (s Span) End() int { return int(s.Off) + int(s.Len) }

// Bytes returns the bytes of s in payload (which must be the payload given to
// Parse). It never panics: a span that does not fit payload is clipped.
func (s Span) Bytes(payload []byte) []byte {
	off, end := int(s.Off), s.End()
	if off > len(payload) {
		return nil
	}
	if end > len(payload) {
		end = len(payload)
	}
	return payload[off:end:end]
}

// Line is the result of Parse. The zero value is a None line. It holds no
// pointers: text is referenced by offsets into the parsed payload. It is kept
// at 16 bytes (TestLineSize): a 20-byte result made Parse three times slower.
type Line struct {
	Kind      Kind
	Method    Method // requests only
	Proto     Proto  // ProtoUnknown if a truncated request line stops before the version is complete
	Truncated bool   // the line's LF is not within the captured bytes: the line may continue
	// CaptureCut: Truncated, and the capture limit (Parse's cut argument, or
	// MaxScan) rather than the segment's end stopped the line. A high rate of
	// these says the capture limit is too small for the traffic.
	CaptureCut bool
	Status     uint16 // responses only: 100..599
	Raw        Span   // the line without CR LF / LF (Raw.Off is 0, or 1-2 after a skipped empty line)
	Target     Span   // requests: the request-target (possibly cut)
}

// Reason returns the span of a response's reason phrase (possibly empty or
// cut); it is empty, at Off 12, if the status line has no SP after the code.
// For other kinds it is the zero Span.
func (l Line) Reason() Span {
	if l.Kind != Response {
		return Span{}
	}
	if l.Raw.Len <= 12 {
		return Span{Off: 12}
	}
	return Span{13, l.Raw.Len - 13}
}

// StatusClass returns Status/100 (1..5) for responses, 0 otherwise.
func (l Line) StatusClass() int { return int(l.Status) / 100 }

// Parse recognizes the HTTP/1.x request line or status line that payload starts
// with. payload is the captured start of one TCP segment's payload; cut reports
// that the capture stopped before the segment's end (capture limit reached).
//
// Parse never allocates and never reads beyond len(payload). Every Span of the
// result lies within payload.
func Parse(payload []byte, cut bool) Line {
	p := payload
	if len(p) > MaxScan {
		p = p[:MaxScan]
		cut = true
	}
	if len(p) >= 5 && string(p[:5]) == "HTTP/" {
		return parseStatus(p, cut)
	}
	return parseRequest(p, cut)
}

// lineEnd returns the end of the line that starts at off (exclusive, without
// CR LF / LF) and whether the line's LF is missing from p. A trailing CR
// without its LF is treated as the start of the missing CRLF.
func lineEnd(p []byte, off int) (end int, truncated bool) {
	i := bytes.IndexByte(p[off:], '\n')
	if i < 0 {
		end, truncated = len(p), true
	} else {
		end = off + i
	}
	if end > off && p[end-1] == '\r' {
		end--
	}
	return end, truncated
}

// matchMethod returns the method b starts with and the length of the method
// plus its SP, or MethodUnknown if b does not start with a method and SP.
func matchMethod(b []byte) (Method, int) {
	if len(b) < 4 {
		return MethodUnknown, 0
	}
	var m Method
	switch b[0] {
	case 'G':
		m = MethodGet
	case 'H':
		m = MethodHead
	case 'P':
		switch b[1] {
		case 'O':
			m = MethodPost
		case 'U':
			m = MethodPut
		case 'A':
			m = MethodPatch
		default:
			return MethodUnknown, 0
		}
	case 'D':
		m = MethodDelete
	case 'C':
		m = MethodConnect
	case 'O':
		m = MethodOptions
	case 'T':
		m = MethodTrace
	default:
		return MethodUnknown, 0
	}
	name := methodNames[m]
	n := len(name)
	if len(b) <= n || b[n] != ' ' || string(b[:n]) != name {
		return MethodUnknown, 0
	}
	return m, n + 1
}

func parseRequest(p []byte, cut bool) Line {
	off := 0
	if len(p) >= 2 && p[0] == '\r' && p[1] == '\n' {
		off = 2
	} else if len(p) >= 1 && p[0] == '\n' {
		off = 1
	}
	m, n := matchMethod(p[off:])
	if m == MethodUnknown {
		return Line{}
	}
	end, trunc := lineEnd(p, off)
	line := p[off:end]
	if len(line) <= n { // not even one byte of target (or "GET  ...")
		return Line{}
	}
	rest := line[n:]
	t := 0
	for t < len(rest) && charClass[rest[t]]&vchar != 0 {
		t++
	}
	if t == 0 || t < len(rest) && rest[t] != ' ' || !targetForm(m, rest[:t], trunc && t == len(rest)) {
		return Line{}
	}
	proto := ProtoUnknown
	if t == len(rest) {
		if !trunc { // "GET /" + LF: HTTP/0.9 or garbage, not HTTP/1.x
			return Line{}
		}
	} else {
		v := rest[t+1:]
		const ver = "HTTP/1."
		switch {
		case len(v) > len(ver)+1:
			return Line{}
		case len(v) == len(ver)+1:
			if string(v[:len(ver)]) != ver {
				return Line{}
			}
			switch v[len(ver)] {
			case '0':
				proto = HTTP10
			case '1':
				proto = HTTP11
			default:
				return Line{}
			}
		case !trunc || string(v) != ver[:len(v)]:
			return Line{}
		}
	}
	return Line{
		Kind:       Request,
		Method:     m,
		Proto:      proto,
		Truncated:  trunc,
		CaptureCut: trunc && cut,
		Raw:        Span{uint16(off), uint16(len(line))},
		Target:     Span{uint16(off + n), uint16(t)},
	}
}

// targetForm reports whether target (printable, no SP) has a request-target form
// allowed for m (RFC 9112 §3.2). partial says target may continue beyond the
// captured bytes.
func targetForm(m Method, target []byte, partial bool) bool {
	c := target[0]
	switch {
	case c == '/': // origin-form (also accepted for CONNECT: net/rpc sends "CONNECT /_goRPC_")
		return true
	case c == '*': // asterisk-form
		return m == MethodOptions && len(target) == 1
	case m == MethodConnect: // authority-form: host:port, [v6]:port
		return isAlnum(c) || c == '['
	}
	// absolute-form: scheme ":" ..., scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
	if !isAlpha(c) {
		return false
	}
	for _, c := range target[1:] {
		if c == ':' {
			return true
		}
		if !isAlnum(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return partial
}

// Character classes (RFC 9110 §5.6.2, RFC 9112 §4): a table lookup per byte.
const (
	vchar      = 1 << iota // visible ASCII: a request-target byte
	reasonChar             // HTAB / SP / VCHAR (obs-text is not accepted)
)

var charClass = func() (t [256]uint8) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = vchar | reasonChar
	}
	t['\t'] = reasonChar
	t[' '] = reasonChar
	return t
}()

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isAlnum(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' }

func parseStatus(p []byte, cut bool) Line {
	// Minimal evidence, complete or not: "HTTP/1.x NNN".
	if len(p) < 12 || string(p[:7]) != "HTTP/1." || p[8] != ' ' {
		return Line{}
	}
	proto := ProtoUnknown
	switch p[7] {
	case '0':
		proto = HTTP10
	case '1':
		proto = HTTP11
	default:
		return Line{}
	}
	d0, d1, d2 := p[9]-'0', p[10]-'0', p[11]-'0'
	if d0 < 1 || d0 > 5 || d1 > 9 || d2 > 9 {
		return Line{}
	}
	end, trunc := lineEnd(p, 0) // >= 12: p[:12] holds no LF and p[11] is no CR
	if end > 12 {
		if p[12] != ' ' {
			return Line{}
		}
		for _, c := range p[13:end] {
			if charClass[c]&reasonChar == 0 {
				return Line{}
			}
		}
	}
	return Line{
		Kind:       Response,
		Proto:      proto,
		Truncated:  trunc,
		CaptureCut: trunc && cut,
		Status:     uint16(d0)*100 + uint16(d1)*10 + uint16(d2),
		Raw:        Span{0, uint16(end)},
	}
}

// AppendText appends the display form of l to dst and returns the extended
// buffer: "-" for None, otherwise the line without CR LF, followed by
// TruncatedMarker if l.Truncated. payload must be the bytes l was parsed from.
//
// The output is safe inside a double-quoted log value (`http_info="..."`,
// SPEC §3) and inside a JSON string: `"` and `\` are escaped as `\"` and `\\`,
// a tab as `\t`, and any other byte outside printable ASCII (which Parse never
// accepts, but payload might have changed) as `\u00XX`. It never contains a raw
// CR or LF. It does not allocate when dst has enough capacity.
func (l Line) AppendText(dst, payload []byte) []byte {
	if l.Kind == None {
		return append(dst, '-')
	}
	b := l.Raw.Bytes(payload)
	dst = appendEscaped(dst, b)
	if l.Truncated || len(b) < int(l.Raw.Len) {
		dst = append(dst, TruncatedMarker...)
	}
	return dst
}

const hexDigits = "0123456789abcdef"

func appendEscaped(dst, b []byte) []byte {
	start := 0
	for i, c := range b {
		if c >= ' ' && c < 0x7f && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, b[start:i]...)
		start = i + 1
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	return append(dst, b[start:]...)
}

func itoa(v uint64) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(buf[i:])
}
