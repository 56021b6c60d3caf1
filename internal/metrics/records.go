package metrics

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netwatcher/netwatcher/internal/event"
)

// MaxNetns bounds the netns label: past this many distinct namespaces,
// the others share the value "other".
const MaxNetns = 1024

// maxRttConns bounds the connections whose interval RTT samples are
// remembered until their close record (see Rtt).
const maxRttConns = 1 << 16

// LatencyBuckets are the upper bounds of the user-space latency
// histograms (seconds): 10 µs * 2^k, k = 0..21 (10 µs .. ~21 s).
var LatencyBuckets = prometheus.ExponentialBuckets(10e-6, 2, 22)

// Request protocols (the protocol label).
const (
	HTTP = iota
	DNS
	MySQL
	Redis
	nProtocols
)

var protocolNames = [nProtocols]string{"http", "dns", "mysql", "redis"}

// Records are the metrics made from ring records: connections, retransmits,
// rejected segments and drops by reason, resets, handshake, RTT and request
// latency. The pipeline goroutine calls the methods; scrapes run
// concurrently (see the package doc). A nil *Records is metrics off.
type Records struct {
	ports *PortClasses
	on    On

	opened, closed *prometheus.CounterVec
	active         *prometheus.GaugeVec
	conns          map[connKey]*connSeries
	netns          map[uint32]string

	episodes *prometheus.CounterVec
	segs     prometheus.Counter
	episode  map[string]prometheus.Counter

	rejected, drops, rsts *prometheus.CounterVec
	rejectedBy            map[string]prometheus.Counter
	dropsBy               map[dropKey]prometheus.Counter
	rstsBy                map[rstKey]prometheus.Counter

	handshake *prometheus.HistogramVec
	hs        [2]prometheus.Observer // client, server

	requests *prometheus.HistogramVec
	req      [nProtocols][2]prometheus.Observer

	rtt     *log2Hist
	rttSeen map[rttKey]*rttSeen
}

type connKey struct {
	netns  uint32
	server bool
	port   uint16 // PortClasses.Key
}

type connSeries struct {
	opened, closed prometheus.Counter
	active         prometheus.Gauge
}

type dropKey struct {
	reason string
	proto  uint8
}

type rstKey struct {
	rx    bool
	state uint8
}

type rttKey struct {
	sock  uint64
	estLo uint32
}

// rttSeen: what a connection's interval records held.
type rttSeen struct {
	b     [event.RttSlots]uint32
	sumUs uint64
}

// On says which concerns are on: only their metrics are registered (the
// connection metrics always are: here, or by ConnAgg when KernelConns).
type On struct {
	Retrans, Rejected, Drops, Rsts, Handshake, Rtt bool
	Requests                                       [nProtocols]bool // by HTTP, DNS, MySQL, Redis

	// KernelConns: the kernel counts the connections (ConnAgg): the
	// connection methods do nothing, the families are ConnAgg's.
	KernelConns bool
}

// NewRecords: ports are the port classes of the connection metrics.
func NewRecords(ports *PortClasses, on On) *Records {
	n := func(name string) string { return Namespace + "_" + name }
	connLabels := []string{"netns", "side", "port"}
	r := &Records{ports: ports, on: on,
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: n("connections_opened_total"),
			Help: connOpenedHelp}, connLabels),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: n("connections_closed_total"),
			Help: connClosedHelp}, connLabels),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: n("connections_active"),
			Help: connActiveHelp}, connLabels),
		conns: map[connKey]*connSeries{}, netns: map[uint32]string{},
		episodes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: n("tcp_retransmit_episodes_total"),
			Help: "TCP retransmission episodes (-r): fast (fast recovery), timeout (RTO loss), syn (a SYN or SYN-ACK retransmitted)."}, []string{"kind"}),
		segs: prometheus.NewCounter(prometheus.CounterOpts{Name: n("tcp_retransmitted_segments_total"),
			Help: "TCP segments retransmitted (-r), as the kernel counts TcpRetransSegs."}),
		episode: map[string]prometheus.Counter{},
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: n("tcp_rejected_segments_total"),
			Help: "TCP segments of tracked connections the kernel rejected (-e), by reason (err.log records)."}, []string{"reason"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: n("packet_drops_total"),
			Help: "Packets the kernel dropped, any protocol (-k), by skb_drop_reason name and IP protocol (drop.log records)."}, []string{"reason", "protocol"}),
		rsts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: n("tcp_resets_total"),
			Help: "TCP resets (--rst) sent and received, by the TCP state of the connection (none: sent for no socket)."}, []string{"direction", "state"}),
		rejectedBy: map[string]prometheus.Counter{}, dropsBy: map[dropKey]prometheus.Counter{}, rstsBy: map[rstKey]prometheus.Counter{},
		handshake: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: n("tcp_handshake_seconds"),
			Help: "TCP handshake latency (-P): client SYN_SENT -> ESTABLISHED, server SYN_RECV -> ESTABLISHED.", Buckets: LatencyBuckets}, []string{"side"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: n("request_duration_seconds"),
			Help: "Request -> response latency of the requests answered, by protocol (-i http, -N dns, -M mysql, -R redis) and the side that saw them.", Buckets: LatencyBuckets}, []string{"protocol", "side"}),
		rtt: newLog2Hist(prometheus.NewDesc(n("tcp_rtt_seconds"),
			"The kernel's TCP RTT samples (--rtt), all connections, in the kernel's log2 buckets.", nil, nil), 1e-6),
		rttSeen: map[rttKey]*rttSeen{},
	}
	// the series of what is on exist from the start (at 0)
	for i, s := range []string{"client", "server"} {
		r.hs[i] = r.handshake.WithLabelValues(s)
		for p := range nProtocols {
			if on.Requests[p] {
				r.req[p][i] = r.requests.WithLabelValues(protocolNames[p], s)
			}
		}
	}
	for _, k := range []string{"fast", "timeout", "syn"} {
		r.episode[k] = r.episodes.WithLabelValues(k)
	}
	return r
}

// Collectors are what the registry needs: the families of what is on.
func (r *Records) Collectors() []prometheus.Collector {
	var cs []prometheus.Collector
	if !r.on.KernelConns {
		cs = append(cs, r.opened, r.closed, r.active)
	}
	for _, c := range []struct {
		on bool
		c  []prometheus.Collector
	}{{r.on.Retrans, []prometheus.Collector{r.episodes, r.segs}}, {r.on.Rejected, []prometheus.Collector{r.rejected}},
		{r.on.Drops, []prometheus.Collector{r.drops}}, {r.on.Rsts, []prometheus.Collector{r.rsts}},
		{r.on.Handshake, []prometheus.Collector{r.handshake}}, {r.on.Rtt, []prometheus.Collector{r.rtt}},
		{r.on.Requests != [nProtocols]bool{}, []prometheus.Collector{r.requests}}} {
		if c.on {
			cs = append(cs, c.c...)
		}
	}
	return cs
}

func side(server bool) string {
	if server {
		return "server"
	}
	return "client"
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (r *Records) conn(c *event.Conn) *connSeries {
	port := c.Dst.Port()
	if c.IsServer {
		port = c.Src.Port()
	}
	k := connKey{c.Netns, c.IsServer, r.ports.Key(port)}
	s := r.conns[k]
	if s == nil {
		ns, ok := r.netns[c.Netns]
		if !ok {
			ns = "other"
			if len(r.netns) < MaxNetns {
				ns = strconv.FormatUint(uint64(c.Netns), 10)
				r.netns[c.Netns] = ns
			}
		}
		l := []string{ns, side(c.IsServer), r.ports.Class(port)}
		s = &connSeries{r.opened.WithLabelValues(l...), r.closed.WithLabelValues(l...), r.active.WithLabelValues(l...)}
		r.conns[k] = s
	}
	return s
}

// ConnOpened: an open record.
func (r *Records) ConnOpened(c *event.Conn) {
	if r == nil || r.on.KernelConns {
		return
	}
	s := r.conn(c)
	s.opened.Inc()
	s.active.Inc()
}

// ConnExisting: a connection open before the start (found by the walk).
func (r *Records) ConnExisting(c *event.Conn) {
	if r == nil || r.on.KernelConns {
		return
	}
	r.conn(c).active.Inc()
}

// ConnClosed: a close record.
func (r *Records) ConnClosed(c *event.Conn) {
	if r == nil || r.on.KernelConns {
		return
	}
	s := r.conn(c)
	s.closed.Inc()
	s.active.Dec()
}

// RetransEpisode: a fast recovery ("fast"), RTO loss ("timeout") or
// retransmitted SYN ("syn") episode.
func (r *Records) RetransEpisode(kind string) {
	if r == nil {
		return
	}
	c := r.episode[kind]
	if c == nil {
		c = r.episodes.WithLabelValues(kind)
		r.episode[kind] = c
	}
	c.Inc()
}

// RetransSegments: a retransmit record of n segments.
func (r *Records) RetransSegments(n uint16) {
	if r == nil {
		return
	}
	r.segs.Add(float64(n))
}

// Rejected: an -e record (a tracked connection's rejected segment).
func (r *Records) Rejected(reason string) {
	if r == nil {
		return
	}
	c := r.rejectedBy[reason]
	if c == nil {
		c = r.rejected.WithLabelValues(reason)
		r.rejectedBy[reason] = c
	}
	c.Inc()
}

// ProtoName is the protocol label of a drop.
func ProtoName(p uint8, family uint16) string {
	switch {
	case family == 0:
		return "none"
	case p == event.ProtoTCP:
		return "tcp"
	case p == event.ProtoUDP:
		return "udp"
	case p == event.ProtoICMP:
		return "icmp"
	case p == event.ProtoICMPv6:
		return "icmpv6"
	}
	return "other"
}

// Drop: a -k record.
func (r *Records) Drop(d *event.DropInfo) {
	if r == nil {
		return
	}
	proto := d.Proto
	if d.Family == 0 {
		proto = 255 // "none"
	}
	k := dropKey{d.Name, proto}
	c := r.dropsBy[k]
	if c == nil {
		name := d.Name
		if name == "" {
			name = "reason " + strconv.Itoa(int(d.Reason)) // as drop.log
		}
		c = r.drops.WithLabelValues(name, ProtoName(d.Proto, d.Family))
		r.dropsBy[k] = c
	}
	c.Inc()
}

// Rst: a --rst record.
func (r *Records) Rst(x *event.RstInfo) {
	if r == nil {
		return
	}
	k := rstKey{x.Rx, x.State}
	c := r.rstsBy[k]
	if c == nil {
		dir, state := "sent", "none"
		if x.Rx {
			dir = "received"
		}
		if x.State != 0 {
			state = event.TCPStateName(x.State)
		}
		c = r.rsts.WithLabelValues(dir, state)
		r.rstsBy[k] = c
	}
	c.Inc()
}

// State: a -P record (handshakes are observed).
func (r *Records) State(s *event.StateInfo) {
	if r == nil || !s.Handshake() || s.InOldNs == 0 {
		return
	}
	r.hs[b2i(s.Old == event.TCPSynRecv)].Observe(float64(s.InOldNs) / 1e9)
}

// Request: a request of protocol (HTTP, DNS, ...) answered after ns.
func (r *Records) Request(protocol int, server bool, ns uint64) {
	if r == nil || r.req[protocol][0] == nil {
		return
	}
	r.req[protocol][b2i(server)].Observe(float64(ns) / 1e9)
}

// Rtt: an --rtt record (sock: the record's socket). Interval records
// (Close false) hold the samples since the last one; the close record
// holds the connection's whole life: only what the interval records did
// not have is added then.
func (r *Records) Rtt(sock uint64, x *event.RttInfo) {
	if r == nil {
		return
	}
	k := rttKey{sock, x.EstLo}
	seen := r.rttSeen[k]
	if x.Close {
		delete(r.rttSeen, k)
		add, sum := x.Buckets, x.SumUs
		if seen != nil {
			for i := range add {
				add[i] -= min(add[i], seen.b[i])
			}
			sum -= min(sum, seen.sumUs)
		}
		r.rtt.add(&add, float64(sum))
		return
	}
	if seen == nil {
		if len(r.rttSeen) >= maxRttConns {
			clear(r.rttSeen) // closes lost: their connections may count twice
		}
		seen = new(rttSeen)
		r.rttSeen[k] = seen
	}
	for i, c := range x.Buckets {
		seen.b[i] += c
	}
	seen.sumUs += x.SumUs
	r.rtt.add(&x.Buckets, float64(x.SumUs))
}

// log2Hist is a histogram in the kernel's log2 buckets, summed in user
// space (atomics: the pipeline adds, scrapes read).
type log2Hist struct {
	desc    *prometheus.Desc
	unit    float64
	buckets [event.RttSlots]atomic.Uint64
	sumBits atomic.Uint64 // sum in units, as float64 bits (one writer)
}

func newLog2Hist(d *prometheus.Desc, unit float64) *log2Hist { return &log2Hist{desc: d, unit: unit} }

func (h *log2Hist) add(b *[event.RttSlots]uint32, sum float64) {
	for i, c := range b {
		if c != 0 {
			h.buckets[i].Add(uint64(c))
		}
	}
	h.sumBits.Store(f64bits(f64frombits(h.sumBits.Load()) + sum))
}

func (h *log2Hist) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

func (h *log2Hist) Collect(ch chan<- prometheus.Metric) {
	var counts [event.RttSlots]uint64
	for i := range counts {
		counts[i] = h.buckets[i].Load()
	}
	if m, err := ConstLog2Histogram(h.desc, counts[:], f64frombits(h.sumBits.Load()), h.unit); err == nil {
		ch <- m
	}
}
