// Package timeload finds latency anomalies in the layer times of TCP packet
// records (-L, --timeload): per connection, layer (MAC, IP, TCP) and
// direction an exponentially weighted moving average (EWMA) of the layer
// time, and an anomaly when a packet's layer time exceeds Factor times it.
//
// Rules (docs/features.md "Latency anomalies (-L)"):
//   - Warm-up: a connection's layer and direction is judged from its
//     Warmup-th sample on; before that its average is the plain mean of the
//     samples seen (no alert).
//   - EWMA: weight Alpha (1/32) per sample, each sample clamped to Clamp
//     (2) × the average (from the 4th sample on, in warm-up too): spikes
//     cannot inflate the baseline (a mean of a heavy-tailed layer time
//     would be dominated by them), a lasting shift still becomes the new
//     normal, after some tens of packets (×(1+Alpha) per packet: ~50
//     packets for a 10x shift at factor 5).
//   - Above: value > Factor × EWMA and value − EWMA ≥ MinExcessNs (a jump
//     of a few hundred ns is noise, not an anomaly).
//   - Anomaly: a packet above, with the Confirm-1 packets before it of the
//     same connection, layer and direction above too. A lone packet above
//     is jitter, not a slower path: an interrupt or a preemption in the
//     middle of a layer adds 10-50 µs to one packet (measured here: on a
//     steady veth flow whose rx ip_time has p50 1.9 µs, single packets of
//     20-50 µs several times a second on every layer); a path that got
//     slower makes every packet slow. Each further packet above in the
//     same run is an anomaly too.
//   - Rate limit: one alert per connection, layer and direction per Every
//     (1 s, packet time); the others are counted (Suppressed, carried by the
//     next alert) — every anomaly is counted in Counts either way.
//
// Why per connection, not host-wide: layer times differ by an order of
// magnitude between paths (loopback, veth, a NIC), so a host-wide average
// flags the slow paths forever and misses a fast flow that got slow; an
// operator's question is "this flow's IP layer suddenly takes 40x longer".
// The price is that a connection with fewer than Warmup packets in a
// direction is never judged, and memory per followed connection (~200
// bytes, at most MaxConns of them; connections idle for IdleNs are
// forgotten, closed ones at their close record).
//
// A Detector is used by one goroutine (the pipeline).
package timeload

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/metrics"
)

const (
	// DefaultFactor is --timeload-factor by default.
	DefaultFactor = 5.0
	// Warmup is the number of samples of a connection's layer and
	// direction before its packets are judged.
	Warmup = 100
	// Alpha is the EWMA's weight of a new sample.
	Alpha = 1.0 / 32
	// MinExcessNs: an anomaly is also at least this much above the EWMA.
	MinExcessNs = 10000
	// Confirm: packets above the threshold in a row that make an anomaly.
	Confirm = 4
	// Clamp: a sample is averaged in at most at Clamp x the average (from
	// its clampAfter-th sample on).
	Clamp      = 2.0
	clampAfter = 3
	// Every is the rate limit: one alert per connection, layer and
	// direction per this many ns of packet time.
	Every = uint64(1e9)
	// IdleNs: a connection without packets for this long is forgotten.
	IdleNs = uint64(30e9)
	// MaxConns bounds the connections followed at once; packets of others
	// are counted (Untracked), not judged.
	MaxConns = 65536
)

// Key names a connection as packet records do: its socket and the low 32
// bits of its establishment time.
type Key struct {
	Sock  uint64
	EstLo uint32
}

type state struct {
	ewma      [event.TimeLayers][2]float64
	n         [event.TimeLayers][2]uint64
	lastAlert [event.TimeLayers][2]uint64  // packet ts of the last alert (0: none)
	supp      [event.TimeLayers][2]uint64  // suppressed since the last alert
	run       [event.TimeLayers][2]uint32  // packets above in a row
	base      [event.TimeLayers][2]float64 // the EWMA before the run began
	seen      uint64                       // ts of the last packet
}

// Detector is the state of -L.
type Detector struct {
	Factor float64
	conns  map[Key]*state
	sweep  uint64 // ts of the last sweep of idle connections

	// Counts: anomalies per layer and direction ([1]: rx), reported or
	// suppressed.
	Counts [event.TimeLayers][2]uint64
	// Alerts: those reported; Suppressed: those the rate limit held back.
	Alerts, Suppressed uint64
	Untracked          uint64 // packets of connections beyond MaxConns

	metric [event.TimeLayers][2]prometheus.Counter // nil: metrics off
}

// New returns a detector with this factor (> 1).
func New(factor float64) *Detector {
	return &Detector{Factor: factor, conns: map[Key]*state{}}
}

// Observe judges one packet record: its layer times ns (MAC, IP, TCP) with
// the record's Missing bits, rx its direction, ts its time. The alerts it
// makes are written to out (at most one per layer); it returns how many.
func (d *Detector) Observe(k Key, ts uint64, rx bool, ns [event.TimeLayers]uint64, missing uint8, out *[event.TimeLayers]event.Anomaly) int {
	if missing&(event.MissingMac|event.MissingIP|event.MissingTCP) == event.MissingMac|event.MissingIP|event.MissingTCP {
		return 0
	}
	s := d.conns[k]
	if s == nil {
		if ts-d.sweep >= Every {
			d.sweepIdle(ts)
		}
		if len(d.conns) >= MaxConns {
			d.Untracked++
			return 0
		}
		s = &state{}
		d.conns[k] = s
	}
	s.seen = ts
	dir := 0
	if rx {
		dir = 1
	}
	n := 0
	for l := range event.TimeLayers {
		if missing&(1<<l) != 0 {
			continue
		}
		v := float64(ns[l])
		cnt := s.n[l][dir] + 1
		s.n[l][dir] = cnt
		avg := s.ewma[l][dir]
		x := v // averaged in: clamped to Clamp x the average once it has a few samples
		if cnt > clampAfter && x > Clamp*avg {
			x = Clamp * avg
		}
		if cnt <= Warmup {
			// the mean of the samples so far (a steady start for the
			// EWMA); then Alpha
			s.ewma[l][dir] = avg + (x-avg)/float64(cnt)
			continue
		}
		s.ewma[l][dir] = avg + Alpha*(x-avg)
		if v <= d.Factor*avg || v-avg < MinExcessNs {
			s.run[l][dir] = 0
			continue
		}
		// above
		if s.run[l][dir] == 0 {
			s.base[l][dir] = avg
		}
		if s.run[l][dir]++; s.run[l][dir] < Confirm {
			continue
		}
		d.Counts[l][dir]++
		if m := d.metric[l][dir]; m != nil {
			m.Inc()
		}
		if last := s.lastAlert[l][dir]; last != 0 && ts-last < Every {
			s.supp[l][dir]++
			d.Suppressed++
			continue
		}
		out[n] = event.Anomaly{Layer: l, Rx: rx, ValueNs: ns[l], EWMANs: s.base[l][dir], Factor: d.Factor,
			Samples: cnt, Run: s.run[l][dir], Suppressed: s.supp[l][dir]}
		n++
		s.lastAlert[l][dir] = max(ts, 1)
		s.supp[l][dir] = 0
		d.Alerts++
	}
	return n
}

// MetricName is the counter of anomalies (--metrics-addr).
const MetricName = metrics.Namespace + "_anomalies_total"

// Collector makes netwatcher_anomalies_total{layer,direction}: every
// anomaly, reported or suppressed (Counts), from then on. Call it before
// the detector is used (the engine does, at start, when metrics are on);
// Observe then adds to it (an atomic add per anomaly, safe against
// concurrent scrapes). Labels: layer mac/ip/tcp, direction rx/tx.
func (d *Detector) Collector() prometheus.Collector {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricName,
		Help: "Latency anomalies (-L): packets whose layer time exceeded --timeload-factor x its connection's moving average of that layer and direction, 4 in a row, reported or suppressed by the rate limit."},
		[]string{"layer", "direction"})
	for l := range event.TimeLayers {
		for dir, name := range [2]string{"tx", "rx"} {
			d.metric[l][dir] = vec.WithLabelValues(l.String(), name)
		}
	}
	return vec
}

// Forget drops a connection's state (its close record).
func (d *Detector) Forget(k Key) { delete(d.conns, k) }

// Len is the number of connections followed.
func (d *Detector) Len() int { return len(d.conns) }

func (d *Detector) sweepIdle(ts uint64) {
	d.sweep = ts
	for k, s := range d.conns {
		if ts-s.seen > IdleNs {
			delete(d.conns, k)
		}
	}
}

// Counters are the exit stats of -L.
func (d *Detector) Counters() map[string]uint64 {
	m := map[string]uint64{
		"timeload_alerts":     d.Alerts,
		"timeload_suppressed": d.Suppressed,
		"timeload_untracked":  d.Untracked,
	}
	for l := range event.TimeLayers {
		for dir, name := range [2]string{"tx", "rx"} {
			m["timeload_anomalies_"+l.String()+"_"+name] = d.Counts[l][dir]
		}
	}
	return m
}
