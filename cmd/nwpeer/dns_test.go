package main

import (
	"testing"

	"github.com/netwatcher/netwatcher/internal/dns"
)

// dns-serve's answers, read back with netwatcher's parser.
func TestDNSAnswer(t *testing.T) {
	q := func(name string, qtype byte) []byte {
		b := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, byte(len(name))}
		return append(append(b, name...), 0, 0, qtype, 0, 1)
	}
	for _, c := range []struct {
		name           string
		qtype          byte
		rcode, answers int
	}{{"a", 1, 0, 1}, {"a", 28, 0, 1}, {"a", 16, 0, 0}, {"nx1", 1, 3, 0}} {
		r := dnsAnswer(q(c.name, c.qtype))
		var m dns.Msg
		if err := dns.Parse(r, &m); err != nil || !m.Response() || m.ID != 0x1234 || int(m.Rcode()) != c.rcode ||
			int(m.ANCount) != c.answers || string(m.QName()) != c.name+"." || m.QType != uint16(c.qtype) {
			t.Errorf("%s/%d: %v %+v", c.name, c.qtype, err, m)
		}
		if c.answers == 1 && len(r) != len(q(c.name, c.qtype))+12+4*int(c.qtype/28*3+1) {
			t.Errorf("%s/%d: answer of %d bytes", c.name, c.qtype, len(r))
		}
	}
	if dnsAnswer([]byte{1, 2, 0x80, 0, 0, 1}) != nil || dnsAnswer(dnsAnswer(q("a", 1))) != nil {
		t.Error("answered something that is not a query")
	}
}
