package redis

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/l7cap/stream"
)

// A reference reader of one RESP value, written from the grammar in
// resp.go's documentation, slow and plain: a line is everything up to
// the first LF (at most maxLine bytes before it), a length or count line
// is -?digits CRLF (|n| <= 2^40), a blob is followed by 2 bytes not
// looked at, an aggregate announces its elements (a map or attribute 2k,
// an attribute one more), never more than maxElements announced and not
// yet read.
type refStatus int

const (
	refComplete refStatus = iota
	refShort
	refBad
)

var refNumRe = regexp.MustCompile(`^-?[0-9]+\r\n$`)

func refNum(s string) (int64, bool) {
	if !refNumRe.MatchString(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(s, "\r\n"), 10, 64)
	if err != nil || n > 1<<40 || n < -(1<<40) {
		return 0, false
	}
	return n, true
}

func refValue(s string, pending *int64) (int, refStatus) {
	i := strings.IndexByte(s, '\n')
	if i < 0 || i > maxLine {
		if len(s) > maxLine {
			return 0, refBad
		}
		return 0, refShort
	}
	*pending--
	head := s[:i+1]
	switch head[0] {
	case '+', '-', ':', '_', ',', '#', '(':
		return i + 1, refComplete
	case '$', '!', '=':
		n, ok := refNum(head[1:])
		if !ok {
			return 0, refBad
		}
		if n < 0 {
			return i + 1, refComplete
		}
		end := i + 1 + int(n) + 2
		if end > len(s) {
			return 0, refShort
		}
		return end, refComplete
	case '*', '%', '~', '|', '>':
		n, ok := refNum(head[1:])
		if !ok {
			return 0, refBad
		}
		k := max(n, 0)
		if head[0] == '%' || head[0] == '|' {
			k *= 2
		}
		if head[0] == '|' && n > 0 {
			k++
		}
		if *pending+k > maxElements {
			return 0, refBad
		}
		*pending += k
		off := i + 1
		for j := int64(0); j < k; j++ {
			m, st := refValue(s[off:], pending)
			if st != refComplete {
				return 0, st
			}
			off += m
		}
		return off, refComplete
	}
	return 0, refBad
}

// refRequest: the first two elements of a complete array of bulk
// strings, as ParseRequest keeps them.
func refRequest(s string) (cmd, key string, hasKey bool, ok bool) {
	var parts []string
	off := strings.IndexByte(s, '\n') + 1
	for len(parts) < 2 && off < len(s) && s[off] == '$' {
		i := strings.IndexByte(s[off:], '\n')
		n, _ := refNum(s[off+1 : off+i+1])
		if n < 0 {
			return "", "", false, false
		}
		parts = append(parts, s[off+i+1:off+i+1+int(n)])
		off += i + 1 + int(n) + 2
	}
	if len(parts) == 0 || parts[0] == "" {
		return "", "", false, false
	}
	var cb []byte // bytes, not runes: ASCII upper case, '?' for the rest
	for _, b := range []byte(parts[0][:min(len(parts[0]), CmdMax)]) {
		switch {
		case b >= 'a' && b <= 'z':
			b -= 32
		case b < 0x21 || b > 0x7e || b == '"' || b == '\\':
			b = '?'
		}
		cb = append(cb, b)
	}
	c := string(cb)
	if len(parts) < 2 || c == "AUTH" || c == "HELLO" || c == "ECHO" || c == "PING" || c == "MIGRATE" {
		return c, "", false, true
	}
	var k strings.Builder
	for _, b := range []byte(parts[1][:min(len(parts[1]), KeyMax)]) {
		if b < 0x20 || b > 0x7e || b == '"' || b == '\\' {
			k.WriteString(`\x` + strconv.FormatUint(uint64(b)>>4, 16) + strconv.FormatUint(uint64(b)&15, 16))
		} else {
			k.WriteByte(b)
		}
	}
	return c, k.String(), true, true
}

// FuzzFrame: the framers agree with the reference on any input (a whole
// value's length; Bad exactly where the reference finds junk; otherwise
// waiting for more), the parsers never panic, and a whole request of bulk
// strings is read as the reference reads it. Seeds in testdata/fuzz/FuzzFrame.
func FuzzFrame(f *testing.F) {
	f.Add(cmd("SET", "k", "v"))
	f.Add([]byte("*2\r\n$3\r\nget\r\n$3\r\na\x00b\r\n"))
	f.Add([]byte("|1\r\n+ttl\r\n:3\r\n%1\r\n+a\r\n*2\r\n:1\r\n_\r\n"))
	f.Add([]byte("-WRONGTYPE Operation against a key\r\n"))
	f.Add([]byte("$5\r\nhel"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var pending int64 = 1
		n, st := refValue(string(b), &pending)
		for _, fx := range []struct {
			fr  stream.Framer
			req bool
		}{{FrameReply, false}, {FrameRequest, true}} {
			if fx.req && (len(b) == 0 || b[0] != '*') {
				continue // an inline command is a line (TestFrameRequest)
			}
			gn, gnext, gst := fx.fr(b, 0)
			switch st {
			case refComplete:
				if gn != n || gnext != 0 || gst != stream.OK {
					t.Fatalf("%q (request %v): framed %d %d %d, reference %d", b, fx.req, gn, gnext, gst, n)
				}
			case refBad:
				if gst != stream.Bad {
					t.Fatalf("%q (request %v): framed %d %d %d, reference bad", b, fx.req, gn, gnext, gst)
				}
			case refShort:
				if gst == stream.Bad || gst == stream.OK && gnext == 0 && gn <= len(b) {
					t.Fatalf("%q (request %v): framed %d %d %d, reference short", b, fx.req, gn, gnext, gst)
				}
			}
		}
		var r Request
		var p Reply
		err := ParseRequest(b, &r)
		ParseReply(b, &p)
		if st == refComplete && len(b) > 0 && b[0] == '*' {
			c, k, hasKey, ok := refRequest(string(b[:n]))
			if !ok {
				return
			}
			if err != nil || string(r.Command()) != c || string(r.AppendKey(nil)) != k || r.HasKey != hasKey {
				t.Fatalf("%q: parsed %q %q %v (%v), reference %q %q %v", b, r.Command(), r.AppendKey(nil), r.HasKey, err, c, k, hasKey)
			}
		}
	})
}

// exchange is one request and the reply a server makes to it.
type exchange struct {
	req, rep string
}

var exchanges = []exchange{
	{string(cmd("SET", "k", "v")), "+OK\r\n"},
	{string(cmd("GET", "k")), "$1\r\nv\r\n"},
	{string(cmd("GET", "nokey")), "$-1\r\n"},
	{string(cmd("LRANGE", "l", "0", "-1")), "*2\r\n$1\r\na\r\n$1\r\nb\r\n"},
	{string(cmd("LPUSH", "k", "x")), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
	{string(cmd("INCR", "n")), ":5\r\n"},
	{string(cmd("SET", "big", strings.Repeat("x", 3000))), "+OK\r\n"},
	{string(cmd("GET", "big")), "$3000\r\n" + strings.Repeat("x", 3000) + "\r\n"},
	{"PING\r\n", "+PONG\r\n"},
	{string(cmd("HGETALL", "h")), "%1\r\n$1\r\nf\r\n$1\r\nv\r\n"},
	{string(cmd("MGET", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l")), "*12\r\n" + strings.Repeat("$-1\r\n", 12)},
}

// FuzzPipeline: a pipeline of requests (ops: each byte an exchange) sent
// in segments of any length (cuts, 1..255 bytes, cycled), then the
// replies the same way: every request is paired with its own reply (the
// command of each pair has its reply's type: pairs never cross), none is
// lost, at the client's socket and at the server's.
func FuzzPipeline(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5}, []byte{7})
	f.Add([]byte{6, 7, 8, 9, 10}, []byte{255, 1, 3})
	f.Add([]byte{4, 4, 1, 0}, []byte{1})
	f.Fuzz(func(t *testing.T, ops, cuts []byte) {
		if len(ops) == 0 || len(cuts) == 0 || len(ops) > 64 {
			return
		}
		var reqs, reps []byte
		for _, o := range ops {
			e := exchanges[int(o)%len(exchanges)]
			reqs = append(reqs, e.req...)
			reps = append(reps, e.rep...)
		}
		for _, client := range []bool{true, false} {
			tr := NewTracker(Port)
			var got results
			c := &conv{t: tr, got: &got, client: client, sk: 3, reqSeq: 0xffffff00, cliA: cli, srvA: srv}
			ci := 0
			send := func(all []byte, fn func([]byte)) {
				for off := 0; off < len(all); ci++ {
					n := min(int(cuts[ci%len(cuts)])+1, len(all)-off)
					fn(all[off : off+n])
					off += n
				}
			}
			send(reqs, c.req)
			send(reps, c.rep)
			if len(got) != len(ops) || tr.Pending() != 0 {
				t.Fatalf("client %v: %d results for %d requests, pending %d, %+v", client, len(got), len(ops), tr.Pending(), tr.Streams())
			}
			for i, o := range ops {
				e := exchanges[int(o)%len(exchanges)]
				var want Request
				ParseRequest([]byte(e.req), &want)
				if r := got[i]; r.Kind != event.RedisAnswer || string(r.Cmd) != string(want.Command()) || r.Reply != e.rep[0] ||
					r.ReplyNull != strings.HasPrefix(e.rep, "$-1") || (r.Err != nil) != (e.rep[0] == '-') {
					t.Fatalf("client %v pair %d: %s %c null %v err %q, want %s -> %q", client, i, r.Cmd, r.Reply, r.ReplyNull, r.Err, want.Command(), e.rep[:min(len(e.rep), 10)])
				}
			}
		}
	})
}
