package redis

import (
	"errors"

	"github.com/netwatcher/netwatcher/internal/l7cap/stream"
)

// RESP (RESP2 and RESP3) framing and parsing, without allocation. A value
// is a type byte and a line (ended by CRLF), then for a blob (bulk string
// $, blob error !, verbatim =) its bytes and CRLF, for an aggregate
// (array *, map %, set ~, attribute |, push >) its elements. Aggregates are
// walked flat: cont is the number of values still to come at any depth
// (an aggregate of k elements adds k, a map or attribute 2k, an attribute
// one more: the value it annotates). Streamed RESP3 values ($?, *?) are not
// followed (Bad: the stream is taken up again at a segment start).

// Limits.
const (
	maxLine     = 512     // a type line (a simple string, an error, an inline command) framed at most
	maxElements = 1 << 20 // values in one message (flat)
	// CmdMax, KeyMax: bytes kept of the command name and of its first
	// argument (the key of key commands).
	CmdMax = 32
	KeyMax = 64
	// ErrMax: bytes kept of an error's first word (ERR, WRONGTYPE, ...).
	ErrMax = 24
)

// Errors of ParseRequest.
var (
	ErrEmpty   = errors.New("redis: empty request")
	ErrRequest = errors.New("redis: not a request")
)

// line returns the offset after the CRLF (or LF) of the line starting at
// b[0], or -1 when b ends before it.
func line(b []byte) int {
	for i := 0; i < len(b) && i <= maxLine; i++ {
		if b[i] == '\n' {
			return i + 1
		}
	}
	if len(b) > maxLine {
		return -2 // too long: not RESP
	}
	return -1
}

// num reads the signed decimal of a type line (b: after its type byte,
// with its CRLF); ok false if it is not one (at most 2^40).
func num(b []byte) (int64, bool) {
	neg := false
	i := 0
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	if i >= len(b) || b[i] < '0' || b[i] > '9' {
		return 0, false
	}
	var n int64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if n = n*10 + int64(b[i]-'0'); n > 1<<40 {
			return 0, false
		}
	}
	if i+2 != len(b) || b[i] != '\r' || b[i+1] != '\n' {
		return 0, false // a number line is digits and CRLF, nothing else
	}
	if neg {
		n = -n
	}
	return n, true
}

// walk frames cont values starting at b[0]: see stream.Framer. It stops
// early (OK with next > 0) when a blob runs past b (n covers it) or when b
// ends between values (n at the last whole value; More when that is 0).
func walk(b []byte, cont uint32) (int, uint32, stream.Status) {
	off := 0
	for cont > 0 {
		if off >= len(b) {
			break
		}
		l := line(b[off:])
		if l == -2 {
			return 0, 0, stream.Bad
		}
		if l < 0 {
			break
		}
		t := b[off]
		switch t {
		case '+', '-', ':', '_', ',', '#', '(':
			off += l
			cont--
		case '$', '!', '=':
			n, ok := num(b[off+1 : off+l])
			if !ok {
				return 0, 0, stream.Bad // not a length (or a streamed string, $?)
			}
			if n < 0 { // RESP2 null bulk
				off += l
				cont--
				continue
			}
			end := off + l + int(n) + 2
			cont--
			if end > len(b) {
				return end, cont, stream.OK // the rest of the blob (and what follows) beyond b
			}
			off = end
		case '*', '%', '~', '|', '>':
			n, ok := num(b[off+1 : off+l])
			if !ok {
				return 0, 0, stream.Bad
			}
			off += l
			cont--
			if n > 0 {
				k := uint64(n)
				if t == '%' || t == '|' {
					k *= 2
				}
				if t == '|' {
					k++ // the value annotated
				}
				if k+uint64(cont) > maxElements {
					return 0, 0, stream.Bad
				}
				cont += uint32(k)
			}
		default:
			return 0, 0, stream.Bad
		}
	}
	if off == 0 && cont > 0 {
		return 0, 0, stream.More
	}
	return off, cont, stream.OK
}

// FrameReply is the stream.Framer of replies (server to client): one RESP
// value, whole or as far as b goes (its first line is enough to type it).
func FrameReply(b []byte, cont uint32) (int, uint32, stream.Status) {
	if cont > 0 {
		return walk(b, cont)
	}
	// an aggregate whose elements go on past b is handed over as far as
	// they are whole (its first line types it); a line is never cut
	return walk(b, 1)
}

// FrameRequest is the stream.Framer of requests (client to server): a
// RESP array of bulk strings, or an inline command (a line). A request
// that goes on past b is handed over once its command and first argument
// are whole (More before that, so that they are kept across segments).
func FrameRequest(b []byte, cont uint32) (int, uint32, stream.Status) {
	if cont > 0 {
		return walk(b, cont)
	}
	if len(b) == 0 {
		return 0, 0, stream.More
	}
	if b[0] != '*' {
		// inline: a line of printable text
		if c := b[0]; c < 'A' || c > 'z' || (c > 'Z' && c < 'a') {
			return 0, 0, stream.Bad
		}
		l := line(b)
		switch {
		case l == -2:
			return 0, 0, stream.Bad
		case l < 0:
			return 0, 0, stream.More
		}
		return l, 0, stream.OK
	}
	n, next, st := walk(b, 1)
	if st != stream.OK || next == 0 || n > len(b) {
		return n, next, st // whole, or a blob runs past b (n beyond it)
	}
	// unfinished: whole enough once the header, the command and the
	// first argument are in
	h := line(b)
	if c, ok := num(b[1:max(h, 1)]); h > 0 && ok && uint64(c)+1-uint64(next) >= 3 {
		return n, next, st
	}
	return 0, 0, stream.More
}

// Request is what is kept of a request: its command (upper case), its
// first argument (the key of key commands; bounded; AppendKey escapes it),
// and its argument count.
type Request struct {
	Cmd    [CmdMax]byte
	CmdLen uint8
	Key    [KeyMax]byte
	KeyLen uint8
	HasKey bool
	KeyCut bool   // the argument was longer than KeyMax (or cut by the capture)
	Args   uint32 // arguments after the command
	Inline bool
}

// Command is the command name.
func (r *Request) Command() []byte { return r.Cmd[:r.CmdLen] }

// KeyBytes is the first argument as it came (bounded).
func (r *Request) KeyBytes() []byte { return r.Key[:r.KeyLen] }

// AppendKey appends the first argument escaped for the sinks: bytes
// outside printable ASCII, '"' and '\' as \xNN (at most 4*KeyMax bytes).
func (r *Request) AppendKey(b []byte) []byte {
	for _, c := range r.KeyBytes() {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&15])
		} else {
			b = append(b, c)
		}
	}
	return b
}

// noKey: commands whose first argument is a value or a secret, never kept.
func noKey(cmd []byte) bool {
	switch string(cmd) {
	case "AUTH", "HELLO", "ECHO", "PING", "MIGRATE":
		return true
	}
	return false
}

const hexDigits = "0123456789abcdef"

func (r *Request) setKey(a []byte, cut bool) {
	r.HasKey, r.KeyCut = true, cut || len(a) > KeyMax
	r.KeyLen = uint8(copy(r.Key[:], a))
}

func (r *Request) setCmd(a []byte) {
	n := min(len(a), CmdMax)
	for i, c := range a[:n] {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		} else if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			c = '?'
		}
		r.Cmd[i] = c
	}
	r.CmdLen = uint8(n)
}

// ParseRequest reads a request's head (b may stop anywhere after the
// command): command, first argument, argument count.
func ParseRequest(b []byte, r *Request) error {
	*r = Request{CmdLen: 0}
	if len(b) == 0 {
		return ErrEmpty
	}
	if b[0] != '*' {
		return parseInline(b, r)
	}
	l := line(b)
	if l < 0 {
		return ErrRequest
	}
	n, ok := num(b[1:l])
	if !ok {
		return ErrRequest
	}
	if n <= 0 {
		return ErrEmpty
	}
	r.Args = uint32(min(n-1, 1<<30))
	off := l
	for i := 0; i < 2 && i < int(n); i++ {
		if off >= len(b) || b[off] != '$' {
			if i == 0 {
				return ErrRequest
			}
			return nil
		}
		l := line(b[off:])
		if l < 0 {
			if i == 0 {
				return ErrRequest
			}
			return nil
		}
		sz, ok := num(b[off+1 : off+l])
		if !ok || sz < 0 {
			return ErrRequest
		}
		a := b[off+l : min(off+l+int(sz), len(b))]
		cut := off+l+int(sz) > len(b)
		if i == 0 {
			if cut || sz == 0 {
				return ErrRequest
			}
			r.setCmd(a)
		} else if !noKey(r.Command()) {
			r.setKey(a, cut)
		}
		off += l + int(sz) + 2
	}
	return nil
}

func parseInline(b []byte, r *Request) error {
	r.Inline = true
	end := len(b)
	if l := line(b); l > 0 {
		end = l
	}
	b = b[:end]
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	i := 0
	for w := 0; i < len(b); w++ {
		for i < len(b) && b[i] == ' ' {
			i++
		}
		j := i
		for j < len(b) && b[j] != ' ' {
			j++
		}
		if i == j {
			break
		}
		switch w {
		case 0:
			r.setCmd(b[i:j])
		case 1:
			if !noKey(r.Command()) {
				r.setKey(b[i:j], false)
			}
			r.Args++
		default:
			r.Args++
		}
		i = j
	}
	if r.CmdLen == 0 {
		return ErrEmpty
	}
	return nil
}

// Reply is what is kept of a reply: its type (the RESP type byte; an
// attribute's annotated value's), null, and an error's first word.
type Reply struct {
	Type   byte
	Null   bool
	Err    [ErrMax]byte
	ErrLen uint8
}

// IsError: a simple or blob error.
func (r *Reply) IsError() bool { return r.Type == '-' || r.Type == '!' }

// ErrCode is an error's first word (ERR, WRONGTYPE, NOSCRIPT...).
func (r *Reply) ErrCode() []byte { return r.Err[:r.ErrLen] }

// Push: a RESP3 push message (out of band: no request's reply).
func (r *Reply) Push() bool { return r.Type == '>' }

// ParseReply reads a reply's head. false: not a RESP value.
func ParseReply(b []byte, r *Reply) bool {
	*r = Reply{}
	for hops := 0; hops < 4; hops++ {
		l := line(b)
		if len(b) == 0 || l == -2 {
			return false
		}
		if l < 0 {
			l = len(b) // cut: the type is enough
		}
		r.Type = b[0]
		switch r.Type {
		case '+', ':', ',', '#', '(':
			return true
		case '_':
			r.Null = true
			return true
		case '-':
			r.setErr(b[1:l])
			return true
		case '$', '*', '=', '%', '~', '>':
			if l >= 3 && b[1] == '-' && b[2] == '1' {
				r.Null = true // RESP2 null bulk / array
			}
			return true
		case '!':
			if l < len(b) {
				r.setErr(b[l:])
			}
			return true
		case '|': // an attribute: the annotated value follows its 2k elements
			k, ok := num(b[1:l])
			if !ok || k < 0 || k > maxElements/2 {
				return false
			}
			n, next, st := walk(b[l:], uint32(2*k))
			if st != stream.OK || next != 0 || l+n >= len(b) {
				return true // the annotated value beyond the capture: typed as an attribute
			}
			b = b[l+n:]
		default:
			return false
		}
	}
	return true
}

func (r *Reply) setErr(b []byte) {
	n := 0
	for _, c := range b {
		if c == ' ' || c == '\r' || c == '\n' || n == ErrMax {
			break
		}
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			c = '?'
		}
		r.Err[n] = c
		n++
	}
	r.ErrLen = uint8(n)
}
