// Package engine wires the concerns together: it loads and attaches them,
// reads the two ring buffers, feeds the connection table and the sinks, and
// owns shutdown. Data flows one way:
//
//	BPF hooks -> rings (lifecycle, packets) -> one reader goroutine per ring
//	-> batches -> pipeline goroutine (merge by time, track, format)
//	-> console + log files
//
// Files: engine.go (Run, shutdown), reader.go (ring -> batches, watermark),
// merge.go (time order across the rings), pipeline.go (table, sinks,
// sampling, stats), records.go (packet, error, retransmit, HTTP records).
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sync/errgroup"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/ringread"
)

// Concern is one kernel concern (connection tracking, packets,
// retransmits, drops, ...): one folder under internal/ with its BPF object,
// its decoder and its tests. cmd/netwatcher lists the concerns of a run;
// the first is always connection tracking (*conn.Probe), whose object
// creates the maps and rings the others share.
type Concern interface {
	Name() string
	// Types lists the ring record types the concern decodes; each type
	// belongs to one concern.
	Types() []event.Type
	// Load loads the concern's object reusing the shared maps (nil for
	// connection tracking, which creates them).
	Load(cfg *config.Config, shared map[string]*ebpf.Map) error
	// Attach attaches its hooks; a concern that cannot attach anything
	// returns an error, partial degradation is logged.
	Attach(log *slog.Logger) error
	// Decode decodes a ring record of one of its types. It runs on the
	// reader goroutines, concurrently with the pipeline and with each
	// other: state it touches must be the concern's own and safe for that
	// (packet: the namespace manager and atomics).
	Decode(raw []byte, ev *event.Event) bool
	// Detach stops the hooks (the object stays: the rings are drained
	// after it); Close releases everything.
	Detach()
	Close()
}

// Options of a run.
type Options struct {
	Cfg      *config.Config
	Log      *slog.Logger
	Stdout   io.Writer // the console; a Flush() method, if any, is called at flush points
	Concerns []Concern // Concerns[0] is connection tracking (*conn.Probe)
}

// Counters reported at exit; the readers write them, the pipeline reads.
type Counters struct {
	Events      atomic.Uint64 // ring records read
	QueueLost   atomic.Uint64 // dropped: no free batch (the pipeline is behind)
	Undecodable atomic.Uint64
}

// LogNamer is implemented by a concern with log files of its own in
// --data-dir (tcpstate.log, ...): they are truncated at start like the
// others, written in whole lines, and their losses counted.
type LogNamer interface {
	LogNames() []string
}

// Ticker is implemented by a concern that makes records of its own every
// Interval (--rtt reads its kernel map): Tick runs on the pipeline
// goroutine (the one that owns the output) and each record it hands emit
// is handled there like a ring record of the concern's type.
type Ticker interface {
	Interval() time.Duration
	Tick(nowNs uint64, emit func(*event.Event))
}

// Finisher is implemented by a concern that makes records of its own once
// at exit (-n: the per-hook summaries of the whole run; -u: each flow's
// last counts; -I: echoes still waiting; -N, -R, -M: what waits for a
// response, and the exit summaries). Finish runs on the pipeline goroutine
// after the hooks are detached and the rings drained; its records are
// handled like ring records of the concern's type.
type Finisher interface {
	Finish(nowNs uint64, emit func(*event.Event))
}

// PacketRinger is implemented by a concern that writes to the packet ring
// and wants it this large (bytes, power of two).
type PacketRinger interface {
	PacketRingBytes() uint32
}

// Pool sizes (batches of batchLen records). The merge holds batches until
// the other ring's reader has caught up (it is poked, see merge.holding; ~20 ms): at the
// highest rate measured (~320k packet records/s) that is ~6,400 records,
// 25 batches. Packets get 64 (16,384 records, ~9 MiB); lifecycle records
// are fewer, they get 32. Both readers wait for a free batch rather than
// drop a record: meanwhile records wait in the ring (16 MiB for packets,
// ~80,000 records more), and only what the ring cannot take is lost
// (counted by BPF as ring full). The packet reader used to drop and count
// (lost_queue_full) when its pool was empty: measured on rr -q with the
// other CPU busy, 13,000-66,000 of ~2 million records lost that way while
// the ring had room.
const (
	packetBatches = 64
	lifeBatches   = 32
)

// Run runs netwatcher until ctx is done.
func Run(ctx context.Context, o Options) (err error) {
	cfg, log := o.Cfg, o.Log
	if err := kernel.CheckPrivileges(); err != nil {
		return err
	}
	if _, err := kernel.KernelBTF(); err != nil {
		return err
	}
	var logs []string
	for _, c := range o.Concerns {
		if l, ok := c.(LogNamer); ok {
			logs = append(logs, l.LogNames()...)
		}
	}
	if cfg.CountSecs != 0 {
		logs = append(logs, output.CountLogName) // -C (records_count.go)
	}
	if cfg.TimeLoad {
		logs = append(logs, output.AnomalyLogName) // -L (records_timeload.go)
	}
	files, err := output.OpenFiles(cfg.DataDir, logs...)
	if err != nil {
		return err // *output.DataDirError: main exits 2
	}
	defer func() {
		// Lines a full disk refused make the run fail (*output.LostError):
		// scripts must be able to tell that the files are incomplete.
		if cerr := files.Close(); err == nil {
			err = cerr
		}
	}()

	if len(o.Concerns) == 0 {
		return errors.New("engine: no concerns (the first must be connection tracking)")
	}
	cp, ok := o.Concerns[0].(*conn.Probe)
	if !ok {
		return fmt.Errorf("engine: the first concern is %s, not connection tracking", o.Concerns[0].Name())
	}
	var pktRing uint32
	for _, c := range o.Concerns {
		if pr, ok := c.(PacketRinger); ok {
			pktRing = max(pktRing, pr.PacketRingBytes())
		}
	}
	cp.SetPacketRingBytes(pktRing)
	if cfg.MetricsAddr != "" {
		cp.SetConnAgg(servicePorts(cfg)) // the connection metrics, counted in the kernel (metrics.go)
	}
	if err := cp.Load(cfg, nil); err != nil {
		return err
	}
	defer cp.Close()
	var concerns []Concern
	for _, c := range o.Concerns[1:] {
		if err := c.Load(cfg, cp.SharedMaps()); err != nil {
			log.Warn("feature unavailable", "concern", c.Name(), "err", err)
			continue
		}
		concerns = append(concerns, c)
	}
	defer func() {
		for _, c := range concerns {
			c.Close()
		}
	}()

	rd, err := ringread.Open(cp.Events())
	if err != nil {
		return fmt.Errorf("ring buffer reader: %w", err)
	}
	defer rd.Close()
	prd, err := ringread.Open(cp.PacketEvents())
	if err != nil {
		return fmt.Errorf("packet ring buffer reader: %w", err)
	}
	defer prd.Close()

	if err := cp.Attach(log); err != nil {
		return fmt.Errorf("connection tracking cannot run: %w", err)
	}
	var live []Concern
	for _, c := range concerns {
		if err := c.Attach(log); err != nil {
			log.Warn("feature unavailable", "concern", c.Name(), "err", err)
			continue
		}
		live = append(live, c)
	}
	// Shutdown order: the concerns' hooks first, connection tracking last.
	// A packet or error hook looks its connection up in the kernel table:
	// without the lifecycle hooks, closed connections would stay there and
	// the next connection on the same socket memory would be reported
	// under the old one's name.
	var detachOnce sync.Once
	detach := func() {
		detachOnce.Do(func() {
			for _, c := range live {
				c.Detach()
			}
			cp.Detach()
		})
	}
	defer detach()

	dec, err := newDecoders(append([]Concern{cp}, live...)...)
	if err != nil {
		return err
	}
	p := newPipeline(cfg, log, o.Stdout, files, cp, live)
	// Half of each pool may wait in the merge; the other half stays free
	// for its reader (see merge).
	p.merge.limit[srcLife], p.merge.limit[srcPacket] = lifeBatches/2, packetBatches/2
	if cfg.Quiet {
		p.merge.quiet()
	}
	// Pre-existing connections: walk after attaching, so nothing opened in
	// between is missed; duplicates are harmless (adopt is insert-if-absent).
	var ctr Counters
	stopMetrics, err := startMetrics(o, live, p, &ctr) // --metrics-addr (metrics.go)
	if err != nil {
		return err
	}
	defer stopMetrics()
	if err := p.adoptExisting(); err != nil {
		log.Warn("pre-existing connections not listed", "err", err)
	}
	if cfg.ReadyFile != "" {
		remove, err := output.WriteReadyFile(cfg.ReadyFile)
		if err != nil {
			return fmt.Errorf("ready file: %w", err)
		}
		defer remove()
	}
	log.Debug("ready")

	g, gctx := errgroup.WithContext(context.Background())
	queue := make(chan *batch, packetBatches+lifeBatches) // never blocks a reader: room for every batch
	pipeDone := make(chan struct{})
	var readers sync.WaitGroup
	for _, x := range []struct {
		src  int
		r    *ringread.Reader
		pool int
	}{{srcLife, rd, lifeBatches}, {srcPacket, prd, packetBatches}} {
		r := &reader{src: x.src, r: x.r, lossless: true, pool: newPool(x.pool, x.src),
			queue: queue, pipeDone: pipeDone, decode: dec.decode, ctr: &ctr, wm: p.merge.wm[x.src],
			handed: p.merge.handed[x.src], quiet: cfg.Quiet}
		p.merge.poke[x.src] = x.r.Poke
		p.merge.produced[x.src] = x.r.Produced
		readers.Add(1)
		g.Go(func() error {
			defer readers.Done()
			return r.run()
		})
	}
	g.Go(func() error {
		readers.Wait()
		close(queue) // the pipeline drains what is queued, then stops
		return nil
	})
	// Pipeline: owns the table, sinks and sampler.
	g.Go(func() error {
		defer close(pipeDone)
		return p.run(queue, &ctr)
	})

	// Stop: signal/duration (ctx) or a failing goroutine.
	select {
	case <-ctx.Done():
	case <-gctx.Done():
	}
	// Stop producing, then read what is already in the rings: Flush makes
	// the readers drain, then stop.
	detach()
	rd.Flush()
	prd.Flush()
	err = g.Wait()
	p.finish(&ctr)
	return err
}
