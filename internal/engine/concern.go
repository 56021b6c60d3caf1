package engine

import (
	"strconv"
	"time"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/httpinfo"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/track"
)

// enrich fills owner and addresses of an event from the connection table.
func (p *pipeline) enrich(ev *event.Event) {
	if ev.Conn.Sock == 0 && ev.Type == event.Error {
		// Dropped before the socket lookup: find it by addresses (the
		// segment travels remote -> local).
		k := track.Key(ev.Conn.Netns, ev.Err.Dst, ev.Err.Src)
		e := p.table.Lookup(k)
		if e == nil && p.table.AdoptSampled && time.Since(p.lastAdhoc) > 10*time.Millisecond {
			// -q: a connection younger than the last table walk is not
			// in the table yet; walk now (errors are rare; at most every
			// 10 ms under an error flood).
			p.lastAdhoc = time.Now()
			p.sample()
			e = p.table.Lookup(k)
		}
		if e != nil {
			ev.Conn.Sock = e.Conn.Sock
		}
	}
	e := p.table.Get(ev.Conn.Sock)
	if e != nil && ev.Type != event.Error && ev.Conn.Src.IsValid() &&
		(e.Conn.Src != ev.Conn.Src || e.Conn.Dst != ev.Conn.Dst || e.Conn.Netns != ev.Conn.Netns) {
		// Retransmit/congestion records carry the addresses of the
		// kernel table's entry for the socket, i.e. of its current
		// connection: the table's entry is an older one on reused
		// socket memory (under -q the newer one is only learned by the
		// next walk, or by the lookup below). Errors differ: their
		// addresses are the segment's, which may be the older
		// connection's, so they are checked after the lookup and never
		// replace the entry.
		e = nil
	}
	if e == nil && ev.Conn.Sock != 0 && p.table.AdoptSampled {
		var c event.Conn // -q: open, but not walked yet
		if p.cp != nil && p.cp.Lookup(ev.Conn.Sock, &c) && c.EstNs != 0 {
			e = p.table.Open(&c)
			p.dirty = true
		}
	}
	if e != nil && ev.Type == event.Error && !sameFlow(e, &ev.Err) {
		// The socket's memory now belongs to another connection (the
		// close of this one is not handled yet): not its owner.
		e = nil
	}
	if e != nil {
		ev.Conn.Pid, ev.Conn.Comm, ev.Conn.OwnerSrc = e.Conn.Pid, e.Conn.Comm, e.Conn.OwnerSrc
		if !ev.Conn.Src.IsValid() {
			ev.Conn.Src, ev.Conn.Dst = e.Conn.Src, e.Conn.Dst
		}
	}
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

// handleConcern formats events of the optional concerns.
func (p *pipeline) handleConcern(ev *event.Event) {
	if ev.Type == event.Packet {
		// Packet lines show no owner; their addresses come from
		// packetAddrs (by socket and establishment time).
		p.packet(ev)
		return
	}
	p.enrich(ev)
	switch ev.Type {
	case event.Error:
		p.errorEvent(ev)
	case event.Cong:
		p.congEvent(ev)
	case event.Retrans:
		p.retransEvent(ev)
	}
}

func (p *pipeline) packet(ev *event.Event) {
	pk := &ev.Packet
	http, line := p.httpText(pk)
	p.lbuf = output.AppendPacketLog(p.lbuf[:0], ev.Conn.Sock, pk, p.cfg.Time, http)
	p.files.Packet(p.lbuf)
	if !p.cfg.Quiet {
		if ok := p.packetAddrs(ev); ok || !p.park(ev) {
			if !ok {
				p.noAddrs++
			}
			p.printPacket(ev, http)
		}
	}
	if line.Kind != httpinfo.None {
		p.httpPair(ev, line)
	}
}

// httpText is the http_info text of a packet ("-" when none; valid until the
// next call).
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

func (p *pipeline) printPacket(ev *event.Event, http []byte) {
	p.buf = p.buf[:0]
	if p.cfg.Output == config.JSON {
		var h []byte
		if p.cfg.HTTP {
			h = http
		}
		p.buf = output.AppendPacketJSON(p.buf, ev, p.cfg.Time, h)
	} else {
		if !p.pktHdr {
			p.buf = append(p.buf, output.PacketHeader...)
			p.pktHdr = true
		}
		p.buf = output.AppendPacketTable(p.buf, ev, p.cfg.Time, http)
	}
	p.out.Write(p.buf)
}

// packetAddrs adds the connection's addresses to a packet record (records
// carry only the socket) and reports whether they were found: in the table,
// else (the two rings are read independently, so a record may come before
// its connection's open event) in the kernel table while the connection is
// open; the table takes it in then.
func (p *pipeline) packetAddrs(ev *event.Event) bool {
	var ok bool
	sk, est := ev.Conn.Sock, ev.Packet.EstLo
	if ev.Conn.Src, ev.Conn.Dst, ok = p.table.AddrsOf(sk, est); ok {
		return true
	}
	if sk == p.missSk && est == p.missEst {
		return false // the kernel did not have it for the previous record either
	}
	var c event.Conn
	if p.cp != nil && p.cp.Lookup(sk, &c) && c.EstNs != 0 && uint32(c.EstNs) == est {
		p.table.Open(&c)
		p.dirty = true
		ev.Conn.Src, ev.Conn.Dst = c.Src, c.Dst
		return true
	}
	// Records of a connection come in runs: one syscall per run, not per
	// record, when it is already gone from the kernel too.
	p.missSk, p.missEst = sk, est
	return false
}

// Packets of a connection that opened and closed before the lifecycle ring
// was read wait (parked, in order) until its events are handled, at most
// parkWait; then they are printed, with "-" addresses if still unknown.
const (
	parkMax  = 4096
	parkWait = 200 * time.Millisecond
)

type parkedPkt struct {
	ev event.Event
	at time.Time
}

func (p *pipeline) park(ev *event.Event) bool {
	if len(p.parked) >= parkMax {
		return false
	}
	p.parked = append(p.parked, parkedPkt{ev: *ev, at: time.Now()})
	return true
}

// unpark prints the parked packets whose connection is now known, and, in
// order, the ones that waited long enough (all of them with force).
func (p *pipeline) unpark(force bool) {
	if len(p.parked) == 0 {
		return
	}
	now := time.Now()
	kept := p.parked[:0]
	for i := range p.parked {
		x := &p.parked[i]
		var ok bool
		x.ev.Conn.Src, x.ev.Conn.Dst, ok = p.table.AddrsOf(x.ev.Conn.Sock, x.ev.Packet.EstLo)
		if ok || force || now.Sub(x.at) >= parkWait {
			if !ok {
				p.noAddrs++
			}
			http, _ := p.httpText(&x.ev.Packet)
			p.printPacket(&x.ev, http)
			continue
		}
		kept = append(kept, *x)
	}
	clear(p.parked[len(kept):])
	p.parked = kept
}

// httpPair pairs requests with responses on one connection. Both sockets of
// a local connection see the same exchange; each socket is paired on its
// own, so a response latency is reported per side.
func (p *pipeline) httpPair(ev *event.Event, line httpinfo.Line) {
	if p.pairer == nil {
		p.pairer = httpinfo.NewPairer(0, 0)
	}
	m, ok := p.pairer.Observe(ev.Conn.Sock, ev.Packet.Seq, ev.TS, line)
	if !ok || p.cfg.Quiet {
		return
	}
	if p.cfg.Output == config.JSON {
		b := p.buf[:0]
		b = append(b, `{"type":"http","ts_ns":`...)
		b = strconv.AppendUint(b, ev.TS, 10)
		b = append(b, `,"sock":"0x`...)
		b = strconv.AppendUint(b, ev.Conn.Sock, 16)
		b = append(b, `","method":"`...)
		b = append(b, m.Method.String()...)
		b = append(b, `","status":`...)
		b = strconv.AppendUint(b, uint64(m.Status), 10)
		b = append(b, `,"latency_ns":`...)
		b = strconv.AppendUint(b, m.Latency, 10)
		b = append(b, `,"interim":`...)
		b = strconv.AppendBool(b, m.Interim)
		b = append(b, "}\n"...)
		p.buf = b
		p.out.Write(p.buf)
	}
}

func (p *pipeline) errorEvent(ev *event.Event) {
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
	p.lbuf = output.AppendErrLog(p.lbuf[:0], ev.Conn.Sock, &ev.Err, name)
	p.files.Error(p.lbuf)
	// Alerts are printed even with -q: they are the point of -e.
	p.buf = p.buf[:0]
	if p.cfg.Output == config.JSON {
		p.buf = output.AppendErrJSON(p.buf, ev, name)
	} else {
		p.buf = output.AppendErrTable(p.buf, ev, name)
	}
	p.out.Write(p.buf)
}

var caNames = [...]string{"Open", "Disorder", "CWR", "Recovery", "Loss"}

func caName(s uint8) string {
	if int(s) < len(caNames) {
		return caNames[s]
	}
	return "state" + strconv.Itoa(int(s))
}

// congEvent: a connection entered fast recovery or RTO loss: one console
// line per retransmission episode. The per-connection counters are kept by
// BPF in the connection table (authoritative, sampled every second).
func (p *pipeline) congEvent(ev *event.Event) {
	r := &ev.Retrans
	if r.CaState != event.CaRecovery && r.CaState != event.CaLoss {
		return
	}
	if p.cfg.Quiet {
		return
	}
	kind := "fast"
	if r.CaState == event.CaLoss {
		kind = "timeout"
	}
	b := p.buf[:0]
	if p.cfg.Output == config.JSON {
		b = append(b, `{"type":"retrans","ts_ns":`...)
		b = strconv.AppendUint(b, ev.TS, 10)
		b = append(b, `,"netns":`...)
		b = strconv.AppendUint(b, uint64(ev.Conn.Netns), 10)
		b = append(b, `,"sock":"0x`...)
		b = strconv.AppendUint(b, ev.Conn.Sock, 16)
		b = append(b, `","kind":"`...)
		b = append(b, kind...)
		b = append(b, `","from":"`...)
		b = append(b, caName(r.OldState)...)
		b = append(b, `","to":"`...)
		b = append(b, caName(r.CaState)...)
		b = append(b, `","src":"`...)
		b = ev.Conn.Src.AppendTo(b)
		b = append(b, `","dst":"`...)
		b = ev.Conn.Dst.AppendTo(b)
		b = append(b, `","pid":`...)
		b = strconv.AppendUint(b, uint64(ev.Conn.Pid), 10)
		b = append(b, "}\n"...)
	} else {
		b = append(b, "[R] "...)
		b = append(b, kind...)
		b = append(b, " retransmit ("...)
		b = append(b, caName(r.OldState)...)
		b = append(b, " -> "...)
		b = append(b, caName(r.CaState)...)
		b = append(b, "): sock = 0x"...)
		b = strconv.AppendUint(b, ev.Conn.Sock, 16)
		b = append(b, ' ')
		b = ev.Conn.Src.AppendTo(b)
		b = append(b, " -> "...)
		b = ev.Conn.Dst.AppendTo(b)
		b = append(b, '\n')
	}
	p.buf = b
	p.out.Write(p.buf)
}

// retransEvent: one retransmitted segment (JSON only; the console shows
// episodes).
func (p *pipeline) retransEvent(ev *event.Event) {
	if p.cfg.Quiet || p.cfg.Output != config.JSON {
		return
	}
	b := p.buf[:0]
	b = append(b, `{"type":"retrans_segment","ts_ns":`...)
	b = strconv.AppendUint(b, ev.TS, 10)
	b = append(b, `,"sock":"0x`...)
	b = strconv.AppendUint(b, ev.Conn.Sock, 16)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, uint64(ev.Retrans.Seq), 10)
	b = append(b, `,"segs":`...)
	b = strconv.AppendUint(b, uint64(ev.Retrans.Segs), 10)
	b = append(b, `,"netns":`...)
	b = strconv.AppendUint(b, uint64(ev.Conn.Netns), 10)
	b = append(b, `,"src":"`...)
	b = ev.Conn.Src.AppendTo(b)
	b = append(b, `","dst":"`...)
	b = ev.Conn.Dst.AppendTo(b)
	b = append(b, `","ca_state":"`...)
	b = append(b, caName(ev.Retrans.CaState)...)
	b = append(b, "\"}\n"...)
	p.buf = b
	p.out.Write(p.buf)
}

// httpSummary reports the request/response statistics of a closing
// connection (-i) and forgets its pairing state.
func (p *pipeline) httpSummary(ev *event.Event) {
	if p.pairer == nil {
		return
	}
	s, ok := p.pairer.Forget(ev.Conn.Sock)
	if !ok || p.cfg.Quiet || s.Requests+s.Responses == 0 {
		return
	}
	b := p.buf[:0]
	if p.cfg.Output == config.JSON {
		b = append(b, `{"type":"http_summary","ts_ns":`...)
		b = strconv.AppendUint(b, ev.TS, 10)
		b = append(b, `,"sock":"0x`...)
		b = strconv.AppendUint(b, ev.Conn.Sock, 16)
		b = append(b, `","requests":`...)
		b = strconv.AppendUint(b, s.Requests, 10)
		b = append(b, `,"responses":`...)
		b = strconv.AppendUint(b, s.Responses, 10)
		b = append(b, `,"matched":`...)
		b = strconv.AppendUint(b, s.Matched, 10)
		b = append(b, `,"unmatched":`...)
		b = strconv.AppendUint(b, s.Unmatched, 10)
		b = append(b, `,"latency_min_ns":`...)
		b = strconv.AppendUint(b, s.MinLatency, 10)
		b = append(b, `,"latency_avg_ns":`...)
		b = strconv.AppendUint(b, s.AvgLatency(), 10)
		b = append(b, `,"latency_max_ns":`...)
		b = strconv.AppendUint(b, s.MaxLatency, 10)
		for c := 2; c <= 5; c++ {
			b = append(b, `,"status_`...)
			b = strconv.AppendInt(b, int64(c), 10)
			b = append(b, `xx":`...)
			b = strconv.AppendUint(b, s.Class[c], 10)
		}
		b = append(b, "}\n"...)
	} else {
		b = append(b, "[H] http: sock = 0x"...)
		b = strconv.AppendUint(b, ev.Conn.Sock, 16)
		b = append(b, " requests = "...)
		b = strconv.AppendUint(b, s.Requests, 10)
		b = append(b, " responses = "...)
		b = strconv.AppendUint(b, s.Responses, 10)
		b = append(b, " latency min/avg/max = "...)
		b = strconv.AppendFloat(b, float64(s.MinLatency)/1000, 'f', 1, 64)
		b = append(b, '/')
		b = strconv.AppendFloat(b, float64(s.AvgLatency())/1000, 'f', 1, 64)
		b = append(b, '/')
		b = strconv.AppendFloat(b, float64(s.MaxLatency)/1000, 'f', 1, 64)
		b = append(b, " us\n"...)
	}
	p.buf = b
	p.out.Write(p.buf)
}
