package conn

import (
	"io"
	"net"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// TestWalkVisitsEverySlot: the two walks of the set-associative table
// (nw_iter_conns, nw_iter_sum: NW_WALK_SETS sets per iterator call) visit
// every occupied slot exactly once, on tables of 1 to 65,536 sets, with
// whole runs of full sets (a chunk of 16 full sets is the most one call
// writes), and cost one program run per chunk, not per set. The table is
// filled from user space, every slot with the same real socket (a loopback
// connection that moved data) and a marker in its entry: the sample walk
// must report each marker once, and the sum walk K times the counters of
// that one socket.
func TestWalkVisitsEverySlot(t *testing.T) {
	nstest.RequireRoot(t)
	sk := realSocket(t)
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	for _, maxConns := range []uint32{8, 64, 1000, 0} {
		sets := tableSets(maxConns)
		p, err := Load(Options{MaxConns: maxConns, ConnSum: true})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.attachSampler(); err != nil {
			t.Fatal(err)
		}
		w, err := LoadSumWalk(&config.Config{}, p.SharedMaps())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := w.Attach(); err != nil {
			t.Fatal(err)
		}

		// which slots hold the socket: the first 40 sets full (2.5
		// chunks), one way of every 997th set, the last set full
		slots := map[uint32]bool{} // set*ways+way
		for s := uint32(0); s < sets; s++ {
			switch {
			case s < 40 || s == sets-1:
				for w := uint32(0); w < ways; w++ {
					slots[s*ways+w] = true
				}
			case s%997 == 0:
				slots[s*ways+s%ways] = true
			}
		}
		fill := func(only uint32, all bool) {
			t.Helper()
			keys := p.Coll.Maps["nw_conn_keys"]
			for s := uint32(0); s < sets; s++ {
				var set connNwConnSet
				for w := uint32(0); w < ways; w++ {
					i := s*ways + w
					if slots[i] && (all || i == only) {
						set.Sk[w] = sk
						c := connNwConn{EstNs: 1, Netns: i + 1} // the marker
						if err := p.Coll.Maps["nw_conns"].Update(i, &c, ebpf.UpdateAny); err != nil {
							t.Fatal(err)
						}
					}
				}
				if set == (connNwConnSet{}) && !slots[s*ways] && !slots[s*ways+s%ways] {
					continue // a set no slot of which is used
				}
				if err := keys.Update(s, &set, ebpf.UpdateAny); err != nil {
					t.Fatal(err)
				}
			}
		}

		// the sum walk: nothing closed or adopted in this table, so its
		// counts are the open slots' sum
		fill(0, false)
		one, err := w.Counts()
		if err != nil {
			t.Fatal(err)
		}
		if one.SegsIn == 0 || one.BytesIn == 0 {
			t.Fatalf("sets=%d: one slot counts %+v: the socket moved no data?", sets, one)
		}
		fill(0, true)
		runs := runCount(t, w.coll.Programs[sumWalkProg])
		all, err := w.Counts()
		if err != nil {
			t.Fatal(err)
		}
		k := uint64(len(slots))
		if all.SegsIn != k*one.SegsIn || all.SegsOut != k*one.SegsOut || all.BytesIn != k*one.BytesIn || all.BytesOut != k*one.BytesOut {
			t.Errorf("sets=%d: sum walk %+v, want %d x %+v", sets, all, k, one)
		}
		// one run per chunk, and one at the end (key NULL)
		if got, want := runCount(t, w.coll.Programs[sumWalkProg])-runs, uint64(walkChunks(sets))+1; got != want {
			t.Errorf("sets=%d: sum walk ran its program %d times, want %d (one per %d sets, one at the end)", sets, got, want, walkSets)
		}

		// the sample walk
		runs = runCount(t, p.Coll.Programs["nw_iter_conns"])
		seen := map[uint32]int{}
		if err := p.Sample(func(got uint64, c *event.Conn, st *event.Stats) {
			if got != sk {
				t.Errorf("sets=%d: socket %#x, want %#x", sets, got, sk)
			}
			if st.BytesReceived == 0 {
				t.Errorf("sets=%d: slot %d: no tcp_sock values", sets, c.Netns-1)
			}
			seen[c.Netns-1]++
		}); err != nil {
			t.Fatalf("sets=%d: %v", sets, err)
		}
		// The same, and a chunk whose records do not fit the iterator's
		// buffer (8 pages) any more runs again for the next read: the
		// buffer held more than 8 pages - 16 full sets (5,120 bytes) then.
		runs = runCount(t, p.Coll.Programs["nw_iter_conns"]) - runs
		chunks := uint64(walkChunks(sets)) + 1
		if again := uint64(len(slots)) * recSize / 5120; runs < chunks || runs > chunks+again+1 {
			t.Errorf("sets=%d: sample walk ran its program %d times, want %d, at most %d more", sets, runs, chunks, again+1)
		}
		for i := range slots {
			if seen[i] != 1 {
				t.Errorf("sets=%d: slot %d (set %d) seen %d times, want once", sets, i, i/ways, seen[i])
			}
		}
		for i, n := range seen {
			if !slots[i] {
				t.Errorf("sets=%d: slot %d seen %d times, holds nothing", sets, i, n)
			}
		}
		t.Logf("sets=%d: %d slots, sample walk: %d program runs", sets, len(slots), runs)
	}
}

// realSocket is the kernel address of the client side of a loopback
// connection (test namespace) that sent and received data, kept open
// until the test ends.
func realSocket(t *testing.T) uint64 {
	t.Helper()
	ns := nstest.NewNS(t)
	conns := loopbackPairs(t, ns, 1)
	buf := make([]byte, 5000)
	for _, d := range [][2]net.Conn{{conns[0], conns[1]}, {conns[1], conns[0]}} {
		if _, err := d[0].Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(d[1], buf); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Load(Options{MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	evs, err := p.Existing()
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Conn.Src.String() == conns[0].LocalAddr().String() && ev.Conn.Dst.String() == conns[0].RemoteAddr().String() {
			return ev.Conn.Sock
		}
	}
	t.Fatalf("the start-up walk did not find %s -> %s", conns[0].LocalAddr(), conns[0].RemoteAddr())
	return 0
}

const recSize = uint64(unsafe.Sizeof(connNwIterRec{}))

// runCount is how often prog ran (bpf_stats on).
func runCount(t *testing.T, prog *ebpf.Program) uint64 {
	t.Helper()
	st, err := prog.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.RunCount
}

// TestWalkNoStats: with WalkNoStats (neither -x nor -r) the walk still
// reports every entry, with zero tcp_sock values (none read); without it
// the same socket's values are there.
func TestWalkNoStats(t *testing.T) {
	nstest.RequireRoot(t)
	sk := realSocket(t)
	for _, noStats := range []bool{false, true} {
		p, err := Load(Options{MaxConns: 64, WalkNoStats: noStats})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.attachSampler(); err != nil {
			t.Fatal(err)
		}
		set := connNwConnSet{}
		set.Sk[3] = sk
		if err := p.Coll.Maps["nw_conns"].Update(uint32(5*ways+3), &connNwConn{EstNs: 1, Netns: 77}, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
		if err := p.Coll.Maps["nw_conn_keys"].Update(uint32(5), &set, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := p.Sample(func(got uint64, c *event.Conn, st *event.Stats) {
			n++
			if got != sk || c.Netns != 77 {
				t.Errorf("noStats=%v: %#x netns %d, want %#x netns 77", noStats, got, c.Netns, sk)
			}
			if (*st == event.Stats{}) != noStats {
				t.Errorf("noStats=%v: stats %+v", noStats, *st)
			}
		}); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("noStats=%v: %d records, want 1", noStats, n)
		}
	}
}
