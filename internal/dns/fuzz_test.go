package dns

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// refQuestion is a reference reader of the first question, written from
// RFC 1035 §4.1 and the rules in Parse's documentation (pointers must
// point backwards, at most maxPointers of them, 255 wire bytes, label
// types 01/10 refused), slow and plain: labels as strings, text by fmt.
func refQuestion(b []byte) (name string, qtype uint16, err error) {
	if len(b) < 12 {
		return "", 0, ErrShort
	}
	if b[4] == 0 && b[5] == 0 {
		return "", 0, nil
	}
	var labels []string
	off, end, ptrs, total := 12, -1, 0, 0
	for {
		if off >= len(b) {
			return "", 0, ErrTruncated
		}
		l := int(b[off])
		if l >= 0xc0 {
			if off+1 >= len(b) {
				return "", 0, ErrTruncated
			}
			p := (l&0x3f)<<8 | int(b[off+1])
			if p >= off || ptrs == maxPointers {
				return "", 0, ErrName
			}
			if end < 0 {
				end = off + 2
			}
			ptrs++
			off = p
			continue
		}
		if l >= 0x40 {
			return "", 0, ErrName
		}
		total += l + 1
		if total > 255 {
			return "", 0, ErrName
		}
		if l == 0 {
			if end < 0 {
				end = off + 1
			}
			break
		}
		if off+1+l > len(b) {
			return "", 0, ErrTruncated
		}
		labels = append(labels, string(b[off+1:off+1+l]))
		off += 1 + l
	}
	if end+4 > len(b) {
		return "", 0, ErrTruncated
	}
	var sb strings.Builder
	for _, l := range labels {
		for _, c := range []byte(l) {
			switch {
			case strings.IndexByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", c) >= 0:
				sb.WriteByte(c)
			case c == '.' || c == '\\':
				sb.WriteByte('\\')
				sb.WriteByte(c)
			default:
				fmt.Fprintf(&sb, "\\%03d", c)
			}
		}
		sb.WriteByte('.')
	}
	if len(labels) == 0 {
		sb.WriteByte('.')
	}
	return sb.String(), uint16(b[end])<<8 | uint16(b[end+1]), nil
}

// FuzzParse: Parse never panics, and agrees with the reference on every
// input (error, name text, qtype, header fields). Seeds in
// testdata/fuzz/FuzzParse: compression loops, pointers into the header,
// truncated names, a TC response, NXDOMAIN, escapes, a 255-byte name.
func FuzzParse(f *testing.F) {
	f.Add(msg(0x1234, 0x0100, 1, 0, wire("a.nwtest."), q(1)))
	f.Add(msg(0x0161, 0x8380, 1, 2, []byte{1, 'b', 0xc0, 0}, q(16)))
	f.Add(msg(1, 0, 1, 0, []byte{1, 'a', 0xc0, 14}, q(1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Msg
		err := Parse(b, &m)
		name, qtype, rerr := refQuestion(b)
		if !errors.Is(err, rerr) {
			t.Fatalf("err %v, reference %v", err, rerr)
		}
		if err == ErrShort {
			return
		}
		if m.ID != uint16(b[0])<<8|uint16(b[1]) || m.Flags != uint16(b[2])<<8|uint16(b[3]) || m.ANCount != uint16(b[6])<<8|uint16(b[7]) {
			t.Fatalf("header %+v", m)
		}
		if err != nil {
			if m.HasQuestion || m.NameLen != 0 {
				t.Fatalf("question after %v: %q", err, m.QName())
			}
			return
		}
		if string(m.QName()) != name || m.QType != qtype || m.HasQuestion != (m.QDCount > 0) {
			t.Fatalf("got %q %d, reference %q %d", m.QName(), m.QType, name, qtype)
		}
	})
}
