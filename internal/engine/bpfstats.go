package engine

import (
	"errors"

	"github.com/cilium/ebpf"

	"github.com/netwatcher/netwatcher/internal/event"
)

// statReader reads the nw_stats per-CPU array (event.StatMax counters of
// 8 bytes) in one batch lookup into buffers it keeps. A Lookup per counter
// was 64 system calls, each with a value buffer allocated and unmarshalled
// by reflection, twice a second (exit stats, loss warnings): ~20 ms of the
// tool's CPU in a 3 s request/response run (issue 17).
type statReader struct {
	keys  []uint32
	vals  []uint64 // StatMax * possible CPUs
	ncpu  int
	batch bool // batch lookups work (set after the first try)
	tried bool
}

// read sums the per-CPU values of m into out.
func (s *statReader) read(m *ebpf.Map, out *[event.StatMax]uint64) {
	if !s.tried {
		s.tried = true
		if n, err := ebpf.PossibleCPU(); err == nil && m.ValueSize() == 8 && m.MaxEntries() >= event.StatMax {
			s.ncpu = n
			s.keys = make([]uint32, event.StatMax)
			s.vals = make([]uint64, event.StatMax*n)
			s.batch = true
		}
	}
	if s.batch {
		var cursor ebpf.MapBatchCursor
		n, err := m.BatchLookup(&cursor, s.keys, s.vals, nil)
		if (err == nil || errors.Is(err, ebpf.ErrKeyNotExist)) && n == event.StatMax {
			for i, k := range s.keys {
				if k >= event.StatMax {
					continue
				}
				for _, v := range s.vals[i*s.ncpu : (i+1)*s.ncpu] {
					out[k] += v
				}
			}
			return
		}
		s.batch = false // no batch lookups here (before 5.6): one lookup per counter
	}
	var per []uint64
	for i := uint32(0); i < event.StatMax; i++ {
		if err := m.Lookup(i, &per); err != nil {
			continue
		}
		for _, v := range per {
			out[i] += v
		}
	}
}
