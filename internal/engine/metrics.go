package engine

import (
	"context"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/metrics"
)

// MetricsSource is implemented by a concern that exposes Prometheus
// metrics (--metrics-addr). Collectors is called once, after Attach, only
// when metrics are on; Collect runs on the HTTP server's goroutines,
// concurrently with the readers and the pipeline (see internal/metrics).
type MetricsSource interface {
	Collectors() []prometheus.Collector
}

// hookLister: a concern embedding kernel.Live (its hooks, for the health
// metrics).
type hookLister interface {
	Attached() []*kernel.Attached
	Missing() []string
}

// startMetrics serves the metrics of the run (--metrics-addr) until stop:
// the pipeline's Records (p.met) and Health (p.health), every live
// concern's collectors. all: the concerns asked for, live: those running.
func startMetrics(o Options, live []Concern, p *pipeline, ctr *Counters) (stop func(), err error) {
	cfg := o.Cfg
	if cfg.MetricsAddr == "" {
		return func() {}, nil
	}
	reg := metrics.NewRegistry()
	var states []metrics.ConcernState
	var hooks []metrics.Hook
	for _, c := range o.Concerns {
		up := c == o.Concerns[0] || slices.Contains(live, c)
		states = append(states, metrics.ConcernState{Name: c.Name(), Up: up})
		if h, ok := c.(hookLister); ok {
			for _, a := range h.Attached() {
				hooks = append(hooks, metrics.Hook{Concern: c.Name(), Boundary: a.Boundary, Kind: a.Cand.Kind.String(), Attached: true})
			}
			for _, b := range h.Missing() {
				hooks = append(hooks, metrics.Hook{Concern: c.Name(), Boundary: b})
			}
		}
	}
	p.health = metrics.NewHealth(ctr.Events.Load, states, hooks)
	ports := metrics.NewPortClasses(servicePorts(cfg)...)
	kconns := p.cp != nil && p.cp.ConnAggOn() // the kernel counts connections (Run: SetConnAgg)
	p.met = metrics.NewRecords(ports, metrics.On{KernelConns: kconns,
		Retrans: cfg.Retrans, Rejected: cfg.Err, Drops: cfg.DropReason, Rsts: cfg.Rst, Handshake: cfg.State, Rtt: cfg.Rtt,
		Requests: [...]bool{metrics.HTTP: cfg.HTTP, metrics.DNS: cfg.DNS, metrics.MySQL: cfg.MySQL, metrics.Redis: cfg.Redis}})
	reg.MustRegister(p.health)
	reg.MustRegister(p.met.Collectors()...)
	if kconns {
		reg.MustRegister(metrics.NewConnAgg(p.cp, ports))
	}
	reg.MustRegister(p.timeloadCollectors()...) // -L (records_timeload.go)
	for _, c := range live {
		if ms, ok := c.(MetricsSource); ok {
			for _, col := range ms.Collectors() {
				if err := reg.Register(col); err != nil {
					o.Log.Warn("metrics of a concern not registered", "concern", c.Name(), "err", err)
				}
			}
		}
	}
	p.publishStats(ctr)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := metrics.Start(ctx, cfg.MetricsAddr, reg, o.Log)
	if err != nil {
		cancel()
		p.met, p.health = nil, nil
		return nil, err
	}
	return func() { cancel(); srv.Wait() }, nil
}

// servicePorts: the port classes besides 1..1023 (those of -R and -M,
// and their defaults).
func servicePorts(cfg *config.Config) []uint16 {
	return []uint16{metrics.MySQLPort, metrics.RedisPort, cfg.MySQLPort, cfg.RedisPort}
}

// publishStats hands the exit stats' totals to the health metrics (every
// second and at exit, on the pipeline goroutine).
func (p *pipeline) publishStats(ctr *Counters) {
	if p.health == nil {
		return
	}
	s := p.bpfStats()
	r, q, t := p.lost(ctr)
	p.health.SetStats(&metrics.Stats{
		Lost: map[string]uint64{"lost_ring_full": r, "lost_queue_full": q, "conn_table_full": t,
			"pkt_table_full": s[event.StatPktMapFull], "closed_evicted": p.table.Evicted,
			"undecodable": ctr.Undecodable.Load(), "untracked_errors": p.untrackedErrors,
			"bpf_recursion_misses": p.recursionMisses()},
		Counters:    p.extraCounters(),
		Connections: p.table.Len(),
	})
}

// episodeKind names a retransmission episode as the console does.
func episodeKind(r *event.RetransInfo) string {
	switch {
	case r.PreEst:
		return "syn"
	case r.CaState == event.CaLoss:
		return "timeout"
	}
	return "fast"
}
