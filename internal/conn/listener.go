package conn

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/event"
)

// The -x listener walk: nw_listen_socks (conn.bpf.c) holds every listening
// TCP socket (inserted at listen(), by the start-up walk for older ones,
// deleted when the listener closes); nw_iter_listeners reads each one's
// accept queue and drop counter.

// attachListeners makes the listener walk's iterator (Attach).
func (p *Probe) attachListeners() error {
	prog, m := p.Coll.Programs["nw_iter_listeners"], p.Coll.Maps["nw_listen_socks"]
	if prog == nil || m == nil {
		return nil
	}
	it, err := link.AttachIter(link.IterOptions{Program: prog, Map: m})
	if err != nil {
		return fmt.Errorf("conn: listener iterator: %w", err)
	}
	p.listeners = it
	return nil
}

// knowListenSock records a TCP listener found by the start-up walk in
// nw_listen_socks (MPTCP listeners are left out: their accept queue is on
// a subflow socket the file table does not show; one made while
// netwatcher runs is seen through that subflow's own listen). An entry made
// by the state hook in between is fresher and stays. A listener closed
// between the walk and this insert leaves an entry whose socket is no
// longer in LISTEN: Listeners skips it.
func (p *Probe) knowListenSock(r *connNwIterRec) {
	m := p.Coll.Maps["nw_listen_socks"]
	if m == nil || r.Proto != unix.IPPROTO_TCP {
		return
	}
	_ = m.Update(r.Sk, &r.Conn.Owner, ebpf.UpdateNoExist)
}

// Listeners calls fn with every listening TCP socket, all namespaces, as
// it is now (the Listener is reused between calls). Without an attached
// walk (before Attach) it does nothing.
func (p *Probe) Listeners(fn func(l *event.Listener)) error {
	if p.listeners == nil {
		return nil
	}
	var l event.Listener
	return readIter(p.listeners, func(r *connNwListenRec) {
		if r.State != unix.BPF_TCP_LISTEN {
			return // stale entry, or leaving LISTEN right now
		}
		decodeListener(&l, r)
		fn(&l)
	})
}

func decodeListener(l *event.Listener, r *connNwListenRec) {
	*l = event.Listener{
		Sock:       r.Sk,
		Netns:      r.Conn.Netns,
		Local:      netip.AddrPortFrom(Addr(r.Conn.Family, &r.Conn.Saddr), r.Conn.Sport),
		Backlog:    r.Backlog,
		MaxBacklog: r.MaxBacklog,
		Drops:      r.Drops,
	}
	l.SetOwner(r.Conn.Owner.Pid, r.Conn.Owner.Src, &r.Conn.Owner.Comm)
}
