package dns

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// msg builds a DNS message: header fields, then raw question bytes.
func msg(id, flags, qd, an uint16, rest ...[]byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, qd)
	b = binary.BigEndian.AppendUint16(b, an)
	b = append(b, 0, 0, 0, 0)
	for _, r := range rest {
		b = append(b, r...)
	}
	return b
}

// wire encodes a dotted name (no escapes) as labels.
func wire(name string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if l == "" {
			continue
		}
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func q(t uint16) []byte { return []byte{byte(t >> 8), byte(t), 0, 1} }

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name  string
		b     []byte
		err   error
		qname string
		qtype uint16
		check func(*Msg) bool
	}{
		{"query A", msg(0x1234, 0x0100, 1, 0, wire("a.nwtest."), q(1)), nil, "a.nwtest.", 1,
			func(m *Msg) bool {
				return m.ID == 0x1234 && !m.Response() && m.Opcode() == 0 && m.HasQuestion && m.QClass == 1
			}},
		{"response NXDOMAIN", msg(7, 0x8183, 1, 0, wire("nope.nwtest."), q(28)), nil, "nope.nwtest.", 28,
			func(m *Msg) bool { return m.Response() && m.Rcode() == 3 && !m.TC() }},
		{"response TC with answers", msg(7, 0x8380, 1, 3, wire("big.nwtest."), q(16)), nil, "big.nwtest.", 16,
			func(m *Msg) bool { return m.TC() && m.ANCount == 3 && m.Rcode() == 0 }},
		{"root", msg(1, 0, 1, 0, []byte{0}, q(2)), nil, ".", 2, nil},
		{"no question", msg(1, 0x8000, 0, 0), nil, "", 0, func(m *Msg) bool { return !m.HasQuestion }},
		{"escapes", msg(1, 0, 1, 0, []byte{4, 'a', '.', '\\', ' ', 1, 0xff, 0}, q(1)), nil, `a\.\\\032.\255.`, 1, nil},
		// header bytes 0..2 read as the name "a." (id 0x0161, flags high byte 0)
		{"pointer back into the header", msg(0x0161, 0x0000, 1, 0, []byte{1, 'b', 0xc0, 0}, q(1)), nil, "b.a.", 1, nil},
		{"pointer to itself", msg(1, 0, 1, 0, []byte{0xc0, 12}, q(1)), ErrName, "", 0, nil},
		{"forward pointer", msg(1, 0, 1, 0, []byte{0xc0, 14, 0, 0, 1, 'a', 0}, q(1)), ErrName, "", 0, nil},
		{"pointer loop", msg(1, 0, 1, 0, []byte{1, 'a', 0xc0, 14}, q(1)), ErrName, "", 0, nil},
		{"reserved label type", msg(1, 0, 1, 0, []byte{0x41, 'a', 0}, q(1)), ErrName, "", 0, nil},
		{"name over 255 bytes", msg(1, 0, 1, 0, bytes.Repeat([]byte{9, 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'}, 26), []byte{0}, q(1)), ErrName, "", 0, nil},
		{"name cut", msg(1, 0, 1, 0, []byte{5, 'a', 'b'}), ErrTruncated, "", 0, nil},
		{"pointer cut", msg(1, 0, 1, 0, []byte{1, 'a', 0xc0}), ErrTruncated, "", 0, nil},
		{"qtype cut", msg(1, 0, 1, 0, wire("a."), []byte{0, 1}), ErrTruncated, "", 0, nil},
		{"short", []byte{1, 2, 3}, ErrShort, "", 0, nil},
	} {
		var m Msg
		err := Parse(c.b, &m)
		if err != c.err {
			t.Errorf("%s: err %v, want %v", c.name, err, c.err)
			continue
		}
		if string(m.QName()) != c.qname || m.QType != c.qtype || (c.check != nil && !c.check(&m)) {
			t.Errorf("%s: got %+v name %q", c.name, m, m.QName())
		}
	}
}

func TestParseNoAlloc(t *testing.T) {
	b := msg(0x1234, 0x0100, 1, 0, wire("www.example.com."), q(28))
	var m Msg
	if n := testing.AllocsPerRun(100, func() { Parse(b, &m) }); n != 0 {
		t.Errorf("%v allocations per Parse", n)
	}
}
