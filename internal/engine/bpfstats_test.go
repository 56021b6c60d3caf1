package engine

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/testsupport/cpuop"
)

// The batch lookup sums what a lookup per counter summed, on a per-CPU
// array like nw_stats.
func TestStatReaderBatch(t *testing.T) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: event.StatMax})
	if err != nil {
		t.Skipf("per-CPU array: %v (needs root)", err)
	}
	defer m.Close()
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	var want [event.StatMax]uint64
	for k := uint32(0); k < event.StatMax; k++ {
		per := make([]uint64, ncpu)
		for c := range per {
			per[c] = uint64(k)*1000 + uint64(c)*7 + 1
			want[k] += per[c]
		}
		if err := m.Put(k, per); err != nil {
			t.Fatal(err)
		}
	}
	var s statReader
	for i := 0; i < 2; i++ { // the first call sets up, the next reuses
		var got [event.StatMax]uint64
		s.read(m, &got)
		if got != want {
			t.Fatalf("call %d: batch sums %v, want %v", i, got, want)
		}
	}
	if !s.batch {
		t.Error("batch lookups not used")
	}
	if n := testing.AllocsPerRun(20, func() { var got [event.StatMax]uint64; s.read(m, &got) }); n > 4 { // the cursor and the keys buffer; a lookup per counter made hundreds
		t.Errorf("%v allocations per read", n)
	}
	fb := statReader{tried: true} // the fallback: a lookup per counter
	var got [event.StatMax]uint64
	fb.read(m, &got)
	if got != want {
		t.Fatalf("per-counter sums %v, want %v", got, want)
	}
}

// BenchmarkStatReader: one read of nw_stats's 64 counters, batch lookup
// against a lookup per counter (what bpfStats did), twice a second.
func BenchmarkStatReader(b *testing.B) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: event.StatMax})
	if err != nil {
		b.Skipf("per-CPU array: %v (needs root)", err)
	}
	defer m.Close()
	for _, batch := range []bool{true, false} {
		name := "batch"
		if !batch {
			name = "per-counter"
		}
		b.Run(name, func(b *testing.B) {
			s := statReader{tried: !batch}
			var out [event.StatMax]uint64
			b.ReportAllocs()
			defer cpuop.PerOp(b)()
			for b.Loop() {
				s.read(m, &out)
			}
		})
	}
}
