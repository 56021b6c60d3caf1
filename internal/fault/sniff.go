package fault

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// learned is what the sniffer knows about the connection.
type learned struct {
	fwdSeen, fwdHasAck bool
	fwdEnd, fwdAck     uint32 // SRC->DST: highest seq+len, highest ack
	fwdWin             uint16
	revSeen, revHasAck bool
	revEnd, revAck     uint32 // DST->SRC: highest seq+len, highest ack
	packets            int    // flow packets used for learning
	first, last        time.Time
	reset              bool
}

func seqMax(have bool, cur, v uint32) uint32 {
	if !have || seqAfter(v, cur) {
		return v
	}
	return cur
}

// ready reports whether both the next expected sequence number and an ack
// value are known.
func (l *learned) ready() bool {
	return (l.fwdSeen && l.fwdHasAck) || (l.revSeen && l.revHasAck)
}

// rcvNxt is the receiver's next expected sequence number: the end of the
// highest segment seen from SRC, or the highest ack from DST, whichever is
// further.
func (l *learned) rcvNxt() uint32 {
	switch {
	case l.fwdSeen && l.revHasAck:
		return seqMax(true, l.fwdEnd, l.revAck)
	case l.fwdSeen:
		return l.fwdEnd
	default:
		return l.revAck
	}
}

// ackValue is what SRC acknowledges (DST's snd_una as far as SRC is
// concerned): the ack field of SRC's latest segments, else the end of DST's
// data seen arriving at SRC.
func (l *learned) ackValue() uint32 {
	if l.fwdHasAck {
		return l.fwdAck
	}
	return l.revEnd
}

func (l *learned) window() uint16 {
	if l.fwdSeen && l.fwdWin != 0 {
		return l.fwdWin
	}
	return 502
}

type sentSeg struct {
	seq     uint32
	payload []byte
}

// sniffer follows one flow with an AF_PACKET socket.
type sniffer struct {
	fd    int
	flow  Flow
	mu    sync.Mutex
	st    learned
	sent  []sentSeg
	mark  time.Time // reverse packets after this are counted in replies
	reps  int
	err   error
	stop  chan struct{}
	done  chan struct{}
	cond  chan struct{} // signalled (non-blocking) on every learned packet
	start sync.Once
}

// openPacketSocket must run inside the namespace. ifname "" = all interfaces.
func openPacketSocket(ifname string) (int, error) {
	idx := 0
	if ifname != "" {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return -1, usagef("interface %q: %v", ifname, err)
		}
		idx = ifi.Index
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return -1, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: idx}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind AF_PACKET socket to %q: %w", ifname, err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return fd, nil
}

func newSniffer(fd int, f Flow) *sniffer {
	return &sniffer{fd: fd, flow: f, stop: make(chan struct{}), done: make(chan struct{}), cond: make(chan struct{}, 1)}
}

func (s *sniffer) run() {
	defer close(s.done)
	buf := make([]byte, 512)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		n, from, err := unix.Recvfrom(s.fd, buf, unix.MSG_TRUNC)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		outgoing := false
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			outgoing = true
		}
		p, ok := parseIPTCP(buf[:min(n, len(buf))], n)
		if !ok {
			continue
		}
		s.observe(p, outgoing, time.Now())
	}
}

func (s *sniffer) observe(p parsed, outgoing bool, now time.Time) {
	fwd := p.src == s.flow.Src && p.dst == s.flow.Dst
	rev := p.src == s.flow.Dst && p.dst == s.flow.Src
	if !fwd && !rev {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if fwd {
		for _, sg := range s.sent {
			if sg.seq == p.seq && p.paylen == len(sg.payload) && bytes.HasPrefix(sg.payload, p.payload) {
				return // our own injected segment
			}
		}
	}
	st := &s.st
	if p.flags&tcpRST != 0 {
		st.reset = true
	}
	if fwd {
		st.fwdEnd = seqMax(st.fwdSeen, st.fwdEnd, p.seq+p.seglen())
		if p.flags&tcpACK != 0 {
			st.fwdAck = seqMax(st.fwdHasAck, st.fwdAck, p.ack)
			st.fwdHasAck = true
		}
		st.fwdWin = p.window
		st.fwdSeen = true
	} else {
		st.revEnd = seqMax(st.revSeen, st.revEnd, p.seq+p.seglen())
		if p.flags&tcpACK != 0 {
			st.revAck = seqMax(st.revHasAck, st.revAck, p.ack)
			st.revHasAck = true
		}
		st.revSeen = true
		if !s.mark.IsZero() && !outgoing {
			s.reps++
		}
	}
	if st.packets == 0 {
		st.first = now
	}
	st.packets++
	st.last = now
	select {
	case s.cond <- struct{}{}:
	default:
	}
}

func (s *sniffer) snapshot() (learned, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st, s.err
}

func (s *sniffer) close() {
	close(s.stop)
	<-s.done
	unix.Close(s.fd)
}

// settle waits until the flow has been seen (up to timeout) and then until
// it has been quiet for quiet (at most maxSettle after the first packet).
func (s *sniffer) settle(ctxDone <-chan struct{}, timeout, quiet, maxSettle time.Duration) (learned, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		st, err := s.snapshot()
		if err != nil {
			return st, fmt.Errorf("sniffing: %w", err)
		}
		if st.ready() {
			break
		}
		select {
		case <-ctxDone:
			return st, errors.New("interrupted while waiting for traffic")
		case <-deadline.C:
			return st, fmt.Errorf("no packet of flow %s seen within %v; the flow needs some traffic while nwfault learns its sequence numbers", s.flow, timeout)
		case <-s.cond:
		case <-time.After(20 * time.Millisecond):
		}
	}
	for {
		st, err := s.snapshot()
		if err != nil {
			return st, fmt.Errorf("sniffing: %w", err)
		}
		now := time.Now()
		if now.Sub(st.last) >= quiet || now.Sub(st.first) >= maxSettle {
			return st, nil
		}
		select {
		case <-ctxDone:
			return st, errors.New("interrupted")
		case <-time.After(quiet / 4):
		}
	}
}

// liveSocket reports whether the namespace of the calling thread has a TCP
// socket (not listening, not in TIME_WAIT/CLOSE) with local address f.Src
// and remote address f.Dst.
func liveSocket(f Flow) (bool, error) {
	files := []string{"/proc/thread-self/net/tcp6"}
	if f.Src.Addr().Is4() {
		files = append(files, "/proc/thread-self/net/tcp")
	}
	for _, fn := range files {
		fh, err := os.Open(fn)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return false, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 4 || !strings.HasSuffix(fs[0], ":") {
				continue
			}
			l, ok1 := parseProcAddr(fs[1])
			r, ok2 := parseProcAddr(fs[2])
			if !ok1 || !ok2 || l != f.Src || r != f.Dst {
				continue
			}
			switch fs[3] {
			case "0A", "06", "07": // LISTEN, TIME_WAIT, CLOSE
				continue
			}
			fh.Close()
			return true, nil
		}
		fh.Close()
	}
	return false, nil
}

// parseProcAddr parses "0100007F:0016" (/proc/net/tcp{,6}): 32-bit words
// printed in host order, port in hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return netip.AddrPort{}, false
	}
	hx, err := hex.DecodeString(s[:i])
	if err != nil || (len(hx) != 4 && len(hx) != 16) {
		return netip.AddrPort{}, false
	}
	b := make([]byte, len(hx))
	for w := 0; w < len(hx); w += 4 {
		binary.NativeEndian.PutUint32(b[w:], binary.BigEndian.Uint32(hx[w:]))
	}
	port, err := strconv.ParseUint(s[i+1:], 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}
