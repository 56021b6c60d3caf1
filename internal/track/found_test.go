package track

import (
	"math/rand/v2"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// Find answers what the maps hold (open and retained, else removed), also
// through its cache of recent answers, while connections open, close, are
// evicted and fall out of the memory of removed ones, on few sockets (the
// cache's slots collide and sockets are reused).
func TestFindCacheAgreesWithTable(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, keep := range []bool{false, true} {
		tb := New(keep)
		tb.SetMaxClosed(50)
		var keys []ConnKey
		conn := func() event.Conn {
			return event.Conn{Sock: 0xffff888100000000 + uint64(r.IntN(40))*0x100, EstNs: uint64(r.IntN(200)) + 1}
		}
		for i := 0; i < 200000; i++ {
			switch op := r.IntN(10); {
			case op < 3:
				c := conn()
				tb.Open(&c)
				keys = append(keys, KeyOf(&c))
			case op < 5:
				c := conn()
				tb.Close(&c, nil, uint64(i))
				keys = append(keys, KeyOf(&c))
			case op == 5 && i%50 == 0:
				tb.SweepUnsampled = true
				tb.BeginWalk()
				tb.EndWalk()
			default:
				var k ConnKey
				if len(keys) > 0 && r.IntN(4) != 0 {
					k = keys[r.IntN(len(keys))]
				} else {
					c := conn()
					k = KeyOf(&c)
				}
				want := tb.scan(k)
				if got := tb.Find(k); got != want {
					t.Fatalf("keep %v, op %d: Find(%v) = %p, the table has %p", keep, i, k, got, want)
				}
			}
		}
		if tb.goneN < 2*goneLen {
			t.Fatalf("only %d removed: the memory of removed ones never wrapped", tb.goneN)
		}
	}
}

// scan finds k by looking at every slot of the index and the gone ring.
func (t *Table) scan(k ConnKey) *Entry {
	var found *Entry
	for _, s := range t.idx.slots {
		if s.e != nil && KeyOf(&s.e.Conn) == k {
			if s.h != hashOf(k) {
				panic("index slot hash differs from its entry's key's")
			}
			if found != nil {
				panic("key twice in the index")
			}
			found = s.e
		}
	}
	if found != nil && !found.listed {
		in := false
		for _, g := range t.gone {
			if g.e == found && g.k != k {
				panic("gone ring key differs from its entry's")
			}
			in = in || g.e == found
		}
		if !in {
			panic("removed entry in the index but not in the gone ring")
		}
	}
	return found
}
