package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rr --blackout AT:FOR: AT after the measuring starts, every connection
// gets a classic BPF socket filter that accepts nothing (one instruction,
// "ret #0"); FOR later it is detached. TCP runs a socket's filter on every
// segment it receives (tcp_filter in tcp_v4_rcv / tcp_v6_rcv, on every
// kernel netwatcher supports), so for FOR the client sees neither the
// server's data nor its ACKs: both ends time out and retransmit, and every
// retransmission leaves the host (it is traced as sent, and tcpdump sees
// it). Deleting the server's address instead (the kernel matrix did that)
// makes the sends themselves fail for want of a route: the kernel counts
// those attempts in total_retrans but, before 6.14, fires no
// tcp_retransmit_skb for them, so whether any retransmission was seen
// depended on a retransmit timer firing after the address came back.
// Needs no privilege, no module and no tool: the guests of the kernel
// matrix have only busybox.

// parseBlackout parses AT:FOR; "" is no blackout.
func parseBlackout(s string) (at, dur time.Duration, err error) {
	if s == "" {
		return 0, 0, nil
	}
	a, f, ok := strings.Cut(s, ":")
	if ok {
		at, err = time.ParseDuration(a)
	}
	if ok && err == nil {
		dur, err = time.ParseDuration(f)
	}
	if !ok || err != nil || at < 0 || dur <= 0 {
		return 0, 0, usageError{fmt.Sprintf("rr: --blackout %q: want AT:FOR, two durations (AT >= 0, FOR > 0), e.g. 1s:2s", s)}
	}
	return at, dur, nil
}

// dropAll is the filter: accept 0 bytes of every packet.
var dropAll = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}

func setDropAll(conn net.Conn, on bool) error {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("blackout: not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if on {
			prog := unix.SockFprog{Len: uint16(len(dropAll)), Filter: &dropAll[0]}
			serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
		}
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("setsockopt", serr)
	}
	return nil
}

// startBlackout runs the blackout in a goroutine; the channel closes when
// it is over (filters detached) or ctx ended first. A connection already
// closed is skipped; any other failure is reported on stderr, since a
// blackout that did not happen makes the run meaningless.
func startBlackout(ctx context.Context, conns []net.Conn, at, dur time.Duration) <-chan struct{} {
	done := make(chan struct{})
	set := func(on bool) {
		for _, c := range conns {
			if err := setDropAll(c, on); err != nil && !isClosed(err) {
				fmt.Fprintln(os.Stderr, "nwpeer rr: --blackout:", err)
			}
		}
	}
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
			return
		case <-time.After(at):
		}
		set(true)
		defer set(false)
		select {
		case <-ctx.Done():
		case <-time.After(dur):
		}
	}()
	return done
}

func isClosed(err error) bool {
	return err == net.ErrClosed || err == syscall.EBADF || strings.Contains(err.Error(), "use of closed")
}
