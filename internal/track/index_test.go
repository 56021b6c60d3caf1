package track

import (
	"math/rand/v2"
	"testing"
)

// TestIndexAgreesWithMap: random puts and deletes on few hash homes (keys
// that collide, runs that wrap around the end of the slots, growth) answer
// like a map.
func TestIndexAgreesWithMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var x index
	want := map[ConnKey]*Entry{}
	key := func() ConnKey {
		return ConnKey{Sock: 0xffff888100000000 + uint64(r.IntN(300))*0x40, EstLo: uint32(r.IntN(40))}
	}
	for i := 0; i < 400000; i++ {
		k := key()
		switch op := r.IntN(3); {
		case op == 0 && want[k] == nil:
			e := &Entry{}
			x.put(k, e)
			want[k] = e
		case op == 1:
			e := want[k]
			if r.IntN(8) == 0 {
				x.del(k, &Entry{}) // not k's entry: no-op
			} else {
				x.del(k, e)
				delete(want, k)
			}
		}
		if got := x.get(k); got != want[k] {
			t.Fatalf("op %d: get(%v) = %p, want %p", i, k, got, want[k])
		}
		if x.n != len(want) {
			t.Fatalf("op %d: %d keys, want %d", i, x.n, len(want))
		}
		if i%20000 == 0 {
			for k, e := range want {
				if x.get(k) != e {
					t.Fatalf("op %d: lost %v", i, k)
				}
			}
		}
	}
}
