package event

import "net/netip"

// Listener is one listening TCP socket as the -x walk reads it
// (internal/conn): its accept queue and its listen drops, now.
type Listener struct {
	Sock  uint64         // struct sock * of the listener
	Netns uint32         // network namespace inode
	Local netip.AddrPort // bound address (0.0.0.0 / :: for any) and port
	// Owner: the process that called listen(), or for a listener older
	// than netwatcher the one holding it at start-up (OwnerPreexisting).
	Pid      uint32
	OwnerSrc OwnerSrc
	Comm     Comm
	// Backlog and MaxBacklog: sk_ack_backlog and sk_max_ack_backlog, the
	// accept queue's length and limit (ss -l: Recv-Q and Send-Q).
	Backlog, MaxBacklog uint32
	// Drops: sk_drops of the listener, every tcp_listendrop() since it
	// was created: SYN-queue drops and accept-queue overflows
	// (TcpExtListenDrops counts the same, per namespace).
	Drops uint32
}

// SetOwner fills the owner from a record's struct nw_owner.
func (l *Listener) SetOwner(pid uint32, src uint8, comm *[16]int8) {
	l.Pid, l.OwnerSrc = pid, OwnerSrc(src)
	for i, b := range comm {
		l.Comm[i] = byte(b)
	}
}
