package metrics

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// The connection metrics' help texts (Records and ConnAgg: dashboards
// depend on them).
const (
	connOpenedHelp = "TCP connections established (open records), by network namespace, side and port class (server: local port, client: remote port)."
	connClosedHelp = "TCP connections closed (close records), by network namespace, side and port class."
	connActiveHelp = "TCP connections open now (found at start + opened - closed), by network namespace, side and port class."
)

// ConnAggSource is the kernel's connection counts (conn.Probe.ConnAgg):
// fn is called for every key, port being the server's port (0: a port
// without a class of its own); opened and closed since the start,
// existing the connections open before it that are tracked (their close
// counts in closed). A label set may come in several calls: they add up.
type ConnAggSource interface {
	ConnAgg(fn func(netns uint32, server bool, port uint16, opened, closed, existing uint64)) error
}

// ConnAgg is the connection metrics (connections_opened_total,
// connections_closed_total, connections_active) read from the kernel on
// each scrape: same names, help texts and labels as Records' (which leaves
// them out when On.KernelConns). Nothing is counted per connection in user
// space.
type ConnAgg struct {
	src                 ConnAggSource
	ports               *PortClasses
	opened, closed, act *prometheus.Desc
	mu                  sync.Mutex        // scrapes may run concurrently
	netns               map[uint32]string // as Records: at most MaxNetns, then "other"
}

// NewConnAgg: ports are the port classes (the kernel's must be the same
// or finer: labels are made here).
func NewConnAgg(src ConnAggSource, ports *PortClasses) *ConnAgg {
	l := []string{"netns", "side", "port"}
	return &ConnAgg{src: src, ports: ports, netns: map[uint32]string{},
		opened: prometheus.NewDesc(Namespace+"_connections_opened_total", connOpenedHelp, l, nil),
		closed: prometheus.NewDesc(Namespace+"_connections_closed_total", connClosedHelp, l, nil),
		act:    prometheus.NewDesc(Namespace+"_connections_active", connActiveHelp, l, nil),
	}
}

func (c *ConnAgg) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.opened
	ch <- c.closed
	ch <- c.act
}

type connLabels struct {
	netns string
	side  string
	port  string
}

type connCounts struct {
	opened, closed, existing uint64
}

func (c *ConnAgg) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := map[connLabels]*connCounts{}
	err := c.src.ConnAgg(func(netns uint32, server bool, port uint16, opened, closed, existing uint64) {
		ns, ok := c.netns[netns]
		if !ok {
			ns = "other"
			if len(c.netns) < MaxNetns {
				ns = strconv.FormatUint(uint64(netns), 10)
				c.netns[netns] = ns
			}
		}
		k := connLabels{ns, side(server), c.ports.Class(port)}
		s := sum[k]
		if s == nil {
			s = new(connCounts)
			sum[k] = s
		}
		s.opened += opened
		s.closed += closed
		s.existing += existing
	})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.opened, err)
		return
	}
	for k, s := range sum {
		ch <- prometheus.MustNewConstMetric(c.opened, prometheus.CounterValue, float64(s.opened), k.netns, k.side, k.port)
		ch <- prometheus.MustNewConstMetric(c.closed, prometheus.CounterValue, float64(s.closed), k.netns, k.side, k.port)
		// never negative: a scrape may see a close before the start-up
		// walk has counted its connection as existing
		active := float64(0)
		if s.existing+s.opened > s.closed {
			active = float64(s.existing + s.opened - s.closed)
		}
		ch <- prometheus.MustNewConstMetric(c.act, prometheus.GaugeValue, active, k.netns, k.side, k.port)
	}
}
