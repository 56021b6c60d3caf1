package conn

import (
	"io"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// TestSumWalkArithmetic: the counts are the closed connections' (per-CPU
// nw_conn_sum, key 0) plus the walk's (the open ones) minus the adopted
// ones' (key 1), and never go back (a walk that misses a connection
// closing under it).
func TestSumWalkArithmetic(t *testing.T) {
	nstest.RequireRoot(t)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	ctr := func(typ ebpf.MapType, n uint32) *ebpf.Map {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: typ, KeySize: 4, ValueSize: uint32(unsafe.Sizeof(SumCounts{})), MaxEntries: n})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	w := &SumWalk{sum: ctr(ebpf.PerCPUArray, 2), acc: ctr(ebpf.Array, 1)}
	closed := make([]SumCounts, ncpu)
	for i := range closed {
		closed[i].SegsIn, closed[i].BytesOut = 5, 100
	}
	adopted := make([]SumCounts, ncpu)
	adopted[0].SegsIn = 2
	if err := w.sum.Put(uint32(0), closed); err != nil {
		t.Fatal(err)
	}
	if err := w.sum.Put(ConnSumAdopted, adopted); err != nil {
		t.Fatal(err)
	}
	open := SumCounts{SegsIn: 4, BytesOut: 7}
	w.run = func() error { return w.acc.Put(uint32(0), open) }
	n := uint64(ncpu)
	got, err := w.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if got.SegsIn != 5*n-2+4 || got.BytesOut != 100*n+7 || got.SegsOut != 0 || got.BytesIn != 0 {
		t.Errorf("counts %+v, want segs_in %d bytes_out %d", got, 5*n-2+4, 100*n+7)
	}
	// the open connection closed under the next walk: in neither map
	open = SumCounts{}
	if again, err := w.Counts(); err != nil || again != got {
		t.Errorf("after a missed close: %+v (%v), want %+v (totals never go back)", again, err, got)
	}
}

// TestSumWalkCounts: on both table variants the walk loads on the
// connection object's shared maps and counts the bytes of open tracked
// connections, and still counts them once they closed (nw_conn_sum).
// Other tracked connections of the host may add to the totals: lower
// bounds.
func TestSumWalkCounts(t *testing.T) {
	nstest.RequireRoot(t)
	for _, table := range []Table{TableSets, TableHash} {
		t.Run(table.String(), func(t *testing.T) {
			p := attached(t, Options{Table: table, ConnSum: true, MaxConns: 1024})
			w, err := LoadSumWalk(&config.Config{}, p.SharedMaps())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(w.Close)
			if _, err := w.Counts(); err == nil {
				t.Error("counts before Attach")
			}
			if err := w.Attach(); err != nil {
				t.Fatal(err)
			}
			before, err := w.Counts()
			if err != nil {
				t.Fatal(err)
			}
			const pairs, size = 10, 10000
			ns := nstest.NewNS(t)
			conns := loopbackPairs(t, ns, pairs) // client, accepted, ...
			buf := make([]byte, size)
			for i := 0; i < len(conns); i += 2 {
				if _, err := conns[i].Write(buf); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(conns[i+1], buf); err != nil {
					t.Fatal(err)
				}
			}
			check := func(when string) {
				t.Helper()
				got, err := w.Counts()
				if err != nil {
					t.Fatal(err)
				}
				// each byte sent by a client and received by its server
				if d := got.BytesOut - before.BytesOut; d < pairs*size {
					t.Errorf("%s: bytes out +%d, want >= %d", when, d, pairs*size)
				}
				if d := got.BytesIn - before.BytesIn; d < pairs*size {
					t.Errorf("%s: bytes in +%d, want >= %d", when, d, pairs*size)
				}
				if got.SegsOut-before.SegsOut < pairs || got.SegsIn-before.SegsIn < pairs {
					t.Errorf("%s: segments in +%d out +%d, want >= %d", when, got.SegsIn-before.SegsIn, got.SegsOut-before.SegsOut, pairs)
				}
			}
			check("open")
			for _, c := range conns {
				c.Close()
			}
			waitClosed(t, ns)
			check("closed")
		})
	}
}

// waitClosed waits until every TCP connection of ns is closed or in
// TIME-WAIT (both sides have reached TCP_CLOSE: the state hook has
// counted them; closes are asynchronous to Close).
func waitClosed(t *testing.T, ns *nstest.NS) {
	t.Helper()
	for range 100 {
		if strings.TrimSpace(ns.Run(t, "ss", "-Htn", "state", "connected", "exclude", "time-wait")) == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("connections still established")
}
