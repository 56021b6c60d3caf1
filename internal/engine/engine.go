// Package engine wires the concerns together: it loads and attaches them,
// reads the shared ring buffer, feeds the connection table and the sinks,
// and owns shutdown. Data flows one way:
//
//	BPF hooks -> ring buffer -> reader goroutine -> bounded queue ->
//	pipeline goroutine (decode, track, format) -> console + log files
package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/httpinfo"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/ringread"
	"github.com/netwatcher/netwatcher/internal/track"
)

// Concern is an optional kernel concern (packets, retransmits, drops) that
// shares the connection object's maps.
type Concern interface {
	Name() string
	// Load loads the concern's object reusing the shared maps.
	Load(cfg *config.Config, shared map[string]*ebpf.Map) error
	// Attach attaches its hooks; a concern that cannot attach anything
	// returns an error, partial degradation is logged.
	Attach(log *slog.Logger) error
	// Decode decodes a ring record of one of its types.
	Decode(raw []byte, ev *event.Event) bool
	Detach()
	Close()
}

// Options of a run.
type Options struct {
	Cfg      *config.Config
	Log      *slog.Logger
	Stdout   io.Writer
	Concerns []Concern
	// QueueLen bounds the reader -> pipeline queue.
	QueueLen int
}

// Counters reported at exit.
type Counters struct {
	Events      atomic.Uint64 // ring records read
	QueueLost   atomic.Uint64 // dropped: pipeline queue full
	Undecodable atomic.Uint64
}

// MonoNow is CLOCK_MONOTONIC in ns, the clock of bpf_ktime_get_ns.
func MonoNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// pollEvery bounds how long an event waits in a ring when BPF did not wake
// the reader (wakeups are batched).
const pollEvery = 20 * time.Millisecond

// PacketRinger is implemented by a concern that writes to the packet ring
// and wants it this large (bytes, power of two).
type PacketRinger interface {
	PacketRingBytes() uint32
}

// Run runs netwatcher until ctx is done.
func Run(ctx context.Context, o Options) error {
	cfg, log := o.Cfg, o.Log
	if err := kernel.CheckPrivileges(); err != nil {
		return err
	}
	if _, err := kernel.KernelBTF(); err != nil {
		return err
	}
	files, err := output.OpenFiles(cfg.DataDir)
	if err != nil {
		return err
	}
	defer files.Close()

	var pktRing uint32
	for _, c := range o.Concerns {
		if pr, ok := c.(PacketRinger); ok {
			pktRing = max(pktRing, pr.PacketRingBytes())
		}
	}
	cp, err := conn.Load(conn.Options{
		Sport: cfg.Sport, Dport: cfg.Dport,
		RingBytes: 4 << 20, PktRingBytes: pktRing, Quiet: cfg.Quiet, NoClose: noClose(cfg), MaxConns: cfg.MaxConns,
	})
	if err != nil {
		return err
	}
	defer cp.Close()
	var concerns []Concern
	for _, c := range o.Concerns {
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

	p := newPipeline(cfg, log, o.Stdout, files, cp, live)
	// Pre-existing connections: walk after attaching, so nothing opened in
	// between is missed; duplicates are harmless (adopt is insert-if-absent).
	if err := p.adoptExisting(); err != nil {
		log.Warn("pre-existing connections not listed", "err", err)
	}
	if cfg.ReadyFile != "" {
		if err := os.WriteFile(cfg.ReadyFile, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o600); err != nil {
			return fmt.Errorf("ready file: %w", err)
		}
	}
	log.Debug("ready")

	qlen := o.QueueLen
	if qlen == 0 {
		qlen = 16384
	}
	var ctr Counters
	g, gctx := errgroup.WithContext(context.Background())

	// Two readers, one per ring, hand events to the pipeline in batches
	// (one goroutine wake-up per batch, not per event) from a fixed pool
	// per reader: no allocation per event. Lifecycle/retransmit/error
	// events wait for a free batch (never dropped in user space); packet
	// records are dropped and counted when the pipeline falls behind.
	queue := make(chan *batch, 2*(qlen/batchLen+1))
	pipeDone := make(chan struct{})
	readers := make(chan struct{}, 2)
	read := func(r *ringread.Reader, lossless bool) error {
		defer func() { readers <- struct{}{} }()
		// Lifecycle events are few and never dropped (the reader waits):
		// a small pool is enough; packets get the whole queue length.
		n := qlen / batchLen
		if lossless {
			n = max(n/4, 2)
		}
		pool := newPool(n)
		var b *batch
		get := func() bool {
			if lossless {
				select {
				case b = <-pool:
					return true
				case <-pipeDone:
					return false
				}
			}
			select {
			case b = <-pool:
			default:
				b = nil
			}
			return true
		}
		send := func() {
			if b != nil && len(b.evs) > 0 {
				queue <- b
				b = nil
			}
		}
		defer send()
		if !get() {
			return nil
		}
		stop := false
		one := func(raw []byte) bool {
			ctr.Events.Add(1)
			if b == nil && !get() {
				stop = true
				return false
			}
			if b == nil { // lossy reader, no free batch: the pipeline is behind
				ctr.QueueLost.Add(1)
				return true
			}
			b.evs = b.evs[:len(b.evs)+1]
			if !p.decode(raw, &b.evs[len(b.evs)-1]) {
				b.evs = b.evs[:len(b.evs)-1]
				ctr.Undecodable.Add(1)
				return true
			}
			if len(b.evs) == cap(b.evs) {
				send()
				if !get() {
					stop = true
					return false
				}
			}
			return true
		}
		flushed := false
		for {
			// Everything committed, in one pass (see ringread); then hand
			// the batch over and wait. BPF wakes the reader only per 64
			// KiB (nw_submit): the wait polls, so a lone event waits at
			// most pollEvery.
			n, busy := r.Batch(one)
			if stop {
				return nil
			}
			if n > 0 || busy {
				if busy {
					runtime.Gosched() // a record is being written: back in a moment
				}
				continue
			}
			send()
			if flushed {
				return nil // stopped and drained
			}
			if b == nil && !get() {
				return nil
			}
			switch err := r.Wait(pollEvery); {
			case errors.Is(err, ringread.ErrFlushed):
				flushed = true // drain what is left, then stop
			case err != nil:
				return fmt.Errorf("ring buffer: %w", err)
			}
		}
	}
	g.Go(func() error { return read(rd, true) })
	g.Go(func() error { return read(prd, false) })
	g.Go(func() error {
		<-readers
		<-readers
		close(queue)
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
	// Stop producing, then drain what is already in the ring.
	cp.Detach()
	for _, c := range live {
		c.Detach()
	}
	// Flush makes the readers read what is left, then stop.
	for _, r := range []*ringread.Reader{rd, prd} {
		r.Flush()
	}
	err = g.Wait()
	p.finish(&ctr)
	return err
}

type pipeline struct {
	cfg      *config.Config
	log      *slog.Logger
	out      *bufio.Writer
	files    *output.Files
	cp       *conn.Probe
	concerns []Concern
	table    *track.Table
	fields   output.Fields

	buf, lbuf, hbuf []byte
	pairer          *httpinfo.Pairer
	ents            []*track.Entry
	connHdr         bool
	dirty           bool // the table changed since connects.log was written
	untrackedErrors uint64
	noAddrs         uint64 // packet lines printed without addresses (see park)
	pktHdr          bool
	lastLost        uint64
	parked          []parkedPkt // see park
	missSk          uint64      // last packet connection the kernel table did not have (packetAddrs)
	missEst         uint32
	lastAdhoc       time.Time // last sample made for an unmatched error (-q)
}

func newPipeline(cfg *config.Config, log *slog.Logger, stdout io.Writer, files *output.Files, cp *conn.Probe, cs []Concern) *pipeline {
	return &pipeline{
		cfg: cfg, log: log, out: bufio.NewWriterSize(stdout, 64<<10), files: files, cp: cp,
		concerns: cs, table: newTable(cfg),
		fields: output.Fields{Extra: cfg.Extra, Retrans: cfg.Retrans},
	}
}

func newTable(cfg *config.Config) *track.Table {
	t := track.New(cfg.All)
	t.AdoptSampled = cfg.Quiet      // see conn.Options.Quiet
	t.SweepUnsampled = noClose(cfg) // see conn.Options.NoClose
	return t
}

// noClose: the kernel sends no close records (conn.Options.NoClose).
func noClose(cfg *config.Config) bool { return cfg.Quiet && !cfg.All && !cfg.HTTP }

// decode runs on the reader goroutine: only immutable state is used.
func (p *pipeline) decode(raw []byte, ev *event.Event) bool {
	if len(raw) < 1 {
		return false
	}
	switch event.Type(raw[0]) {
	case event.ConnOpen, event.ConnOwner, event.ConnClose:
		return conn.Decode(raw, ev)
	}
	for _, c := range p.concerns {
		if c.Decode(raw, ev) {
			return true
		}
	}
	return false
}

func (p *pipeline) adoptExisting() error {
	evs, err := p.cp.Existing()
	if err != nil {
		return err
	}
	now := MonoNow()
	for i := range evs {
		evs[i].Conn.EstNs = now
	}
	wanted := func(c *event.Conn) bool {
		return (p.cfg.Sport == 0 || c.Src.Port() == p.cfg.Sport) && (p.cfg.Dport == 0 || c.Dst.Port() == p.cfg.Dport)
	}
	n, err := p.cp.Adopt(evs, wanted)
	if err != nil {
		return err
	}
	for i := range evs {
		c := &evs[i].Conn
		if !wanted(c) || p.table.Get(c.Sock) != nil {
			continue
		}
		e := p.table.Open(c)
		p.dirty = true
		p.connLine("exists", now, e)
	}
	p.log.Debug("pre-existing connections", "adopted", n)
	return p.flushOut()
}

// batchLen is how many events one hand-off carries at most.
const batchLen = 256

// batch is a reusable slice of events that returns to its reader's pool.
type batch struct {
	evs  []event.Event
	pool chan *batch
}

func newPool(n int) chan *batch {
	if n < 2 {
		n = 2
	}
	pool := make(chan *batch, n)
	for i := 0; i < n; i++ {
		pool <- &batch{evs: make([]event.Event, 0, batchLen), pool: pool}
	}
	return pool
}

func (p *pipeline) run(queue <-chan *batch, ctr *Counters) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	p.refresh()
	for {
		select {
		case b, ok := <-queue:
			if !ok {
				return nil
			}
			for i := range b.evs {
				p.handle(&b.evs[i])
			}
			b.evs = b.evs[:0]
			b.pool <- b
			p.unpark(false)
			if len(queue) == 0 {
				if err := p.flushOut(); err != nil {
					return err
				}
			}
		case <-tick.C:
			p.unpark(false)
			p.refresh()
			p.reportLoss(ctr)
			if err := p.flushOut(); err != nil {
				return err
			}
		}
	}
}

func (p *pipeline) flushOut() error {
	if err := p.out.Flush(); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}

func (p *pipeline) connLine(what string, ts uint64, e *track.Entry) {
	if p.cfg.Quiet {
		return
	}
	p.buf = p.buf[:0]
	if p.cfg.Output == config.JSON {
		p.buf = output.AppendConnJSON(p.buf, what, ts, e, p.fields, MonoNow())
	} else {
		if !p.connHdr {
			p.buf = append(p.buf, output.ConnHeader...)
			p.connHdr = true
		}
		p.buf = output.AppendConnTable(p.buf, what, e)
	}
	p.out.Write(p.buf)
}

func (p *pipeline) handle(ev *event.Event) {
	switch ev.Type {
	case event.ConnOpen:
		p.dirty = true
		e := p.table.Open(&ev.Conn)
		p.connLine("open", ev.TS, e)
	case event.ConnOwner:
		p.dirty = true
		if e := p.table.Owner(&ev.Conn); e != nil {
			p.connLine("owner", ev.TS, e)
		}
	case event.ConnClose:
		p.dirty = true
		e := p.table.Close(&ev.Conn, &ev.Stats, ev.TS)
		p.connLine("close", ev.TS, e)
		p.httpSummary(ev)
	default:
		p.handleConcern(ev)
	}
}

// sample walks the kernel's connection table into the table.
func (p *pipeline) sample() {
	p.table.BeginWalk()
	if err := p.cp.Sample(func(sk uint64, c *event.Conn, st *event.Stats) {
		if p.table.Sample(c, st) {
			p.dirty = true
		}
	}); err != nil {
		p.log.Warn("sampling connections failed", "err", err)
		return // a partial walk must not sweep
	}
	if p.table.EndWalk() > 0 {
		p.dirty = true
	}
}

// refresh samples -x values and rewrites connects.log. Without -x/-r the
// file changes only with the table, so an unchanged table is not rewritten
// (with 100k connections that is tens of MB a second saved).
func (p *pipeline) refresh() {
	now := MonoNow()
	p.sample()
	if !p.dirty && !p.cfg.Extra && !p.cfg.Retrans {
		if err := p.files.Flush(); err != nil {
			p.log.Error("log files", "err", err)
		}
		return
	}
	p.dirty = false
	p.lbuf = p.lbuf[:0]
	p.ents = p.table.Each(p.ents, func(e *track.Entry) {
		p.lbuf = output.AppendConnLog(p.lbuf, e, p.fields, now)
		if p.cfg.Extra && p.cfg.Output == config.JSON && !p.cfg.Quiet && !e.Closed {
			p.buf = output.AppendConnJSON(p.buf[:0], "sample", now, e, p.fields, now)
			p.out.Write(p.buf)
		}
	})
	if err := p.files.WriteConnects(p.lbuf); err != nil {
		p.log.Error("connects.log", "err", err)
	}
	if err := p.files.Flush(); err != nil {
		p.log.Error("log files", "err", err)
	}
}

// bpfStats sums the per-CPU counters.
func (p *pipeline) bpfStats() [event.StatMax]uint64 {
	var out [event.StatMax]uint64
	m := p.cp.Stats()
	var per []uint64
	for i := uint32(0); i < event.StatMax; i++ {
		if err := m.Lookup(i, &per); err != nil {
			continue
		}
		for _, v := range per {
			out[i] += v
		}
	}
	return out
}

func (p *pipeline) lost(ctr *Counters) (ring, queue, table uint64) {
	s := p.bpfStats()
	for t := 0; t < event.MaxRingType; t++ {
		ring += s[event.StatRingFull+t]
	}
	return ring, ctr.QueueLost.Load(), s[event.StatConnMapFull]
}

func (p *pipeline) reportLoss(ctr *Counters) {
	r, q, t := p.lost(ctr)
	pk := p.bpfStats()[event.StatPktMapFull]
	if sum := r + q + t + pk; sum != p.lastLost {
		p.log.Warn("events lost", "ring_full", r, "queue_full", q, "conn_table_full", t, "pkt_table_full", pk)
		p.lastLost = sum
	}
}

// CounterSource is implemented by concerns with counters of their own for
// the final stats (e.g. sent segments that never reached a driver).
type CounterSource interface {
	Counters() map[string]uint64
}

func (p *pipeline) concernCounters() map[string]uint64 {
	out := map[string]uint64{}
	for _, c := range p.concerns {
		if cs, ok := c.(CounterSource); ok {
			for k, v := range cs.Counters() {
				out[k] += v
			}
		}
	}
	return out
}

func (p *pipeline) finish(ctr *Counters) {
	p.unpark(true)
	p.refresh()
	s := p.bpfStats()
	r, q, t := p.lost(ctr)
	extra := p.concernCounters()
	if !p.cfg.Quiet {
		extra["packets_without_addrs"] = p.noAddrs
	}
	keys := slices.Sorted(maps.Keys(extra))
	if p.cfg.Output == config.JSON {
		p.buf = fmt.Appendf(p.buf[:0], `{"type":"stats","events":%d,"lost_ring_full":%d,"lost_queue_full":%d,"conn_table_full":%d,"pkt_table_full":%d,"closed_evicted":%d,"undecodable":%d,"untracked_errors":%d,"connections":%d`,
			ctr.Events.Load(), r, q, t, s[event.StatPktMapFull], p.table.Evicted, ctr.Undecodable.Load(), p.untrackedErrors, p.table.Len())
		for _, k := range keys {
			p.buf = fmt.Appendf(p.buf, `,%q:%d`, k, extra[k])
		}
		p.buf = append(p.buf, "}\n"...)
		p.out.Write(p.buf)
	}
	p.flushOut()
	attrs := []any{"events", ctr.Events.Load(), "lost_ring_full", r, "lost_queue_full", q,
		"conn_table_full", t, "pkt_table_full", s[event.StatPktMapFull], "closed_evicted", p.table.Evicted,
		"untracked_errors", p.untrackedErrors, "connections", p.table.Len()}
	for _, k := range keys {
		attrs = append(attrs, k, extra[k])
	}
	p.log.Info("netwatcher stopped", attrs...)
}
