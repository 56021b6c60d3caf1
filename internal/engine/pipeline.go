package engine

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/httpinfo"
	"github.com/netwatcher/netwatcher/internal/metrics"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/track"
)

// pipeline owns the connection table, the sinks and the sampler. One
// goroutine runs it; only decode runs on the readers.
type pipeline struct {
	cfg      *config.Config
	log      *slog.Logger
	out      io.Writer
	flush    func() // hands the console's buffer over (never blocks, never fails the run)
	files    *output.Files
	stateLog *output.Log // tcpstate.log (-P), nil without it
	rst      rstTrack    // --rst: rst.log, per-connection counts (records_rst.go)
	cp       *conn.Probe
	concerns []Concern
	table    *track.Table
	fields   output.Fields
	pr       output.Printer
	merge    *merge

	buf, lbuf, hbuf []byte
	snap            output.ConnsWriter // connects.log, written as formatted
	pairer          *httpinfo.Pairer
	ents            []*track.Entry
	dirty           bool // the table changed since connects.log was written
	untrackedErrors uint64
	noAddrs         uint64 // packet records of a connection the table could not name
	lastLost        uint64
	missKey         track.ConnKey // last packet connection the kernel table did not have (connOf)
	lastAdhoc       time.Time     // last sample made for an unmatched error (-q)
	drop            *dropState    // -k (records_dropreason.go)
	lis             listenState   // -x listening sockets (records_listener.go)
	icmp            icmpTrack     // -I: icmp.log, echo pairing (records_icmp.go)
	dns             dnsState      // -N (records_dns.go)
	redis           redisState    // -R (records_redis.go)
	mysql           mysqlState    // -M (records_mysql.go)
	count           countState    // -C (records_count.go)
	tl              timeloadState // -L (records_timeload.go)
	statRd          statReader    // bpfStats (bpfstats.go)

	// --metrics-addr (metrics.go): record-fed metrics (nil when off) and
	// the exit stats published every second
	met    *metrics.Records
	health *metrics.Health
}

// consoleFlusher is what the console offers beyond io.Writer: a buffer to
// hand over at flush points (output.Console). Any other writer is wrapped
// in a bufio.Writer whose errors are ignored: the console never stops the
// pipeline (files do not depend on it).
type consoleFlusher interface{ Flush() }

func newPipeline(cfg *config.Config, log *slog.Logger, stdout io.Writer, files *output.Files, cp *conn.Probe, cs []Concern) *pipeline {
	p := &pipeline{
		cfg: cfg, log: log, files: files, cp: cp,
		concerns: cs, table: newTable(cfg), stateLog: files.Log(output.StateLogName),
		fields: output.Fields{Extra: cfg.Extra, Retrans: cfg.Retrans},
		merge:  newMerge(),
	}
	if cf, ok := stdout.(consoleFlusher); ok {
		p.out, p.flush = stdout, cf.Flush
	} else {
		w := bufio.NewWriterSize(stdout, 64<<10)
		p.out, p.flush = w, func() { w.Flush() }
	}
	p.pr = output.Printer{JSON: cfg.Output == config.JSON, Timed: cfg.Time, HTTP: cfg.HTTP, Sample: cfg.Sample,
		Fields: p.fields, Clock: output.NewClock(nil)}
	p.timeloadInit()
	return p
}

func newTable(cfg *config.Config) *track.Table {
	t := track.New(cfg.All)
	if cfg.MaxClosed > 0 {
		t.SetMaxClosed(int(cfg.MaxClosed))
	}
	t.AdoptSampled = cfg.KernelQuiet()       // see conn.Options.Quiet
	t.SweepUnsampled = cfg.NoCloseRecords()  // see conn.Options.NoClose
	t.Recycle = !cfg.Rst                     // --rst keeps the last closed entries (records_rst.go)
	t.NoLookup = !cfg.Err && !cfg.DropReason // errConn, dropConn: the only users of Lookup
	return t
}

// decoders maps each ring record type to the concern that decodes it.
type decoders [event.MaxRingType]Concern

func newDecoders(cs ...Concern) (*decoders, error) {
	var d decoders
	for _, c := range cs {
		for _, t := range c.Types() {
			if int(t) >= len(d) {
				return nil, fmt.Errorf("concern %s: record type %d out of range", c.Name(), t)
			}
			if d[t] != nil {
				return nil, fmt.Errorf("record type %d claimed by %s and %s", t, d[t].Name(), c.Name())
			}
			d[t] = c
		}
	}
	return &d, nil
}

// decode runs on the reader goroutines.
func (d *decoders) decode(raw []byte, ev *event.Event) bool {
	if len(raw) < 1 || int(raw[0]) >= len(d) || d[raw[0]] == nil {
		return false
	}
	return d[raw[0]].Decode(raw, ev)
}

func (p *pipeline) adoptExisting() error {
	evs, err := p.cp.Existing()
	if err != nil {
		return err
	}
	now := output.MonoNow()
	for i := range evs {
		evs[i].Conn.EstNs = now
	}
	wanted := func(c *event.Conn) bool { return p.cfg.Wanted(c.Src, c.Dst) }
	n, err := p.cp.Adopt(evs, wanted)
	if err != nil {
		return err
	}
	for i := range evs {
		c := &evs[i].Conn
		if !wanted(c) || p.table.Current(c.Sock) != nil {
			continue
		}
		e := p.table.Open(c)
		p.dirty = true
		p.met.ConnExisting(&e.Conn)
		p.connLine("exists", now, e)
	}
	p.log.Debug("pre-existing connections", "adopted", n)
	p.flushOut()
	return nil
}

// run handles batches in time order (merge) until the readers are done.
func (p *pipeline) run(queue <-chan *batch, ctr *Counters) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// The merge waits for watermarks: while it holds records, look again
	// this often (a watermark moves without a batch when a ring is idle;
	// merge.holding pokes the reader it waits for). Armed only then: a
	// timer firing 100 times a second on an idle host was most of the
	// tool's idle CPU.
	hold := time.NewTimer(time.Hour)
	hold.Stop()
	armed := false
	checkHold := func() {
		if !armed && p.merge.holding(output.MonoNow()) {
			hold.Reset(p.merge.recheck)
			armed = true
		}
	}
	defer hold.Stop()
	concernTick, stopTick := p.tickers() // concerns' own periodic records (Ticker)
	defer stopTick()
	countTick, stopCount := p.countTicker() // -C lines
	defer stopCount()
	p.countInit(output.MonoNow())
	p.refresh()
	closed := false
	drain := func() {
		for !closed {
			select {
			case b, ok := <-queue:
				if !ok {
					closed = true
					return
				}
				p.merge.push(b)
			default:
				return
			}
		}
	}
	handle := func(_ int, b *batch, i int) { p.handle(&b.evs[i]) }
	for !closed {
		select {
		case b, ok := <-queue:
			if !ok {
				closed = true
				break
			}
			p.merge.push(b)
			p.merge.release(drain, handle)
			if len(queue) == 0 {
				p.flushOut()
			}
			checkHold()
		case <-hold.C:
			armed = false
			p.merge.release(drain, handle)
			p.flushOut()
			checkHold()
		case <-concernTick:
			p.tick()
			p.flushOut()
		case <-countTick:
			p.countLines(output.MonoNow(), false)
			p.flushOut()
		case <-tick.C:
			p.pr.Clock.Sync()
			p.refresh()
			p.reportLoss(ctr)
			p.publishStats(ctr)
			p.flushOut()
		}
	}
	// The readers are done (watermarks +inf): everything left, in order.
	p.merge.release(drain, handle)
	return nil
}

func (p *pipeline) flushOut() { p.flush() }

func (p *pipeline) connLine(what string, ts uint64, e *track.Entry) {
	if p.cfg.Quiet {
		return
	}
	p.buf = p.pr.Conn(p.buf[:0], what, ts, e, output.MonoNow())
	p.out.Write(p.buf)
}

func (p *pipeline) handle(ev *event.Event) {
	if p.cfg.CountSecs != 0 {
		p.countEvent(ev)
	}
	switch ev.Type {
	case event.ConnOpen:
		p.dirty = true
		e := p.table.Open(&ev.Conn)
		p.met.ConnOpened(&e.Conn)
		p.connLine("open", ev.TS, e)
	case event.ConnOwner:
		p.dirty = true
		if e := p.table.Owner(&ev.Conn); e != nil {
			p.connLine("owner", ev.TS, e)
		}
	case event.ConnClose:
		p.dirty = true
		var st *event.Stats
		if ev.HasStats {
			st = &ev.Stats
		}
		e := p.table.Close(&ev.Conn, st, ev.TS)
		p.met.ConnClosed(&e.Conn)
		p.connLine("close", ev.TS, e)
		p.httpSummary(ev.TS, e)
		p.rstClosed(e)
		if p.tl.det != nil {
			p.timeloadClosed(&ev.Conn)
		}
	case event.Packet:
		p.packet(ev)
	case event.Error:
		p.errorEvent(ev)
	case event.Cong:
		p.congEvent(ev)
	case event.Retrans:
		p.retransEvent(ev)
	case event.State:
		p.stateEvent(ev)
	case event.Drop:
		p.dropEvent(ev)
	case event.Rst:
		p.rstEvent(ev)
	case event.Rtt:
		p.rttEvent(ev)
	case event.ICMP:
		p.icmpEvent(ev)
	case event.UDP, event.UDPFlow:
		p.udpEvent(ev)
	case event.DNS:
		p.dnsEvent(ev)
	case event.Redis:
		p.redisEvent(ev)
	case event.MySQL:
		p.mysqlEvent(ev)
	case event.NF:
		p.nfEvent(ev)
	case event.LayerSum:
		p.layerSumEvent(ev)
	}
}

// sample walks the kernel's connection table into the table.
func (p *pipeline) sample() {
	if !p.table.AdoptSampled && p.table.Len() == 0 {
		// Without -q's adoption (and sweep) a walk only updates the
		// entries the table has (-x values, -r counts, a better owner):
		// with none, an idle host's walk would change nothing.
		return
	}
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
	now := output.MonoNow()
	if p.cp != nil {
		p.sample()
	}
	if !p.dirty && !p.cfg.Extra && !p.cfg.Retrans {
		p.flushFiles()
		return
	}
	p.dirty = false
	// written as formatted, a chunk at a time (the whole snapshot in
	// memory was 5.4 MiB with -a under churn)
	snap := p.snap.Begin(p.files)
	p.ents = p.table.Each(p.ents, func(e *track.Entry) {
		snap = p.snap.Put(output.AppendConnLogKept(snap, e, p.fields, now)) // closed ones' lines kept
		if p.cfg.Extra && !p.cfg.Quiet && !e.Closed {
			p.buf = p.pr.Conn(p.buf[:0], "sample", now, e, now)
			p.out.Write(p.buf)
		}
	})
	p.lbuf = p.lbuf[:0]
	p.listeners(now) // appends to p.lbuf
	if err := p.snap.End(append(snap, p.lbuf...)); err != nil {
		p.filesError(err)
	}
	p.flushFiles()
}

func (p *pipeline) flushFiles() {
	if err := p.files.Flush(); err != nil {
		p.filesError(err)
	}
}

// filesError logs a failing log file once (Files counts what is lost).
func (p *pipeline) filesError(err error) {
	p.log.Error("log files", "err", err)
}

// bpfStats sums the per-CPU counters.
func (p *pipeline) bpfStats() [event.StatMax]uint64 {
	var out [event.StatMax]uint64
	if p.cp == nil {
		return out
	}
	p.statRd.read(p.cp.Stats(), &out) // bpfstats.go
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

// recursionMisses sums kernel.Live.RecursionMisses over the run's
// concerns, connection tracking included.
func (p *pipeline) recursionMisses() uint64 {
	type misser interface{ RecursionMisses() uint64 }
	var n uint64
	if p.cp != nil {
		n += p.cp.RecursionMisses()
	}
	for _, c := range p.concerns {
		if m, ok := c.(misser); ok {
			n += m.RecursionMisses()
		}
	}
	return n
}

// Dropper is implemented by a console that drops lines rather than block
// (output.Console).
type Dropper interface{ Dropped() uint64 }

func (p *pipeline) extraCounters() map[string]uint64 {
	out := map[string]uint64{}
	for _, c := range p.concerns {
		if cs, ok := c.(CounterSource); ok {
			for k, v := range cs.Counters() {
				out[k] += v
			}
		}
	}
	out["packets_without_addrs"] = p.noAddrs
	out["bpf_recursion_misses"] = p.recursionMisses()
	if p.tl.det != nil {
		maps.Copy(out, p.tl.det.Counters())
	}
	if p.cfg.Time && !p.cfg.NoPackets {
		// stamps of -t a bounded queue could not keep (layer times "-"),
		// one condition each; pkt_table_full is the fourth
		s := p.bpfStats()
		out["pkt_queue_alloc_failed"] = s[event.StatPktQueueAlloc]
		out["pkt_rx_unread"] = s[event.StatPktRxUnread]
		out["pkt_tx_chunks_dropped"] = s[event.StatPktTxChunks]
	}
	if p.cfg.Extra {
		out["listener_table_full"] = p.bpfStats()[event.StatListenMapFull]
	}
	if p.cfg.MetricsAddr != "" {
		out["conn_agg_full"] = p.bpfStats()[event.StatConnAggFull] // connection metrics (nw_conn_agg.h)
	}
	if len(p.cfg.SrcNets)+len(p.cfg.DstNets) > 0 || p.cfg.Sport != 0 || p.cfg.Dport != 0 {
		out["conn_filtered"] = p.bpfStats()[event.StatConnFiltered]
	}
	if d, ok := p.out.(Dropper); ok {
		out["console_lines_dropped"] = d.Dropped()
	}
	for k, v := range p.files.Lost() {
		out[k] = v
	}
	if p.merge.Late > 0 {
		out["records_out_of_order"] = p.merge.Late
	}
	return out
}

func (p *pipeline) finish(ctr *Counters) {
	p.refresh()
	p.dropFinish()
	p.dnsFinish()
	p.mysqlFinish()
	p.finishConcerns()
	if p.cfg.CountSecs != 0 {
		p.countLines(output.MonoNow(), true) // after every record, the flows' exit ones too
	}
	p.publishStats(ctr)
	s := p.bpfStats()
	r, q, t := p.lost(ctr)
	extra := p.extraCounters()
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
