package track

import (
	"cmp"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

func conn(sk uint64, port uint16) *event.Conn {
	return &event.Conn{Sock: sk, Netns: 1, EstNs: sk,
		Src: netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), port),
		Dst: netip.MustParseAddrPort("198.18.0.2:80")}
}

// owned is a copy of c owned by pid, learned through src.
func owned(c *event.Conn, pid uint32, src event.OwnerSrc) *event.Conn {
	o := *c
	o.Pid, o.OwnerSrc = pid, src
	return &o
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
		if got := tb.Find(KeyOf(c)) != nil && !tb.Find(KeyOf(c)).Closed || keep && tb.Find(KeyOf(c)) != nil; got != keep {
			t.Errorf("keep=%v: entry present=%v", keep, got)
		}
		if tb.Lookup(Key(1, c.Src, c.Dst)) != nil {
			t.Error("closed connection still found by tuple")
		}
		if keep && (!tb.Find(KeyOf(c)).Closed || tb.Find(KeyOf(c)).Stats.BytesAcked != 5) {
			t.Error("final values not kept")
		}
	}
}

func TestOwnerNeverDowngraded(t *testing.T) {
	tb := New(false)
	c := owned(conn(1, 1), 10, event.OwnerSyscall)
	tb.Open(c)
	tb.Sample(owned(c, 99, event.OwnerIO), &event.Stats{})
	if tb.Current(1).Conn.Pid != 10 {
		t.Error("a weaker owner replaced the accept()/connect() owner")
	}
}

func TestClosedRetentionIsBoundedAndCounted(t *testing.T) {
	tb := New(true)
	tb.SetMaxClosed(1000)
	n := 1000 + 10
	for i := 1; i <= n; i++ {
		c := conn(uint64(i), uint16(i))
		tb.Open(c)
		tb.Close(c, &event.Stats{}, 1)
	}
	if tb.Len() != 1000 || tb.Evicted != 10 {
		t.Errorf("len %d evicted %d", tb.Len(), tb.Evicted)
	}
	if e := tb.listedAt(ConnKey{1, 1}); e != nil || tb.listedAt(ConnKey{uint64(n), uint32(n)}) == nil {
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

// A connection is (socket, establishment time): socket memory is reused at
// once, and each connection on a reused socket keeps its own entry, number
// and addresses, also for records read after its close.
func TestIdentityUnderSocketReuse(t *testing.T) {
	for _, keep := range []bool{false, true} {
		tb := New(keep)
		first := conn(1, 1000) // established at 1
		e1 := tb.Open(first)
		if e1.Conn.ID != 1 || tb.Find(ConnKey{1, 1}) != e1 || tb.Current(1) != e1 {
			t.Fatalf("open: %+v", e1.Conn)
		}
		tb.Close(first, &event.Stats{}, 10)
		if e := tb.Find(ConnKey{1, 1}); e == nil || e.Conn.Src != first.Src || !e.Closed {
			t.Fatalf("keep=%v: just closed: %v", keep, e)
		}
		if tb.Current(1) != nil {
			t.Fatal("a closed connection is still the socket's current one")
		}
		if tb.Find(ConnKey{1, 20}) != nil {
			t.Fatal("a record of a connection not seen yet found the old one")
		}
		second := conn(1, 2000)
		second.EstNs = 20
		e2 := tb.Open(second)
		if e2 == e1 || e2.Conn.ID != 2 || tb.Current(1) != e2 {
			t.Fatalf("reused socket: %+v", e2.Conn)
		}
		if e := tb.Find(ConnKey{1, 1}); e == nil || e.Conn.Src != first.Src || e.Conn.ID != 1 {
			t.Fatalf("late record of the old connection: %v", e)
		}
		tb.Close(second, &event.Stats{}, 30)
		if e := tb.Find(ConnKey{1, 20}); e == nil || e.Conn.Src != second.Src {
			t.Fatalf("second after its close: %v", e)
		}
		if keep && tb.Len() != 2 {
			t.Errorf("-a keeps both connections of the socket: %d entries", tb.Len())
		}
		// A duplicate close (the walk removed it first) changes nothing.
		if e := tb.Close(second, &event.Stats{}, 40); e.CloseNs != 30 {
			t.Errorf("second close replaced the first: %d", e.CloseNs)
		}
		// An open record read after a kernel lookup adopted the same
		// connection keeps its number and its better owner.
		third := conn(1, 3000)
		third.EstNs = 50
		third.Pid, third.OwnerSrc = 7, event.OwnerIO
		e3 := tb.Open(third)
		if e := tb.Open(owned(third, 5, event.OwnerListener)); e != e3 || e.Conn.ID != 3 || e.Conn.Pid != 7 {
			t.Errorf("reopen: %+v", e.Conn)
		}
	}
}

func TestGoneMemoryIsBounded(t *testing.T) {
	tb := New(false)
	for sk := uint64(1); sk <= goneLen+10; sk++ {
		c := conn(sk, uint16(sk))
		tb.Open(c)
		tb.Close(c, &event.Stats{}, sk+1)
	}
	if tb.Find(ConnKey{1, 1}) != nil {
		t.Error("kept beyond the bound")
	}
	if e := tb.Find(ConnKey{goneLen + 10, goneLen + 10}); e == nil {
		t.Error("last removed not found")
	}
	if tb.idx.n != goneLen || tb.Len() != 0 {
		t.Errorf("index holds %d, want %d; table %d", tb.idx.n, goneLen, tb.Len())
	}
}

// Without close records (conn.Options.NoClose) a walk of the kernel table is
// the truth: connections it no longer finds are removed, a connection
// learned during the walk is not, and a successor on a socket is its own
// connection.
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
	if n := tb.EndWalk(); n != 1 || tb.Current(2) != nil || tb.Current(3) == nil {
		t.Fatalf("second walk: swept %d", n)
	}
	if e := tb.Find(KeyOf(b)); e == nil || e.Conn.Src != b.Src {
		t.Errorf("swept connection not kept for its late records: %v", e)
	}
	succ := conn(1, 1001)
	succ.EstNs = 99 // a's socket, reused by a new connection
	tb.BeginWalk()
	tb.Sample(succ, &event.Stats{})
	tb.Sample(c, &event.Stats{})
	tb.EndWalk()
	if e := tb.Find(KeyOf(a)); e == nil || !e.Closed || tb.listedAt(KeyOf(a)) != nil {
		t.Errorf("a stays open beside its socket's successor: %v", e)
	}
	if e := tb.Current(1); e == nil || e.Conn.Src != succ.Src {
		t.Errorf("successor not adopted: %v", e)
	}
	// A close handled before the walk saw it: not adopted again.
	tb.Close(c, &event.Stats{}, 1)
	tb.BeginWalk()
	tb.Sample(c, &event.Stats{})
	tb.EndWalk()
	if tb.Current(3) != nil {
		t.Error("a closed connection came back from a racing walk")
	}
	// Without SweepUnsampled nothing is swept.
	tb2 := New(false)
	tb2.Open(a)
	tb2.BeginWalk()
	if n := tb2.EndWalk(); n != 0 || tb2.Len() != 1 {
		t.Errorf("swept %d without SweepUnsampled", n)
	}
}

// The close record carries the kernel entry's final owner: an accepted
// connection whose listener's own process did the I/O (no owner record is
// sent for the same pid) ends with owner "io", not "listener".
func TestCloseTakesTheFinalOwner(t *testing.T) {
	tb := New(true)
	c := owned(conn(1, 80), 10, event.OwnerListener)
	tb.Open(c)
	if e := tb.Close(owned(c, 10, event.OwnerIO), nil, 5); e.Conn.OwnerSrc != event.OwnerIO || e.Conn.Pid != 10 {
		t.Errorf("owner after close: %v pid %d", e.Conn.OwnerSrc, e.Conn.Pid)
	}
	// ... and never a worse one.
	d := owned(conn(2, 81), 11, event.OwnerSyscall)
	tb.Open(d)
	if e := tb.Close(owned(d, 0, event.OwnerNone), nil, 5); e.Conn.Pid != 11 || e.Conn.OwnerSrc != event.OwnerSyscall {
		t.Errorf("owner downgraded at close: %v pid %d", e.Conn.OwnerSrc, e.Conn.Pid)
	}
}

// TestCloseOfUnknownIsOpenThenClose: a close record of a connection the
// table never had (no open records: -q) leaves the table as its open
// followed by its close would: same number, same values, remembered for
// late records; the socket's previous connection and a stale entry with
// the same addresses no longer answer Current and Lookup.
func TestCloseOfUnknownIsOpenThenClose(t *testing.T) {
	build := func(openFirst bool) (*Table, *Entry) {
		tb := New(false)
		prev := conn(7, 1000)                         // the socket's previous connection (closed without a record)
		stale := conn(8, 2000)                        // another socket, the same addresses as c
		stale.Src, stale.EstNs = conn(7, 3000).Src, 5 // (a connection the walk adopted that is gone)
		tb.Open(prev)
		tb.Open(stale)
		c := owned(conn(7, 3000), 42, event.OwnerSyscall)
		c.EstNs, c.FastRetrans = 99, 3
		if openFirst {
			tb.Open(c)
		}
		return tb, tb.Close(c, &event.Stats{BytesAcked: 5}, 123)
	}
	want, we := build(true)
	got, ge := build(false)
	g, w := *ge, *we
	g.orderAt, w.orderAt = 0, 0 // its place in order: bookkeeping of Each
	if !reflect.DeepEqual(g, w) {
		t.Errorf("entry\n got %+v\nwant %+v", g, w)
	}
	c := conn(7, 3000)
	c.EstNs = 99
	for _, tb := range []*Table{want, got} {
		if tb.Find(KeyOf(c)) == nil || !tb.Find(KeyOf(c)).Closed {
			t.Error("closed connection not kept for its late records")
		}
	}
	if got.Current(7) != want.Current(7) || got.Current(7) != nil {
		t.Errorf("Current(7): got %v, want %v", got.Current(7), want.Current(7))
	}
	k := Key(1, c.Src, c.Dst)
	if (got.Lookup(k) == nil) != (want.Lookup(k) == nil) || got.Lookup(k) != nil {
		t.Errorf("Lookup by the closed connection's addresses: got %v, want %v", got.Lookup(k), want.Lookup(k))
	}
	prev := conn(7, 1000)
	if (got.Lookup(Key(1, prev.Src, prev.Dst)) == nil) != (want.Lookup(Key(1, prev.Src, prev.Dst)) == nil) {
		t.Error("the socket's previous connection: Lookup differs")
	}
	if got.Len() != want.Len() || got.nextID != want.nextID {
		t.Errorf("len %d / next id %d, want %d / %d", got.Len(), got.nextID, want.Len(), want.nextID)
	}
}

// TestEachVisitsTheTable: Each visits exactly the table's entries, sorted,
// through opens, closes, -a evictions, walks, socket reuse and recycled
// entries (whose old places order still holds); its list of entries stays
// bounded when Each is not called.
func TestEachVisitsTheTable(t *testing.T) {
	for _, tc := range []struct {
		keep, recycle bool
		every         int // Each after this many steps
	}{{false, false, 1000}, {true, false, 1000}, {false, true, 1000}, {true, true, 1000}, {false, true, 7001}, {true, true, 7001}} {
		keep := tc.keep
		tb := New(keep)
		tb.SetMaxClosed(50)
		tb.SweepUnsampled = true
		tb.Recycle = tc.recycle
		ids, reused, stale := map[*Entry]uint64{}, 0, 0
		var open []*event.Conn
		for i := 0; i < 20000; i++ {
			c := conn(uint64(1+i%37), uint16(1000+i%5000))
			c.EstNs = uint64(1_000_000 + i*10 - (i%3)*25) // not quite in number order
			tb.Open(c)
			open = append(open, c)
			if i%3 != 0 {
				k := (i * 7) % len(open)
				tb.Close(open[k], nil, uint64(i))
				open = append(open[:k], open[k+1:]...)
			}
			if i%4999 == 0 {
				tb.BeginWalk()
				for _, c := range open[:len(open)/2] {
					tb.Sample(c, &event.Stats{})
				}
				tb.EndWalk()
				open = open[:len(open)/2]
			}
			if i%tc.every != tc.every-1 {
				continue
			}
			for j, e := range tb.order {
				if e.orderAt != uint32(j)+1 {
					stale++
				}
			}
			var want []*Entry
			for _, s := range tb.idx.slots {
				if s.e != nil && s.e.listed {
					want = append(want, s.e)
				}
			}
			slices.SortFunc(want, func(a, b *Entry) int {
				if a.Conn.EstNs != b.Conn.EstNs {
					return cmp.Compare(a.Conn.EstNs, b.Conn.EstNs)
				}
				return cmp.Compare(a.Conn.ID, b.Conn.ID)
			})
			var got []*Entry
			tb.Each(nil, func(e *Entry) {
				got = append(got, e)
				if id, ok := ids[e]; ok && id != e.Conn.ID {
					reused++
				}
				ids[e] = e.Conn.ID
			})
			if !slices.Equal(got, want) || tb.Len() != len(want) {
				t.Fatalf("%+v, after %d: Each visited %d entries, the table has %d (Len %d; or out of order)", tc, i, len(got), len(want), tb.Len())
			}
		}
		if len(tb.order) > 2*tb.Len()+4096+1 {
			t.Errorf("%+v: order holds %d for %d entries", tc, len(tb.order), tb.Len())
		}
		if tc.recycle != (reused > 0) {
			t.Errorf("%+v: %d entries visited again for another connection", tc, reused)
		}
		if tc.every > goneLen && stale == 0 {
			t.Errorf("%+v: no recycled entry's old place was in order: the test misses that path", tc)
		}
	}
}

// TestRecycle: with Recycle, entries forgotten by the gone ring are reused
// (no allocation per connection), and no key finds an entry that now holds
// another connection.
func TestRecycle(t *testing.T) {
	for _, keep := range []bool{false, true} {
		tb := New(keep)
		tb.SetMaxClosed(100)
		tb.Recycle = true
		keys := []ConnKey{}
		i := 0
		src, dst := netip.MustParseAddrPort("198.18.0.1:1000"), netip.MustParseAddrPort("198.18.0.2:80")
		cycle := func() {
			c := event.Conn{Sock: uint64(1 + i%11), Netns: 1, EstNs: uint64(1000 + i), Src: src, Dst: dst}
			if i%2 == 0 {
				tb.Open(&c)
			}
			tb.Close(&c, nil, uint64(i))
			if keys != nil {
				keys = append(keys, KeyOf(&c))
			}
			i++
		}
		for range 3 * goneLen {
			cycle()
			if k := keys[len(keys)-1]; tb.Find(k) == nil {
				t.Fatalf("keep=%v: the connection just closed is not found", keep)
			}
		}
		for _, k := range keys {
			if e := tb.Find(k); e != nil && KeyOf(&e.Conn) != k {
				t.Fatalf("keep=%v: key %v finds connection %v", keep, k, KeyOf(&e.Conn))
			}
		}
		keys = nil
		if n := testing.AllocsPerRun(1000, cycle); n != 0 {
			t.Errorf("keep=%v: %v allocations per connection", keep, n)
		}
	}
}

// listedAt is the table's entry of k (open or retained closed), or nil.
func (t *Table) listedAt(k ConnKey) *Entry {
	if e := t.idx.get(k); e != nil && e.listed {
		return e
	}
	return nil
}

// TestLookupByTuple: open connections are found by their addresses, IPv4
// (also through the IPv4-mapped IPv6 form) and IPv6 alike, in their own
// network namespace only, and no longer once closed.
func TestLookupByTuple(t *testing.T) {
	tb := New(false)
	v4 := conn(1, 1000)
	v6 := &event.Conn{Sock: 2, Netns: 1, EstNs: 2,
		Src: netip.MustParseAddrPort("[2001:db8::1]:1000"), Dst: netip.MustParseAddrPort("[2001:db8::2]:80")}
	tb.Open(v4)
	tb.Open(v6)
	mapped := func(ap netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
	}
	for _, c := range []struct {
		k    TupleKey
		want *event.Conn
	}{
		{Key(1, v4.Src, v4.Dst), v4},
		{Key(1, mapped(v4.Src), mapped(v4.Dst)), v4},
		{Key(1, v6.Src, v6.Dst), v6},
		{Key(2, v4.Src, v4.Dst), nil},
		{Key(1, v4.Dst, v4.Src), nil},
		{Key(1, v6.Dst, v6.Src), nil},
	} {
		e := tb.Lookup(c.k)
		if (e == nil) != (c.want == nil) || e != nil && e.Conn.Sock != c.want.Sock {
			t.Errorf("Lookup(%v) = %v, want %v", c.k, e, c.want)
		}
	}
	tb.Close(v4, nil, 5)
	tb.Close(v6, nil, 5)
	if tb.Lookup(Key(1, v4.Src, v4.Dst)) != nil || tb.Lookup(Key(1, v6.Src, v6.Dst)) != nil {
		t.Error("closed connections still found by their addresses")
	}
}

// TestEachOnceWithRecycle: with Recycle, an entry reused for a new
// connection while its previous life is still in order (removed, not yet
// dropped by an Each) is visited once: it was visited twice, a duplicate
// connects.log line (with -a under churn, a quarter of the file).
func TestEachOnceWithRecycle(t *testing.T) {
	for _, keep := range []bool{false, true} {
		tb := New(keep)
		tb.SetMaxClosed(2000)
		tb.Recycle = true
		for i := 0; i < 30000; i++ {
			c := conn(uint64(1+i%37), uint16(1000+i%5000))
			c.EstNs = uint64(1_000_000 + i*10)
			tb.Open(c)
			tb.Close(c, nil, uint64(i))
			if i%7000 != 6999 {
				continue
			}
			seen := map[*Entry]bool{}
			n := 0
			tb.Each(nil, func(e *Entry) {
				if seen[e] {
					t.Fatalf("keep=%v, after %d: entry %d visited twice", keep, i, e.Conn.ID)
				}
				seen[e] = true
				n++
			})
			if n != tb.Len() {
				t.Fatalf("keep=%v, after %d: Each visited %d, Len %d", keep, i, n, tb.Len())
			}
		}
	}
}

// TestEndWalkRecycledOnce: a recycled entry's old place in order (Each has
// not run since) is not its own: a walk that sweeps the connection it now
// holds removes it once.
func TestEndWalkRecycledOnce(t *testing.T) {
	tb := New(false)
	tb.Recycle, tb.SweepUnsampled = true, true
	var long []*event.Conn
	for i := 0; i < 2000; i++ { // open for the whole test: order is not compacted
		c := conn(uint64(1_000_000+i), 1000)
		tb.Open(c)
		long = append(long, c)
	}
	for i := 0; i < goneLen+100; i++ { // short ones: their entries are recycled
		c := conn(uint64(2_000_000+i), 2000)
		tb.Open(c)
		tb.Close(c, nil, uint64(i))
	}
	stale := func() (n int) {
		for j, e := range tb.order {
			if e.orderAt != uint32(j)+1 {
				n++
			}
		}
		return n
	}
	for i := 0; i < 100; i++ { // open ones in recycled entries
		tb.Open(conn(uint64(3_000_000+i), 3000))
	}
	if stale() == 0 {
		t.Fatal("no recycled entry's old place in order: the test misses that path")
	}
	tb.BeginWalk()
	for _, c := range long {
		tb.Sample(c, &event.Stats{})
	}
	if n := tb.EndWalk(); n != 100 || tb.Len() != len(long) {
		t.Errorf("the walk removed %d (Len %d), want 100 (Len %d)", n, tb.Len(), len(long))
	}
}

// TestUnknownClosedNotRemembered: with AdoptSampled (-q) a connection the
// table never had is not remembered after its close (its records were not
// named before it, late ones are not either), and its entry is reused;
// without, it is found by its late records.
func TestUnknownClosedNotRemembered(t *testing.T) {
	for _, adopt := range []bool{false, true} {
		tb := New(false)
		tb.AdoptSampled, tb.Recycle = adopt, true
		c := conn(7, 1000)
		e := tb.Close(c, &event.Stats{BytesAcked: 9}, 123)
		if !e.Closed || e.Conn.ID != 1 || e.Stats.BytesAcked != 9 || tb.Len() != 0 {
			t.Fatalf("adopt %v: close of an unknown connection: %+v, Len %d", adopt, e, tb.Len())
		}
		if got := tb.Find(KeyOf(c)); (got != nil) != !adopt {
			t.Errorf("adopt %v: Find after the close = %v", adopt, got)
		}
		d := conn(8, 1001)
		e2 := tb.Close(d, nil, 124)
		if adopt && (e2 != e || e2.Conn.ID != 2 || e2.HasStats || KeyOf(&e2.Conn) != KeyOf(d)) {
			t.Errorf("the next unknown connection did not reuse the entry as new: %p %p %+v", e, e2, e2)
		}
		if adopt && tb.idx.n != 0 {
			t.Errorf("%d keys in the index", tb.idx.n)
		}
	}
}
