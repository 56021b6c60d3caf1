package engine

import (
	"time"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

// ---- protocol counters (-C) ----

// countState is the pipeline's state for -C: what each protocol row
// counted since the previous line and since the start. It counts the
// records the pipeline handles, so a row's totals are the sums of that
// protocol's records over the run (the test holds them to that): TCP data
// segments (packet records), UDP datagrams (the -u flows' counts, not the
// -t datagram records, which a full ring may thin), ICMP messages (-I),
// HTTP request and status lines (-i), and the packets of the application
// captures (-N, -M, -R) with the requests their trackers report.
type countState struct {
	on         [event.CountProtos]bool // rows of this run (their flags are on)
	cur, total [event.CountProtos]event.ProtoCount
	last       uint64 // monotonic ns of the previous line (the run's start at first)
	start      uint64
}

// countRows says which rows a configuration has: a protocol whose records
// are off has no row (its counts would be zeros that mean nothing).
func (p *pipeline) countInit(now uint64) {
	c := &p.count
	cfg := p.cfg
	c.on = [event.CountProtos]bool{
		event.CountTCP:   !cfg.NoPackets,
		event.CountUDP:   cfg.UDP,
		event.CountICMP:  cfg.ICMP,
		event.CountHTTP:  cfg.HTTP && !cfg.NoPackets,
		event.CountDNS:   cfg.DNS,
		event.CountMySQL: cfg.MySQL,
		event.CountRedis: cfg.Redis,
	}
	for i := range c.cur {
		c.cur[i].Proto = event.CountProto(i)
		c.total[i].Proto = event.CountProto(i)
	}
	c.last, c.start = now, now
}

// countTicker is -C's clock (nil without -C).
func (p *pipeline) countTicker() (<-chan time.Time, func()) {
	if p.cfg.CountSecs == 0 {
		return nil, func() {}
	}
	t := time.NewTicker(time.Duration(p.cfg.CountSecs) * time.Second)
	return t.C, t.Stop
}

// countAdd counts n units and bytes of protocol pr in one direction.
func (p *pipeline) countAdd(pr event.CountProto, rx bool, n, bytes uint64) {
	d := &p.count.cur[pr].Tx
	if rx {
		d = &p.count.cur[pr].Rx
	}
	d.N += n
	d.Bytes += bytes
}

// countRequest counts a request of protocol pr (paired with its response,
// or given up on).
func (p *pipeline) countRequest(pr event.CountProto) {
	if p.cfg.CountSecs != 0 {
		p.count.cur[pr].Requests++
	}
}

// countEvent counts one record (handle calls it first, with -C).
func (p *pipeline) countEvent(ev *event.Event) {
	switch ev.Type {
	case event.Packet:
		p.countAdd(event.CountTCP, ev.Packet.Rx, 1, uint64(ev.Packet.Len))
	case event.UDPFlow:
		u := &ev.Ext.UDP
		p.countAdd(event.CountUDP, true, u.RxDgrams, u.RxBytes)
		p.countAdd(event.CountUDP, false, u.TxDgrams, u.TxBytes)
	case event.ICMP:
		p.countAdd(event.CountICMP, ev.Ext.ICMP.Rx, 1, uint64(ev.Ext.ICMP.Len))
	case event.DNS, event.Redis, event.MySQL:
		a := &ev.Ext.App
		if a.Tick {
			return
		}
		pr := event.CountDNS
		switch ev.Type {
		case event.Redis:
			pr = event.CountRedis
		case event.MySQL:
			pr = event.CountMySQL
		}
		p.countAdd(pr, a.Rx, 1, uint64(a.PayLen))
	}
}

// countHTTP counts an HTTP request or status line (packet records, -i).
func (p *pipeline) countHTTP(rx, request bool) {
	if p.cfg.CountSecs == 0 {
		return
	}
	p.countAdd(event.CountHTTP, rx, 1, 0)
	if request {
		p.count.cur[event.CountHTTP].Requests++
	}
}

// countLines prints one line per row for the interval that ends at now and
// starts the next; final also prints the run's totals.
func (p *pipeline) countLines(now uint64, final bool) {
	c := &p.count
	l := p.files.Log(output.CountLogName)
	for i := range c.cur {
		if !c.on[i] {
			continue
		}
		r := &c.cur[i]
		r.PeriodNs = now - c.last
		t := &c.total[i]
		t.Rx.N, t.Rx.Bytes = t.Rx.N+r.Rx.N, t.Rx.Bytes+r.Rx.Bytes
		t.Tx.N, t.Tx.Bytes = t.Tx.N+r.Tx.N, t.Tx.Bytes+r.Tx.Bytes
		t.Requests += r.Requests
		p.countLine(l, now, r, false)
		*r = event.ProtoCount{Proto: r.Proto}
	}
	c.last = now
	if !final {
		return
	}
	for i := range c.total {
		if c.on[i] {
			c.total[i].PeriodNs = now - c.start
			p.countLine(l, now, &c.total[i], true)
		}
	}
}

func (p *pipeline) countLine(l *output.Log, now uint64, r *event.ProtoCount, final bool) {
	if l != nil {
		p.lbuf = output.AppendCountLog(p.lbuf[:0], r, final)
		l.Write(p.lbuf)
	}
	// the totals also with -q: they are the run's summary
	if !p.cfg.Quiet || final {
		p.buf = p.pr.Count(p.buf[:0], now, r, final)
		p.out.Write(p.buf)
	}
}
