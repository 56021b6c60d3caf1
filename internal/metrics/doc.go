// Package metrics serves netwatcher's Prometheus metrics (--metrics-addr,
// default off) and defines how concerns and the pipeline expose theirs.
//
// # Serving
//
// With --metrics-addr the engine builds one registry (NewRegistry: the Go
// runtime and process collectors, RSS included, plus netwatcher's own
// health metrics), adds every concern's collectors and the pipeline's
// Records, and serves it with promhttp (text format, or OpenMetrics when
// the scraper asks for it) on /metrics (Start). The server runs on its own
// goroutines until the engine's Run returns (its context is cancelled,
// then Server.Wait: a graceful shutdown, no goroutine left behind). There
// is no authentication: config refuses a non-loopback address unless
// --metrics-allow-remote is given (config.CheckMetricsAddr).
//
// # The shared API (for concerns and the pipeline)
//
//  1. A concern exposes metrics by implementing engine.MetricsSource:
//
//     Collectors() []prometheus.Collector
//
//     The engine calls it once, after Attach, only when metrics are on
//     (so a concern allocates nothing for metrics otherwise), and registers
//     the result. Collect runs on the HTTP server's goroutines, once per
//     scrape, concurrently with the readers and the pipeline: read kernel
//     maps there (a lookup or batch lookup per scrape is fine), or atomics
//     the concern updates; never state the pipeline goroutine owns without
//     synchronisation. A prometheus.CounterVec/HistogramVec is safe as it
//     is: cache the child (WithLabelValues once per label set, on the
//     pipeline goroutine) and Inc/Observe it; that is an atomic add.
//     Kernel log2 histograms (bucket i counts values in [2^i, 2^(i+1)) of
//     some unit) become Prometheus histograms with ConstLog2Histogram.
//
//  2. The pipeline feeds the counters made from ring records through a
//     *Records (records.go). Its methods run on the pipeline goroutine and
//     are safe against concurrent scrapes (client_golang atomics; label
//     children cached in maps only the pipeline touches). A nil *Records
//     is metrics off: every method returns at once (one compare per
//     record, nothing else), so the pipeline calls them unconditionally.
//     The connection counters are the exception: the kernel counts them
//     (ConnAgg, connagg.go, reads conn.Probe's map on each scrape; Records
//     leaves them out when On.KernelConns), so they need no record.
//
//  3. Pipeline-owned totals (the exit stats: losses, the concerns'
//     Counters()) are published once a second by the pipeline
//     (Health.SetStats, a copy behind an atomic pointer) and read by the
//     scrape; ring records read (Counters.Events) are read live.
//
// # Naming and cardinality
//
// Every metric is netwatcher_<what>[_<unit>][_total] in base units
// (seconds, bytes). Labels are bounded by design, never a connection,
// address, pid or command: side ("client", "server"), direction ("rx",
// "tx"; "sent", "received" for resets), layer ("mac", "ip", "tcp",
// "udp"), protocol, the kernel's drop-reason names, TCP state names, the
// network namespace (inode number; at most MaxNetns distinct values, the
// rest "other") and the port class (PortClasses: a well-known port
// 1..1023 by number, the configured service ports by number, anything
// else "ephemeral"). The per-connection view stays in connects.log and
// the JSON records. docs/features.md "Metrics" lists every metric.
package metrics

// Namespace is the prefix of every netwatcher metric.
const Namespace = "netwatcher"
