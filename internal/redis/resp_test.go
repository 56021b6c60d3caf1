package redis

import (
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/l7cap/stream"
)

// cmd makes a RESP request (an array of bulk strings).
func cmd(args ...string) []byte {
	b := []byte("*" + itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	return b
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func TestFrameRequest(t *testing.T) {
	set := cmd("SET", "k", "v")
	for _, c := range []struct {
		in   string
		n    int
		next uint32
		st   stream.Status
	}{
		{string(set), len(set), 0, stream.OK},
		{string(set) + "*1\r\n", len(set), 0, stream.OK},           // the next request's start left
		{string(set[:5]), 0, 0, stream.More},                       // the command cut
		{string(set[:15]), 0, 0, stream.More},                      // the key's header only
		{string(set[:len(set)-3]), len(set), 0, stream.OK},         // the value's bytes past b: n covers it
		{string(cmd("SET", "k", "v")[:20]), 20, 1, stream.OK},      // command and key whole, value to come
		{"*2\r\n$3\r\nGET\r\n$100\r\nab", 121, 0, stream.OK},       // a long key past b
		{"PING\r\n", 6, 0, stream.OK},                              // inline
		{"PING", 0, 0, stream.More},                                // inline, cut
		{"\x00\x01", 0, 0, stream.Bad},                             // not a request
		{"*x\r\n", 0, 0, stream.Bad},                               // not a count
		{"*1\r\n$?\r\n", 0, 0, stream.Bad},                         // streamed string
		{"*1\r\n$3 \r\nGET\r\n", 0, 0, stream.Bad},                 // junk in a length line
		{"*0\r\n", 4, 0, stream.OK},                                // empty
		{"*" + strings.Repeat("1", 20) + "\r\n", 0, 0, stream.Bad}, // count too large
	} {
		n, next, st := FrameRequest([]byte(c.in), 0)
		if n != c.n || next != c.next || st != c.st {
			t.Errorf("%q: %d %d %d, want %d %d %d", c.in, n, next, st, c.n, c.next, c.st)
		}
	}
	// continuation: the value after the command and key
	if n, next, st := FrameRequest([]byte("$1\r\nv\r\n*1"), 1); n != 7 || next != 0 || st != stream.OK {
		t.Errorf("continuation: %d %d %d", n, next, st)
	}
}

func TestFrameReply(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		next uint32
		st   stream.Status
	}{
		{"+OK\r\n", 5, 0, stream.OK},
		{"+OK\r\n+OK\r\n", 5, 0, stream.OK},
		{"+OK", 0, 0, stream.More},
		{"-WRONGTYPE Operation against a key\r\n", 36, 0, stream.OK},
		{":42\r\n", 5, 0, stream.OK},
		{"$-1\r\n", 5, 0, stream.OK},
		{"$3\r\nbar\r\n", 9, 0, stream.OK},
		{"$10\r\nba", 17, 0, stream.OK},
		{"*-1\r\n", 5, 0, stream.OK},
		{"*2\r\n$1\r\na\r\n:1\r\n", 15, 0, stream.OK},
		{"*3\r\n$1\r\na\r\n:1", 11, 2, stream.OK}, // the array goes on past b
		{"*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n", 20, 0, stream.OK},
		{"%1\r\n+a\r\n:1\r\n", 12, 0, stream.OK},                // RESP3 map
		{"|1\r\n+ttl\r\n:3\r\n+OK\r\n", 19, 0, stream.OK},       // attribute, then the value
		{"_\r\n", 3, 0, stream.OK},                              // RESP3 null
		{",3.14\r\n", 7, 0, stream.OK},                          // double
		{"#t\r\n", 4, 0, stream.OK},                             // boolean
		{"!5\r\nERR x\r\n", 11, 0, stream.OK},                   // blob error
		{"=7\r\ntxt:abc\r\n", 13, 0, stream.OK},                 // verbatim
		{">2\r\n+invalidate\r\n*1\r\n+k\r\n", 25, 0, stream.OK}, // push
		{"~2\r\n:1\r\n:2\r\n", 12, 0, stream.OK},                // set
		{"(12345678901234567890\r\n", 23, 0, stream.OK},         // bignum
		{"?\r\n", 0, 0, stream.Bad},
		{"+" + strings.Repeat("x", maxLine+10), 0, 0, stream.Bad}, // a line too long
	} {
		n, next, st := FrameReply([]byte(c.in), 0)
		if n != c.n || next != c.next || st != c.st {
			t.Errorf("%q: %d %d %d, want %d %d %d", c.in, n, next, st, c.n, c.next, c.st)
		}
	}
}

func TestParseRequest(t *testing.T) {
	var r Request
	for _, c := range []struct {
		in       string
		cmd, key string
		hasKey   bool
		cut      bool
		args     uint32
	}{
		{string(cmd("set", "user:1", "secret-value")), "SET", "user:1", true, false, 2},
		{string(cmd("GET", "a\"b\\c\x00\xff")), "GET", `a\x22b\x5cc\x00\xff`, true, false, 1},
		{string(cmd("AUTH", "hunter2")), "AUTH", "", false, false, 1}, // a password is never kept
		{string(cmd("HELLO", "3", "AUTH", "u", "p")), "HELLO", "", false, false, 4},
		{string(cmd("PING")), "PING", "", false, false, 0},
		{string(cmd("GET", strings.Repeat("k", 100))), "GET", strings.Repeat("k", KeyMax), true, true, 1},
		{string(cmd("GET", "abcdef")[:19]), "GET", "ab", true, true, 1}, // the key cut by the capture
		{"set  foo bar\r\n", "SET", "foo", true, false, 2},              // inline
		{"PING\r\n", "PING", "", false, false, 0},
	} {
		if err := ParseRequest([]byte(c.in), &r); err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if string(r.Command()) != c.cmd || string(r.AppendKey(nil)) != c.key || r.HasKey != c.hasKey || r.KeyCut != c.cut || r.Args != c.args {
			t.Errorf("%q: %s %q has %v cut %v args %d", c.in, r.Command(), r.AppendKey(nil), r.HasKey, r.KeyCut, r.Args)
		}
	}
	for _, in := range []string{"", "*0\r\n", "*1\r\n:1\r\n", "*1\r\n$0\r\n\r\n", "*2\r\n$3\r\nGE"} {
		if ParseRequest([]byte(in), &r) == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

func TestParseReply(t *testing.T) {
	var r Reply
	for _, c := range []struct {
		in   string
		typ  byte
		null bool
		err  string
	}{
		{"+OK\r\n", '+', false, ""},
		{"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", '-', false, "WRONGTYPE"},
		{"-ERR", '-', false, "ERR"}, // cut
		{"$-1\r\n", '$', true, ""},
		{"*-1\r\n", '*', true, ""},
		{"_\r\n", '_', true, ""},
		{"!21\r\nSYNTAX invalid syntax\r\n", '!', false, "SYNTAX"},
		{"|1\r\n+ttl\r\n:3\r\n:5\r\n", ':', false, ""}, // the attribute's value
		{"|1\r\n+ttl\r\n", '|', false, ""},             // its value beyond the capture
		{">3\r\n", '>', false, ""},
	} {
		if !ParseReply([]byte(c.in), &r) {
			t.Errorf("%q not parsed", c.in)
			continue
		}
		if r.Type != c.typ || r.Null != c.null || string(r.ErrCode()) != c.err || r.IsError() != (c.err != "") {
			t.Errorf("%q: %c null %v err %q", c.in, r.Type, r.Null, r.ErrCode())
		}
	}
	if ParseReply([]byte("x"), &r) || ParseReply(nil, &r) {
		t.Error("junk parsed")
	}
}

func TestNoAlloc(t *testing.T) {
	req := cmd("LPUSH", "mylist", "a")
	rep := []byte("*2\r\n$1\r\na\r\n:1\r\n")
	var r Request
	var p Reply
	if a := testing.AllocsPerRun(100, func() {
		FrameRequest(req, 0)
		ParseRequest(req, &r)
		FrameReply(rep, 0)
		ParseReply(rep, &p)
	}); a != 0 {
		t.Errorf("%v allocations", a)
	}
}
