package track

import (
	"net/netip"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

func conn(sk uint64, port uint16) *event.Conn {
	return &event.Conn{Sock: sk, Netns: 1, EstNs: sk,
		Src: netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), port),
		Dst: netip.MustParseAddrPort("198.18.0.2:80")}
}

func TestCloseRemovesUnlessKept(t *testing.T) {
	for _, keep := range []bool{false, true} {
		tb := New(keep)
		c := conn(1, 1000)
		tb.Open(c)
		if tb.Lookup(Key(1, c.Src, c.Dst)) == nil {
			t.Fatal("tuple lookup of an open connection failed")
		}
		tb.Close(c, &event.Stats{BytesAcked: 5}, 9)
		if got := tb.Get(1) != nil; got != keep {
			t.Errorf("keep=%v: entry present=%v", keep, got)
		}
		if tb.Lookup(Key(1, c.Src, c.Dst)) != nil {
			t.Error("closed connection still found by tuple")
		}
		if keep && (!tb.Get(1).Closed || tb.Get(1).Stats.BytesAcked != 5) {
			t.Error("final values not kept")
		}
	}
}

func TestOwnerNeverDowngraded(t *testing.T) {
	tb := New(false)
	c := conn(1, 1)
	c.Pid, c.OwnerSrc = 10, event.OwnerSyscall
	tb.Open(c)
	s := *c
	s.Pid, s.OwnerSrc = 99, event.OwnerIO
	tb.Sample(&s, &event.Stats{})
	if tb.Get(1).Conn.Pid != 10 {
		t.Error("a weaker owner replaced the accept()/connect() owner")
	}
}

func TestClosedRetentionIsBoundedAndCounted(t *testing.T) {
	tb := New(true)
	n := MaxClosed + 10
	for i := 1; i <= n; i++ {
		c := conn(uint64(i), uint16(i))
		tb.Open(c)
		tb.Close(c, &event.Stats{}, 1)
	}
	if tb.Len() != MaxClosed || tb.Evicted != 10 {
		t.Errorf("len %d evicted %d", tb.Len(), tb.Evicted)
	}
	if tb.Get(1) != nil || tb.Get(uint64(n)) == nil {
		t.Error("eviction must drop the oldest closed connections first")
	}
	var last uint64
	tb.Each(nil, func(e *Entry) {
		if e.Conn.EstNs < last {
			t.Fatal("Each not ordered by establishment")
		}
		last = e.Conn.EstNs
	})
}

// Packet records name only their socket and the low bits of the
// connection's establishment time; the addresses of a connection stay known
// for its last records after the close removed it, for a bounded number of
// removals, and a reused socket address never lends its addresses to the
// records of another connection.
func TestAddrsOf(t *testing.T) {
	tb := New(false)
	first := conn(1, 1000) // established at 1
	tb.Open(first)
	if src, dst, ok := tb.AddrsOf(1, 1); !ok || src != first.Src || dst != first.Dst {
		t.Fatalf("open connection: %v %v %v", src, dst, ok)
	}
	tb.Close(first, &event.Stats{}, 10)
	if src, _, ok := tb.AddrsOf(1, 1); !ok || src != first.Src {
		t.Fatalf("just removed: %v %v", src, ok)
	}
	if _, _, ok := tb.AddrsOf(1, 20); ok {
		t.Fatal("a record of a connection not seen yet got the old one's addresses")
	}
	// The socket is reused by a connection established at 20.
	second := conn(1, 2000)
	second.EstNs = 20
	tb.Open(second)
	if src, _, ok := tb.AddrsOf(1, 20); !ok || src != second.Src {
		t.Fatalf("new connection: %v %v", src, ok)
	}
	if src, _, ok := tb.AddrsOf(1, 1); !ok || src != first.Src {
		t.Fatalf("late record of the old connection: %v %v", src, ok)
	}
	tb.Close(second, &event.Stats{}, 30)
	// Both removed before their records were read: each record still finds
	// its own connection.
	if src, _, ok := tb.AddrsOf(1, 1); !ok || src != first.Src {
		t.Fatalf("first connection after the second was removed too: %v %v", src, ok)
	}
	if src, _, ok := tb.AddrsOf(1, 20); !ok || src != second.Src {
		t.Fatalf("second connection after its removal: %v %v", src, ok)
	}
	for sk := uint64(2); sk < 2+goneLen; sk++ {
		c := conn(sk, uint16(sk))
		tb.Open(c)
		tb.Close(c, &event.Stats{}, sk+1)
	}
	if _, _, ok := tb.AddrsOf(1, 20); ok {
		t.Error("addresses kept beyond the bound")
	}
	if src, _, ok := tb.AddrsOf(goneLen+1, goneLen+1); !ok || src.Port() != uint16(goneLen+1) {
		t.Errorf("last removed: %v %v", src, ok)
	}
	if len(tb.goneIdx) != goneLen {
		t.Errorf("index holds %d, want %d", len(tb.goneIdx), goneLen)
	}
	if _, _, ok := tb.AddrsOf(99999, 5); ok {
		t.Error("unknown socket found")
	}
}

// Without close records (conn.Options.NoClose) a walk of the kernel table is
// the truth: connections it no longer finds are removed, a connection opened
// during the walk is not, and a successor on a socket does not keep its
// predecessor's entry alive.
func TestWalkSweeps(t *testing.T) {
	tb := New(false)
	tb.AdoptSampled, tb.SweepUnsampled = true, true
	a, b := conn(1, 1000), conn(2, 2000)
	tb.BeginWalk()
	tb.Sample(a, &event.Stats{})
	tb.Sample(b, &event.Stats{})
	if n := tb.EndWalk(); n != 0 || tb.Len() != 2 {
		t.Fatalf("first walk: swept %d, %d entries", n, tb.Len())
	}
	tb.BeginWalk()
	tb.Sample(a, &event.Stats{}) // b closed
	c := conn(3, 3000)
	tb.Open(c) // learned during the walk (e.g. an error record's lookup)
	succ := conn(1, 1001)
	succ.EstNs = 99 // a's socket, reused by a new connection
	if n := tb.EndWalk(); n != 1 || tb.Get(2) != nil || tb.Get(3) == nil {
		t.Fatalf("second walk: swept %d; entries b=%v c=%v", n, tb.Get(2) != nil, tb.Get(3) != nil)
	}
	if src, _, ok := tb.AddrsOf(2, 2); !ok || src != b.Src {
		t.Errorf("swept connection's addresses not kept for its late records: %v %v", src, ok)
	}
	tb.BeginWalk()
	tb.Sample(succ, &event.Stats{}) // a is gone, its socket holds succ
	tb.Sample(c, &event.Stats{})
	tb.EndWalk()
	if e := tb.Get(1); e != nil {
		t.Errorf("stale entry kept alive by its socket's successor: %+v", e.Conn)
	}
	tb.BeginWalk()
	tb.Sample(succ, &event.Stats{})
	tb.Sample(c, &event.Stats{})
	tb.EndWalk()
	if e := tb.Get(1); e == nil || e.Conn.Src != succ.Src {
		t.Errorf("successor not adopted on the next walk: %v", e)
	}
	// Without SweepUnsampled nothing is swept.
	tb2 := New(false)
	tb2.Open(a)
	tb2.BeginWalk()
	if n := tb2.EndWalk(); n != 0 || tb2.Len() != 1 {
		t.Errorf("swept %d without SweepUnsampled", n)
	}
}
