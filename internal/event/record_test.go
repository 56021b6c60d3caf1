package event

import "testing"

type rec struct {
	Type uint8
	_    [7]byte
	V    uint64
}

func TestRecord(t *testing.T) {
	raw := make([]byte, 24)
	raw[0], raw[8] = 7, 42
	r := Record[rec](raw)
	if r == nil || r.Type != 7 || r.V != 42 {
		t.Fatalf("view %+v", r)
	}
	if Record[rec](raw[:15]) != nil {
		t.Error("a short record viewed")
	}
	if Record[rec](nil) != nil {
		t.Error("nil viewed")
	}
	if n := testing.AllocsPerRun(100, func() { _ = Record[rec](raw) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
