// Package ringread reads a BPF ring buffer map in batches.
//
// Why not cilium/ebpf's ringbuf.Reader: it takes a mutex, reads the
// producer position twice and stores the consumer position once per record.
// The consumer position shares a cache line that every BPF producer reads on
// each reservation, so a store per record moves that line between CPUs once
// per record. Here a batch reads the producer position once, hands every
// committed record to the caller in place (no copy), and stores the consumer
// position once at the end (and every quarter of the ring inside long
// batches, so producers never wait for space that was already read).
//
// Memory layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position
// (mapped read-write), page 1 the producer position, then the data pages
// mapped twice in a row, so a record that wraps around the end is contiguous.
// Each record: an 8-byte header (length with a busy and a discard bit, page
// offset), then the data, padded to 8 bytes.
package ringread

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

const (
	hdrSize    = 8
	busyBit    = 1 << 31
	discardBit = 1 << 30
)

// ErrFlushed is returned by Wait after Flush: read what is left, then stop.
var ErrFlushed = errors.New("ring flushed")

// Reader reads one BPF_MAP_TYPE_RINGBUF map. Batch and Wait are for one
// goroutine; Flush and Close may be called from any.
type Reader struct {
	cons, prod []byte // the two mappings
	consPos    *uint64
	prodPos    *uint64
	data       []byte // the data pages, twice
	mask       uint64
	size       uint64

	epfd, evfd int
	epf        *os.File // epfd in the Go netpoller: a waiting reader holds no P
	epc        syscall.RawConn
	flushed    atomic.Bool
	events     [2]unix.EpollEvent
}

// Open maps the ring of m (a BPF_MAP_TYPE_RINGBUF) for reading.
func Open(m *ebpf.Map) (*Reader, error) {
	if m.Type() != ebpf.RingBuf {
		return nil, fmt.Errorf("ringread: map type %s, want RingBuf", m.Type())
	}
	size := uint64(m.MaxEntries())
	if size == 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("ringread: size %d is not a power of two", size)
	}
	page := os.Getpagesize()
	r := &Reader{size: size, mask: size - 1, epfd: -1, evfd: -1}
	var err error
	r.cons, err = unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("ringread: mmap consumer page: %w", err)
	}
	r.prod, err = unix.Mmap(m.FD(), int64(page), page+2*int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("ringread: mmap data pages: %w", err)
	}
	r.consPos = (*uint64)(unsafe.Pointer(&r.cons[0]))
	r.prodPos = (*uint64)(unsafe.Pointer(&r.prod[0]))
	r.data = r.prod[page:]
	if r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		r.Close()
		return nil, fmt.Errorf("ringread: epoll: %w", err)
	}
	if r.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		r.Close()
		return nil, fmt.Errorf("ringread: eventfd: %w", err)
	}
	for _, fd := range []int{m.FD(), r.evfd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			r.Close()
			return nil, fmt.Errorf("ringread: epoll add: %w", err)
		}
	}
	if err := unix.SetNonblock(r.epfd, true); err != nil {
		r.Close()
		return nil, fmt.Errorf("ringread: epoll: %w", err)
	}
	r.epf = os.NewFile(uintptr(r.epfd), "ringread-epoll")
	if r.epc, err = r.epf.SyscallConn(); err != nil {
		r.Close()
		return nil, fmt.Errorf("ringread: epoll: %w", err)
	}
	return r, nil
}

// Available is the number of bytes written and not yet consumed (records
// still being written included).
func (r *Reader) Available() uint64 {
	return atomic.LoadUint64(r.prodPos) - atomic.LoadUint64(r.consPos)
}

// Produced is the producer position: the end of the last record reserved
// (committed or still being written).
func (r *Reader) Produced() uint64 { return atomic.LoadUint64(r.prodPos) }

// Consumed is the consumer position: everything before it has been read.
func (r *Reader) Consumed() uint64 { return atomic.LoadUint64(r.consPos) }

// Batch hands every committed record, in ring order, to fn, until the ring
// is empty, a record still being written is reached (busy: it is committed
// within microseconds; call Batch again), or fn returns false (that record
// counts as read). raw is the record's bytes in the ring, valid only during
// the call. n is the number of records read.
func (r *Reader) Batch(fn func(raw []byte) bool) (n int, busy bool) {
	cons := atomic.LoadUint64(r.consPos)
	prod := atomic.LoadUint64(r.prodPos)
	released := cons
	defer func() {
		if cons != released {
			atomic.StoreUint64(r.consPos, cons)
		}
	}()
	for {
		if cons == prod {
			// Records committed while this batch ran: take them too.
			if prod = atomic.LoadUint64(r.prodPos); cons == prod {
				return n, false
			}
		}
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[cons&r.mask])))
		if hdr&busyBit != 0 {
			return n, true
		}
		l := uint64(hdr &^ (busyBit | discardBit))
		start := (cons + hdrSize) & r.mask
		cons += (hdrSize + l + 7) &^ 7
		if hdr&discardBit == 0 {
			n++
			if !fn(r.data[start : start+l : start+l]) {
				return n, false
			}
		}
		if cons-released >= r.size/4 {
			atomic.StoreUint64(r.consPos, cons)
			released = cons
		}
	}
}

// Wait blocks until BPF wakes the reader, timeout passes, Poke is called
// or Flush is called (ErrFlushed, and at once on every later call).
// Records submitted without a wakeup do not end the wait: poll with a
// timeout.
func (r *Reader) Wait(timeout time.Duration) error {
	if r.flushed.Load() {
		return ErrFlushed
	}
	var n int
	var err error
	wait := func(fd uintptr) bool {
		n, err = epollNow(int(fd), r.events[:])
		if errors.Is(err, unix.EINTR) {
			n, err = 0, nil
		}
		return n > 0 || err != nil
	}
	if timeout <= 0 {
		wait(uintptr(r.epfd))
	} else {
		// The epoll fd waits in Go's poller (a deadline, not a blocking
		// epoll_wait): a blocked system call holds a scheduler slot that
		// sysmon keeps taking back, measured at ~30% of the tool's CPU
		// under a request/response load.
		_ = r.epf.SetReadDeadline(time.Now().Add(timeout))
		switch rerr := r.epc.Read(wait); {
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			n, err = 0, nil
		case rerr != nil:
			return fmt.Errorf("ringread: epoll wait: %w", rerr)
		}
	}
	if err != nil {
		return fmt.Errorf("ringread: epoll wait: %w", err)
	}
	if r.flushed.Load() {
		return ErrFlushed
	}
	for _, ev := range r.events[:n] {
		if ev.Fd == int32(r.evfd) {
			// a Poke: reset the eventfd (a Flush racing with this read
			// is seen by the next Wait's flushed check)
			var b [8]byte
			rawIO(unix.SYS_READ, r.evfd, b[:])
		}
	}
	return nil
}

// Poke ends the current (or the next) Wait early, without stopping the
// reader: someone wants it to look at the ring now.
func (r *Reader) Poke() {
	var one = [8]byte{1}
	rawIO(unix.SYS_WRITE, r.evfd, one[:])
}

// Flush makes the current and every later Wait return ErrFlushed, so the
// reader drains what is left and stops.
func (r *Reader) Flush() {
	r.flushed.Store(true)
	var one = [8]byte{1}
	_, _ = unix.Write(r.evfd, one[:])
}

// Close unmaps the ring. Call it once the reading goroutine is done.
func (r *Reader) Close() error {
	var errs []error
	for _, b := range [][]byte{r.prod, r.cons} {
		if b != nil {
			errs = append(errs, unix.Munmap(b))
		}
	}
	r.prod, r.cons, r.data = nil, nil, nil
	if r.epf != nil {
		errs = append(errs, r.epf.Close())
		r.epfd = -1
	}
	for _, fd := range []int{r.epfd, r.evfd} {
		if fd >= 0 {
			errs = append(errs, unix.Close(fd))
		}
	}
	r.epfd, r.evfd = -1, -1
	return errors.Join(errs...)
}

// epollNow and rawIO: the reader's own system calls never block
// (epoll_wait with a zero timeout, the non-blocking eventfd), so they are
// made raw. Go's entersyscall wakes sysmon from its deep sleep whenever the
// process had gone idle, and sysmon then ticks every 20 µs for as long as
// any P is busy (the log pwrites, made raw in internal/output for the same
// reason, were most of those wakeups; these were the rest).
func epollNow(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawIO(nr uintptr, fd int, b []byte) {
	_, _, _ = unix.RawSyscall(nr, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
}
