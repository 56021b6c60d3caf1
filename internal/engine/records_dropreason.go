package engine

import (
	"cmp"
	"maps"
	"slices"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel/ksym"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/track"
)

// ---- packet drops (-k) ----

// SymbolSource is implemented by a concern that loaded the kernel's
// symbols (internal/dropreason): drop locations and stacks are printed
// with them.
type SymbolSource interface{ Symbols() *ksym.Table }

// listenOverflow is the reason name counted per listener.
const listenOverflow = "TCP_LISTEN_OVERFLOW"

type listenKey struct {
	netns uint32
	port  uint16
}

// dropState is the pipeline's part of -k: options, drop.log, and the
// accept-queue overflows counted per listener (reported at exit).
type dropState struct {
	opts      output.DropOpts
	log       *output.Log
	listeners map[listenKey]*output.ListenOverflow
}

func (p *pipeline) drops() *dropState {
	if p.drop != nil {
		return p.drop
	}
	d := &dropState{
		opts:      output.DropOpts{Location: p.cfg.AddrToFunc, Stack: p.cfg.Stack},
		log:       p.files.Log(output.DropLogName),
		listeners: map[listenKey]*output.ListenOverflow{},
	}
	for _, c := range p.concerns {
		if s, ok := c.(SymbolSource); ok {
			d.opts.Syms = s.Symbols()
		}
	}
	p.drop = d
	return d
}

// dropConn names the connection of a dropped packet: the tracked
// connection of its socket (the record carries the low bits of its
// establishment time), else, for TCP without a socket (dropped before the
// socket lookup: netfilter, checksum, ...), the tracked connection with the
// packet's addresses, received or sent.
func (p *pipeline) dropConn(ev *event.Event) *track.Entry {
	x := &ev.Ext.Drop
	if x.EstLo != 0 {
		return p.connOf(ev.Conn.Sock, x.EstLo)
	}
	if ev.Conn.Sock != 0 || x.Proto != event.ProtoTCP || !x.Src.IsValid() || x.FromSock {
		return nil
	}
	if e := p.table.Lookup(track.Key(ev.Conn.Netns, x.Dst, x.Src)); e != nil {
		return e // received: remote -> local
	}
	return p.table.Lookup(track.Key(ev.Conn.Netns, x.Src, x.Dst))
}

func (p *pipeline) dropEvent(ev *event.Event) {
	d := p.drops()
	if e := p.dropConn(ev); e != nil {
		sk, netns := ev.Conn.Sock, ev.Conn.Netns
		ev.Conn = e.Conn
		if sk != 0 {
			ev.Conn.Sock = sk
		}
		ev.Conn.Netns = netns
	}
	p.met.Drop(&ev.Ext.Drop)
	if ev.Ext.Drop.Name == listenOverflow {
		// the segment came to the listener: its local port is the
		// destination
		k := listenKey{ev.Conn.Netns, ev.Ext.Drop.Dst.Port()}
		l := d.listeners[k]
		if l == nil {
			l = &output.ListenOverflow{Netns: k.netns, Port: k.port}
			d.listeners[k] = l
		}
		l.Drops++
		if l.Pid == 0 && ev.Conn.Pid != 0 {
			l.Pid, l.Comm = ev.Conn.Pid, ev.Conn.Comm
		}
	}
	if d.log != nil {
		p.lbuf = output.AppendDropLog(p.lbuf[:0], ev, d.opts)
		d.log.Write(p.lbuf)
	}
	if !p.cfg.Quiet {
		p.buf = p.pr.Drop(p.buf[:0], ev, d.opts)
		p.out.Write(p.buf)
	}
}

// dropFinish reports the accept-queue overflows of each listener (a
// summary: printed with -q too), by namespace and port.
func (p *pipeline) dropFinish() {
	if !p.cfg.DropReason {
		return
	}
	d := p.drops()
	ls := slices.SortedFunc(maps.Values(d.listeners), func(a, b *output.ListenOverflow) int {
		return cmp.Or(cmp.Compare(a.Netns, b.Netns), cmp.Compare(a.Port, b.Port))
	})
	now := output.MonoNow()
	for _, l := range ls {
		p.buf = p.pr.ListenOverflowLine(p.buf[:0], now, l)
		p.out.Write(p.buf)
		if d.log != nil {
			p.lbuf = output.AppendListenOverflowLog(p.lbuf[:0], l)
			d.log.Write(p.lbuf)
		}
	}
}
