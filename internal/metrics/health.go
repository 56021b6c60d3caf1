package metrics

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry is a registry with the Go runtime and process collectors
// (process_resident_memory_bytes is netwatcher's RSS).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	return reg
}

// Hook is one hook boundary a concern tried to attach.
type Hook struct {
	Concern, Boundary string
	Kind              string // of the candidate attached ("tp_btf", "raw_tp", ...); "" when missing
	Attached          bool
}

// ConcernState: a concern of the run and whether it runs (a concern that
// failed to load or attach is "feature unavailable").
type ConcernState struct {
	Name string
	Up   bool
}

// Stats are the pipeline-owned totals of the exit stats, published once a
// second (Health.SetStats).
type Stats struct {
	// Lost: the exit stats' loss counters (lost_ring_full,
	// lost_queue_full, conn_table_full, pkt_table_full, closed_evicted,
	// undecodable, untracked_errors).
	Lost map[string]uint64
	// Counters: every other counter of the exit stats by its name there
	// (the concerns' Counters(), files' lost lines, ...).
	Counters map[string]uint64
	// Connections: connections in the pipeline's table.
	Connections int
}

// Health is netwatcher's own health: records handled, every loss counter
// of the exit stats, hooks, BPF map memory. The process collector of
// NewRegistry adds the RSS.
type Health struct {
	events   func() uint64
	hooks    []Hook
	concerns []ConcernState
	stats    atomic.Pointer[Stats]

	dEvents, dLost, dStats, dConns, dHook, dMissing, dUp, dMapBytes, dMaps *prometheus.Desc
}

// NewHealth: events reads the count of ring records read (any goroutine).
func NewHealth(events func() uint64, concerns []ConcernState, hooks []Hook) *Health {
	n := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(Namespace+"_"+name, help, labels, nil)
	}
	return &Health{events: events, hooks: dedupHooks(hooks), concerns: concerns,
		dEvents:   n("events_total", "Ring records read from the kernel (both rings)."),
		dLost:     n("lost_events_total", "Records or connections lost, by the exit stats' counter name (lost_ring_full, lost_queue_full, conn_table_full, pkt_table_full, closed_evicted, undecodable, untracked_errors).", "counter"),
		dStats:    n("stats_total", "Every other counter of the exit stats, by its name there (concerns' table-full and unmatched counts, lines lost by full disks, ...).", "name"),
		dConns:    n("tracked_connections", "Connections in netwatcher's table (open ones, and closed ones kept by -a)."),
		dHook:     n("hook_attached", "1 for each hook boundary attached, with the kind of the candidate used.", "concern", "boundary", "kind"),
		dMissing:  n("hook_missing", "1 for each hook boundary a concern could not attach (no usable candidate on this kernel).", "concern", "boundary"),
		dUp:       n("concern_up", "1 when a concern of the run loaded and attached, 0 when it is unavailable on this kernel.", "concern"),
		dMapBytes: n("bpf_map_memory_bytes", "Memory of netwatcher's BPF maps as the kernel accounts it (sum of the maps' memlock in /proc/self/fdinfo)."),
		dMaps:     n("bpf_maps", "BPF maps netwatcher holds."),
	}
}

// dedupHooks keeps one series per label set: a boundary attached twice
// (or tried, then attached by a retry) is one hook_attached series, and
// not missing.
func dedupHooks(hooks []Hook) []Hook {
	type key struct{ concern, boundary, kind string }
	seen := map[key]bool{}
	attached := map[key]bool{}
	for _, h := range hooks {
		if h.Attached {
			attached[key{h.Concern, h.Boundary, ""}] = true
		}
	}
	var out []Hook
	for _, h := range hooks {
		k := key{h.Concern, h.Boundary, h.Kind}
		if seen[k] || (!h.Attached && attached[key{h.Concern, h.Boundary, ""}]) {
			continue
		}
		seen[k] = true
		out = append(out, h)
	}
	return out
}

// SetStats publishes the pipeline's totals (called by the pipeline).
func (h *Health) SetStats(s *Stats) {
	if h != nil {
		h.stats.Store(s)
	}
}

func (h *Health) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{h.dEvents, h.dLost, h.dStats, h.dConns, h.dHook, h.dMissing, h.dUp, h.dMapBytes, h.dMaps} {
		ch <- d
	}
}

func (h *Health) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(h.dEvents, prometheus.CounterValue, float64(h.events()))
	if s := h.stats.Load(); s != nil {
		for k, v := range s.Lost {
			ch <- prometheus.MustNewConstMetric(h.dLost, prometheus.CounterValue, float64(v), k)
		}
		for k, v := range s.Counters {
			ch <- prometheus.MustNewConstMetric(h.dStats, prometheus.CounterValue, float64(v), k)
		}
		ch <- prometheus.MustNewConstMetric(h.dConns, prometheus.GaugeValue, float64(s.Connections))
	}
	for _, k := range h.hooks {
		if k.Attached {
			ch <- prometheus.MustNewConstMetric(h.dHook, prometheus.GaugeValue, 1, k.Concern, k.Boundary, k.Kind)
		} else {
			ch <- prometheus.MustNewConstMetric(h.dMissing, prometheus.GaugeValue, 1, k.Concern, k.Boundary)
		}
	}
	for _, c := range h.concerns {
		v := 0.0
		if c.Up {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(h.dUp, prometheus.GaugeValue, v, c.Name)
	}
	if bytes, n, err := BPFMapMemory(); err == nil {
		ch <- prometheus.MustNewConstMetric(h.dMapBytes, prometheus.GaugeValue, float64(bytes))
		ch <- prometheus.MustNewConstMetric(h.dMaps, prometheus.GaugeValue, float64(n))
	}
}

// BPFMapMemory sums the memlock of the BPF maps this process holds (each
// map once, however many descriptors refer to it), from
// /proc/self/fdinfo: the kernel's own accounting of each map's memory.
func BPFMapMemory() (bytes uint64, maps int, err error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, 0, err
	}
	seen := map[uint64]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil || target != "anon_inode:bpf-map" {
			continue
		}
		id, mem, ok := mapInfo(filepath.Join("/proc/self/fdinfo", fd.Name()))
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		bytes += mem
	}
	return bytes, len(seen), nil
}

func mapInfo(path string) (id, memlock uint64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	var haveID bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, found := bytes.Cut(sc.Bytes(), []byte(":"))
		if !found {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			continue
		}
		switch string(k) {
		case "map_id":
			id, haveID = n, true
		case "memlock":
			memlock = n
		}
	}
	return id, memlock, haveID
}
