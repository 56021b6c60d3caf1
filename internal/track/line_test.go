package track

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// lineVals are the values of an entry a kept line is made of.
type lineVals struct {
	conn     event.Conn
	stats    event.Stats
	hasStats bool
	closed   bool
	closeNs  uint64
}

func valsOf(e *Entry) lineVals {
	return lineVals{e.Conn, e.Stats, e.HasStats, e.Closed, e.CloseNs}
}

// TestLineDroppedOnChange: an entry's kept line (Line) is returned only
// while none of the values it was made of changed, whatever the table did
// in between: opens, owner records, samples, closes (of open, closed and
// forgotten connections: late records), walks that sweep, evictions of
// kept closed ones, entries recycled for new connections. Every entry the
// table shows gets a line after every step (more than the formatter does:
// it keeps closed ones' lines only), so a change of an open entry that
// keeps its line fails here too.
func TestLineDroppedOnChange(t *testing.T) {
	for _, cfg := range []struct {
		name                       string
		keep, adopt, sweep, recycl bool
	}{
		{"keep", true, false, false, true},
		{"keep-quiet", true, true, true, true},
		{"no-keep", false, false, false, true},
		{"no-keep-quiet", false, true, true, true},
		{"keep-no-recycle", true, false, false, false},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			tb := New(cfg.keep)
			tb.SetMaxClosed(40)
			tb.Recycle, tb.AdoptSampled, tb.SweepUnsampled = cfg.recycl, cfg.adopt, cfg.sweep
			rng := rand.New(rand.NewPCG(17, uint64(len(cfg.name))))
			made := map[*Entry]lineVals{} // entries with a line: the values it was made of
			var conns []event.Conn        // every connection so far (for late records)
			est := uint64(1 << 30)
			reused := 0 // entries seen again holding another connection
			pick := func() *event.Conn {
				if len(conns) == 0 {
					return nil
				}
				// mostly recent ones, sometimes long gone
				i := len(conns) - 1 - min(len(conns)-1, int(rng.ExpFloat64()*20))
				c := conns[i]
				return &c
			}
			stats := func() *event.Stats {
				return &event.Stats{Cwnd: rng.Uint32N(50), BytesAcked: rng.Uint64N(1 << 20), TotalRetrans: rng.Uint32N(3)}
			}
			check := func(step int, what string, e *Entry) {
				if e == nil {
					return
				}
				if v, ok := made[e]; ok && e.Line(1) != nil && valsOf(e) != v {
					t.Fatalf("step %d (%s): conn %d keeps its line after a change:\n was %+v\n now %+v", step, what, e.Conn.ID, v, valsOf(e))
				}
			}
			for step := 0; step < 12000; step++ {
				var what string
				var touched *Entry
				newConn := func() *event.Conn {
					est += 1000 + rng.Uint64N(5000)
					conns = append(conns, event.Conn{Sock: 0x100 * (1 + rng.Uint64N(23)), Netns: 1, EstNs: est, Pid: rng.Uint32N(3),
						OwnerSrc: event.OwnerSrc(rng.IntN(3)),
						Src:      netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), uint16(1000+rng.IntN(30))),
						Dst:      netip.MustParseAddrPort("198.18.0.2:80")})
					return &conns[len(conns)-1]
				}
				switch op := rng.IntN(100); {
				case op < 20 || len(conns) == 0:
					what = "open"
					touched = tb.Open(newConn())
				case op < 50:
					what = "churn" // a short connection: opened (or not: -q) and closed
					c := newConn()
					if rng.IntN(2) == 0 {
						check(step, "churn open", tb.Open(c))
					}
					touched = tb.Close(c, stats(), est+500)
				case op < 55:
					what = "open again"
					c := pick()
					c.Pid, c.OwnerSrc, c.IsServer = 100+rng.Uint32N(5), event.OwnerSrc(rng.IntN(4)), rng.IntN(2) == 0
					touched = tb.Open(c)
				case op < 63:
					what = "owner"
					c := pick()
					c.Pid, c.OwnerSrc = 200+rng.Uint32N(5), event.OwnerSrc(rng.IntN(4))
					copy(c.Comm[:], "late")
					touched = tb.Owner(c)
				case op < 75:
					what = "sample"
					c := pick()
					c.Pid, c.OwnerSrc, c.FastRetrans, c.RetransSegs = 300+rng.Uint32N(5), event.OwnerSrc(rng.IntN(4)), rng.Uint32N(4), rng.Uint32N(9)
					tb.Sample(c, stats())
					touched = tb.Find(KeyOf(c))
				case op < 95:
					what = "close"
					c := pick()
					c.Pid, c.OwnerSrc, c.TimeoutRetrans = 400+rng.Uint32N(5), event.OwnerSrc(rng.IntN(4)), rng.Uint32N(4)
					var st *event.Stats
					if rng.IntN(4) != 0 {
						st = stats()
					}
					touched = tb.Close(c, st, est+rng.Uint64N(1000))
				default:
					what = "walk"
					tb.BeginWalk()
					for range rng.IntN(10) {
						c := pick()
						tb.Sample(c, stats())
					}
					tb.EndWalk()
				}
				if v, ok := made[touched]; ok && KeyOf(&v.conn) != KeyOf(&touched.Conn) {
					reused++
				}
				check(step, what, touched)
				// every entry the table shows, and the one the step
				// touched (perhaps removed): check, then make its line
				// (a recycled entry is checked when it shows again)
				set := func(e *Entry) {
					check(step, what, e)
					if e.Line(1) == nil {
						e.SetLine(1, []byte("x"))
						made[e] = valsOf(e)
					}
				}
				if step%4 == 0 { // (a stale line stays stale: no need to look every step)
					tb.Each(nil, set)
				}
				if touched != nil {
					set(touched)
				}
				for _, g := range tb.gone { // removed ones: late records find them
					if g.e != nil && step%64 == 0 {
						check(step, what, g.e)
					}
				}
			}
			if tb.Evicted == 0 && cfg.keep {
				t.Error("no kept closed connection was evicted: the test misses that path")
			}
			if reused == 0 && cfg.recycl {
				t.Error("no entry was recycled: the test misses that path")
			}
		})
	}
}

// TestLineRecycled: a recycled entry keeps its line's buffer (no
// allocation for the next connection's line) but not its text.
func TestLineRecycled(t *testing.T) {
	tb := New(true)
	tb.SetMaxClosed(10)
	tb.Recycle = true
	var first *Entry
	for i := 0; i < 10+goneLen+10; i++ {
		c := conn(uint64(1+i%7), uint16(1000+i))
		c.EstNs = uint64(1000 + i)
		e := tb.Open(c)
		if e.Line(1) != nil {
			t.Fatalf("connection %d: a new entry has a line", i)
		}
		tb.Close(c, nil, uint64(2000+i))
		line := []byte("connection{the line of a connection that was}\n")
		e.SetLine(1, line)
		if e.Line(1) != nil {
			t.Fatalf("connection %d: the first line given was kept", i)
		}
		e.SetLine(1, line)
		if string(e.Line(1)) != string(line) {
			t.Fatalf("connection %d: the second line given was not kept: %q", i, e.Line(1))
		}
		if i == 0 {
			first = e
		} else if e == first {
			if cap(e.line) == 0 {
				t.Error("the recycled entry lost its line's buffer")
			}
			return
		}
	}
	t.Fatal("no entry was recycled")
}
