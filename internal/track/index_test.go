package track

import (
	"math/rand/v2"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// TestIndexAgreesWithMap: random puts and deletes on few hash homes (keys
// that collide, runs that wrap around the end of the slots, growth) answer
// like a map. The entries hold their keys (a slot holds a hash: a match is
// checked against the entry).
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
			e := &Entry{Conn: event.Conn{Sock: k.Sock, EstNs: uint64(k.EstLo)}}
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

// TestIndexHashCollision: two keys with one hash are told apart by their
// entries' keys.
func TestIndexHashCollision(t *testing.T) {
	mix := func(lo uint32) uint64 { return uint64(lo)<<29 ^ uint64(lo) }
	k1 := ConnKey{Sock: 0xffff888100000040, EstLo: 7}
	k2 := ConnKey{Sock: k1.Sock ^ mix(7) ^ mix(9), EstLo: 9}
	if hashOf(k1) != hashOf(k2) || k1 == k2 {
		t.Fatal("the keys do not collide")
	}
	var x index
	ent := func(k ConnKey) *Entry { return &Entry{Conn: event.Conn{Sock: k.Sock, EstNs: uint64(k.EstLo)}} }
	e1, e2 := ent(k1), ent(k2)
	x.put(k1, e1)
	if x.get(k2) != nil {
		t.Fatal("a colliding key found the other's entry")
	}
	x.put(k2, e2)
	if x.get(k1) != e1 || x.get(k2) != e2 {
		t.Fatal("colliding keys not told apart")
	}
	x.del(k1, e1)
	if x.get(k1) != nil || x.get(k2) != e2 {
		t.Fatal("deleting one of two colliding keys")
	}
}
