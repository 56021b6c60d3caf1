package engine

import (
	"cmp"
	"slices"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

// ---- listening sockets (-x) ----

// listenState is the last walk of the listening sockets: a console/JSON
// line is printed only for a listener that is new, changed (queue, limit,
// drops, owner) or gone since, so an idle server adds nothing per second;
// connects.log lists every listener at every refresh.
type listenState struct {
	prev map[uint64]event.Listener
	cur  []event.Listener
}

// listeners walks every listening TCP socket (-x): one listener line each
// appended to p.lbuf (connects.log, after the connections) and, without
// -q, console lines for the changes since the last walk.
func (p *pipeline) listeners(now uint64) {
	if !p.cfg.Extra || p.cp == nil {
		return
	}
	ls := &p.lis
	ls.cur = ls.cur[:0]
	if err := p.cp.Listeners(func(l *event.Listener) {
		if p.listenerWanted(l) {
			ls.cur = append(ls.cur, *l)
		}
	}); err != nil {
		p.log.Warn("sampling listeners failed", "err", err)
		return
	}
	ls.update(func(l *event.Listener) { p.lbuf = output.AppendListenerLog(p.lbuf, l) },
		func(what string, l *event.Listener) { p.listenerLine(what, now, l) })
}

// update sorts the walk just made (ls.cur) by namespace, port, address,
// socket, calls all with each listener, and changed ("sample" or
// "closed") with those new, changed or gone since the previous walk.
func (ls *listenState) update(all func(*event.Listener), changed func(string, *event.Listener)) {
	slices.SortFunc(ls.cur, func(a, b event.Listener) int {
		return cmp.Or(cmp.Compare(a.Netns, b.Netns), cmp.Compare(a.Local.Port(), b.Local.Port()),
			a.Local.Addr().Compare(b.Local.Addr()), cmp.Compare(a.Sock, b.Sock))
	})
	next := make(map[uint64]event.Listener, len(ls.cur))
	for i := range ls.cur {
		l := &ls.cur[i]
		all(l)
		next[l.Sock] = *l
		if old, ok := ls.prev[l.Sock]; !ok || old != *l {
			changed("sample", l)
		}
	}
	for sk, l := range ls.prev {
		if _, ok := next[sk]; !ok {
			changed("closed", &l)
		}
	}
	ls.prev = next
}

func (p *pipeline) listenerLine(what string, ts uint64, l *event.Listener) {
	if p.cfg.Quiet {
		return
	}
	p.buf = p.pr.Listener(p.buf[:0], what, ts, l)
	p.out.Write(p.buf)
}

// listenerWanted applies the local side of the filters: -s (the
// listener's port) and -S (its address; a wildcard listener, 0.0.0.0 or
// ::, matches any). -d/-D name a remote side, which a listener has not.
func (p *pipeline) listenerWanted(l *event.Listener) bool {
	if p.cfg.Sport != 0 && l.Local.Port() != p.cfg.Sport {
		return false
	}
	a := l.Local.Addr().Unmap()
	if len(p.cfg.SrcNets) == 0 || a.IsUnspecified() {
		return true
	}
	for _, n := range p.cfg.SrcNets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}
