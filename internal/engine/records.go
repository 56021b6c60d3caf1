package engine

import (
	"strconv"
	"time"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/httpinfo"
	"github.com/netwatcher/netwatcher/internal/metrics"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/track"
)

// ---- packets ----

func (p *pipeline) packet(ev *event.Event) {
	pk := &ev.Packet
	c := &ev.Conn
	e := p.connOf(ev.Conn.Sock, pk.EstLo)
	if e != nil {
		c = &e.Conn
		if !p.cfg.Quiet || p.tl.det != nil {
			ev.Conn = e.Conn // for the console, -L (-i pairs by c)
		}
	} else {
		p.noAddrs++
	}
	if p.tl.det != nil {
		if e = p.timeloadPacket(ev, e); e != nil {
			c = &e.Conn // -L may name it
		}
	}
	http, line := p.httpText(pk)
	// formatted into the log's buffer: no copy
	b := p.files.PacketBuf(output.PacketLogLen + len(http))
	p.files.PacketDone(output.AppendPacketLog(b, c, pk, p.cfg.Time, http, p.cfg.Sample))
	if !p.cfg.Quiet {
		var h []byte
		if p.cfg.HTTP {
			h = http
		}
		p.buf = p.pr.Packet(p.buf[:0], ev, h)
		p.out.Write(p.buf)
	}
	if line.Kind != httpinfo.None {
		p.countHTTP(pk.Rx, line.Kind == httpinfo.Request)
		p.httpPair(ev, e, line)
	}
}

// connOf names the connection of a packet record (socket + low bits of the
// establishment time): the table, which learned it from its open record
// (the merge hands records over in time order, so the open came first);
// else, when no open records come (-q) or one was lost, the kernel table
// while the connection is still open there (the table takes it in then).
func (p *pipeline) connOf(sk uint64, estLo uint32) *track.Entry {
	k := track.ConnKey{Sock: sk, EstLo: estLo}
	if e := p.table.Find(k); e != nil {
		return e
	}
	if k == p.missKey || p.cp == nil || (p.cfg.Quiet && p.table.AdoptSampled) {
		// -q without -a is the cheap mode: no console, no open records,
		// and no syscall per connection to name its packets.log lines
		// (measured: doubled the tool's CPU on connection churn); the
		// table knows what the last walk found.
		return nil
	}
	if e := p.fromKernel(sk, func(c *event.Conn) bool { return uint32(c.EstNs) == estLo }); e != nil {
		return e
	}
	// Records of a connection come in runs: one syscall per run, not per
	// record, when it is already gone from the kernel too.
	p.missKey = k
	return nil
}

// fromKernel looks socket sk up in the kernel's connection table and, if
// it holds an established connection (that ok accepts; nil: any), takes it
// into the table: for records whose connection the table has not learned
// (no open records under -q, or one lost). One syscall.
func (p *pipeline) fromKernel(sk uint64, ok func(*event.Conn) bool) *track.Entry {
	var c event.Conn
	if p.cp == nil || !p.cp.Lookup(sk, &c) || c.EstNs == 0 || (ok != nil && !ok(&c)) {
		return nil
	}
	p.dirty = true
	return p.table.Open(&c)
}

// httpText is the http_info text of a packet ("-" when none; valid until the
// next call). It is escaped for a quoted value and a JSON string alike
// (httpinfo.Line.AppendText): the sinks add no escaping of their own.
func (p *pipeline) httpText(pk *event.PacketInfo) ([]byte, httpinfo.Line) {
	var line httpinfo.Line
	if !p.cfg.HTTP || pk.HTTPLen == 0 {
		return dash, line
	}
	payload := pk.HTTP[:pk.HTTPLen]
	line = httpinfo.Parse(payload, pk.HTTPCut)
	p.hbuf = line.AppendText(p.hbuf[:0], payload)
	return p.hbuf, line
}

var dash = []byte("-")

// ---- HTTP ----

// httpPair pairs requests with responses per connection (its number: a
// socket is reused by the next connection at once). Both sockets of a local
// connection see the same exchange; each is paired on its own, so a
// response latency is reported per side. A record of an unknown connection
// is not paired (it would be paired with a stranger).
func (p *pipeline) httpPair(ev *event.Event, e *track.Entry, line httpinfo.Line) {
	if e == nil {
		return // unnamed: no connection to pair within
	}
	if p.pairer == nil {
		p.pairer = httpinfo.NewPairer(0, 0)
	}
	c := &e.Conn // with -q, ev.Conn is the bare record
	m, ok := p.pairer.ObserveAt(&e.PairAt, c.ID, ev.Packet.Seq, ev.TS, line)
	if ok && !m.Interim {
		p.met.Request(metrics.HTTP, c.IsServer, m.Latency)
	}
	if !ok || p.cfg.Quiet || !p.pr.JSON {
		return
	}
	p.buf = p.pr.HTTPMatch(p.buf[:0], ev.TS, c, &m)
	p.out.Write(p.buf)
}

// httpSummary reports the request/response statistics of a closed
// connection (-i) and forgets its pairing state.
func (p *pipeline) httpSummary(ts uint64, e *track.Entry) {
	if p.pairer == nil {
		return
	}
	s, ok := p.pairer.Forget(e.Conn.ID)
	if !ok || p.cfg.Quiet || s.Requests+s.Responses == 0 {
		return
	}
	p.buf = p.pr.HTTPSummary(p.buf[:0], ts, &e.Conn, &s)
	p.out.Write(p.buf)
}

// ---- errors ----

// errConn names the connection of a rejected segment. The record carries
// the segment's own addresses (it may belong to an older connection of the
// socket, whose close is handled) and the socket when the kernel found one.
func (p *pipeline) errConn(ev *event.Event) *track.Entry {
	x := &ev.Err
	local, remote := x.Dst, x.Src // received: remote -> local
	if !x.Rx {
		local, remote = x.Src, x.Dst
	}
	var e *track.Entry
	if ev.Conn.Sock != 0 {
		if e = p.table.Current(ev.Conn.Sock); e != nil && !sameFlow(e, x) {
			e = nil
		}
	}
	if e == nil && x.Src.IsValid() {
		k := track.Key(ev.Conn.Netns, local, remote)
		e = p.table.Lookup(k)
		if e == nil && ev.Conn.Sock == 0 && p.table.AdoptSampled && time.Since(p.lastAdhoc) > 10*time.Millisecond {
			// -q: a connection younger than the last table walk is not
			// in the table yet; walk now (errors are rare; at most every
			// 10 ms under an error flood).
			p.lastAdhoc = time.Now()
			p.sample()
			e = p.table.Lookup(k)
		}
	}
	if e == nil && ev.Conn.Sock != 0 && p.table.AdoptSampled {
		// -q: open, but not walked yet
		if e = p.fromKernel(ev.Conn.Sock, nil); e != nil && !sameFlow(e, x) {
			e = nil
		}
	}
	return e
}

// sameFlow: the segment of an error record belongs to e's connection.
func sameFlow(e *track.Entry, x *event.ErrorInfo) bool {
	if !x.Src.IsValid() {
		return true // nothing to compare with
	}
	local, remote := x.Dst, x.Src // received: remote -> local
	if !x.Rx {
		local, remote = x.Src, x.Dst
	}
	return track.Key(e.Conn.Netns, local, remote) == track.Key(e.Conn.Netns, e.Conn.Src, e.Conn.Dst)
}

func (p *pipeline) errorEvent(ev *event.Event) {
	if e := p.errConn(ev); e != nil {
		sk, netns := ev.Conn.Sock, ev.Conn.Netns
		ev.Conn = e.Conn
		if sk == 0 {
			sk = e.Conn.Sock
		}
		ev.Conn.Sock, ev.Conn.Netns = sk, netns
	}
	if ev.Conn.Sock == 0 {
		// Dropped before any socket and no tracked connection has these
		// addresses: not ours to report (SPEC: tracked connections), but
		// counted in the final stats.
		p.untrackedErrors++
		return
	}
	name := ev.Err.Name
	if name == "" {
		name = "reason " + strconv.Itoa(int(ev.Err.Reason))
	}
	p.met.Rejected(name)
	p.lbuf = output.AppendErrLog(p.lbuf[:0], &ev.Conn, &ev.Err, name)
	p.files.Error(p.lbuf)
	// Alerts are printed even with -q: they are the point of -e.
	p.buf = p.pr.Error(p.buf[:0], ev, name)
	p.out.Write(p.buf)
}

// ---- retransmissions ----

// retransConn names the connection of a retransmit/congestion record. The
// record carries the kernel entry's addresses and owner for the socket,
// i.e. its current connection's: the table's current connection of the
// socket is it only if the addresses agree (under -q a newer connection on
// the socket is learned only by a walk or a lookup).
func (p *pipeline) retransConn(ev *event.Event) {
	e := p.table.Current(ev.Conn.Sock)
	if e == nil && p.table.AdoptSampled && !ev.Retrans.PreEst {
		e = p.fromKernel(ev.Conn.Sock, nil) // -q: open, but not walked yet
	}
	if e == nil || !ev.Conn.Src.IsValid() || track.Key(e.Conn.Netns, e.Conn.Src, e.Conn.Dst) != track.Key(ev.Conn.Netns, ev.Conn.Src, ev.Conn.Dst) {
		return // the record's own addresses and owner stand (e.g. a SYN retransmitted before the open)
	}
	rec := ev.Conn
	ev.Conn = e.Conn
	if rec.OwnerSrc > e.Conn.OwnerSrc {
		// the kernel entry learned a better owner than the table has
		// (first I/O by the listener's own process sends no owner record)
		ev.Conn.Pid, ev.Conn.Comm, ev.Conn.OwnerSrc = rec.Pid, rec.Comm, rec.OwnerSrc
	}
}

// congEvent: a connection entered fast recovery or RTO loss: one console
// line per retransmission episode. The per-connection counters are kept by
// BPF in the connection table (authoritative, sampled every second).
func (p *pipeline) congEvent(ev *event.Event) {
	r := &ev.Retrans
	if r.CaState != event.CaRecovery && r.CaState != event.CaLoss {
		return
	}
	p.met.RetransEpisode(episodeKind(r))
	if p.cfg.Quiet {
		return
	}
	p.retransConn(ev)
	kind := "fast"
	switch {
	case r.PreEst:
		kind = "syn"
	case r.CaState == event.CaLoss:
		kind = "timeout"
	}
	p.buf = p.pr.Episode(p.buf[:0], ev, kind)
	p.out.Write(p.buf)
}

// retransEvent: one retransmitted segment (JSON only; the console shows
// episodes).
func (p *pipeline) retransEvent(ev *event.Event) {
	p.met.RetransSegments(ev.Retrans.Segs)
	if p.cfg.Quiet || !p.pr.JSON {
		return
	}
	p.retransConn(ev)
	p.buf = p.pr.RetransSegment(p.buf[:0], ev)
	p.out.Write(p.buf)
}

// ---- TCP state transitions (-P) ----

// stateEvent: one TCP state transition. The connection is named once the
// tracker knew it (EstLo set: from ESTABLISHED on, also for the close that
// ends it); before that the record has its own tuple and, for a transition
// the owner's own syscall made (connect), its process.
func (p *pipeline) stateEvent(ev *event.Event) {
	s := &ev.Ext.State
	p.met.State(s)
	if s.EstLo != 0 {
		if e := p.connOf(ev.Conn.Sock, s.EstLo); e != nil {
			ev.Conn = e.Conn
			// the established tuple: at CLOSE the socket has let its
			// local port go already
			s.Src, s.Dst = e.Conn.Src, e.Conn.Dst
		}
	}
	if ev.Conn.Pid == 0 && s.Pid != 0 {
		ev.Conn.Pid, ev.Conn.Comm = s.Pid, s.Comm
	}
	if p.stateLog != nil {
		p.lbuf = output.AppendStateLog(p.lbuf[:0], ev)
		p.stateLog.Write(p.lbuf)
	}
	if !p.cfg.Quiet {
		p.buf = p.pr.State(p.buf[:0], ev)
		p.out.Write(p.buf)
	}
}
