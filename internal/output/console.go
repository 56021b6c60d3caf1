package output

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Console decouples a console stream (stdout, or stderr under the slog
// handler) from its producer. A reader that stops reading (`| less` not
// scrolling, a stopped terminal) makes write(2) on a pipe block; the
// producer is the pipeline, and a pipeline blocked on the console stops
// draining the rings, the files stop being written and SIGINT is not acted
// on. So Write never blocks: it appends to a buffer that one writer
// goroutine drains; when that goroutine is behind by consoleChunks chunks,
// further chunks are dropped and their lines counted (Dropped). A reader that
// went away (EPIPE, with SIGPIPE ignored) closes Broken.
//
// Chunks are cut at line ends, so a dropped chunk never leaves half a line
// glued to the next one (JSON consumers parse line by line). Buffers are
// recycled through a free list: no allocation per line or per chunk in the
// steady state.
type Console struct {
	w    io.Writer
	name string

	mu     sync.Mutex
	cur    []byte // lines not handed over yet
	closed bool
	armed  bool // the writer goroutine's delayed flush is pending

	ch   chan []byte   // chunks for the writer goroutine
	free chan []byte   // recycled chunk buffers
	kick chan struct{} // arm the delayed flush
	done chan struct{} // writer goroutine finished

	broken     chan struct{}
	brokenOnce sync.Once
	isBroken   atomic.Bool
	err        error // first write error; set before broken is closed

	dropped   atomic.Uint64
	progress  atomic.Uint64 // chunks written: Close waits while this moves
	inflight  atomic.Uint64 // 1 + lines of the chunk being written (0: none, or taken by Close)
	abandoned atomic.Bool   // Close gave up waiting
}

const (
	// consoleChunk is the hand-over size: one write(2) per 64 KiB.
	consoleChunk = 64 << 10
	// consoleChunks bounds the backlog of a slow reader (~16 MiB): enough
	// for a reader that keeps up on average but not with a burst (a JSON
	// consumer under a retransmission storm: 13k lines, ~5 MiB, in well
	// under a second, measured with the tests' own reader under -race);
	// a stopped reader costs at most this much memory.
	consoleChunks = 256
	// consoleDelay: a partial buffer nobody flushes (the slog handler
	// never calls Flush) is handed over by itself this long after its
	// first byte.
	consoleDelay = 20 * time.Millisecond
	// closeMaxWait bounds how long Close waits for a reader that keeps
	// taking output, however slowly.
	closeMaxWait = 20 * time.Second
)

var newline = []byte{'\n'}

func countLines(b []byte) uint64 { return uint64(bytes.Count(b, newline)) }

// NewConsole starts the writer goroutine of w; name ("stdout", "stderr")
// is used in errors.
func NewConsole(w io.Writer, name string) *Console {
	c := &Console{
		w: w, name: name,
		ch:     make(chan []byte, consoleChunks),
		free:   make(chan []byte, consoleChunks+2),
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		broken: make(chan struct{}),
	}
	c.cur = c.getBuf()
	go c.run()
	return c
}

func (c *Console) getBuf() []byte {
	select {
	case b := <-c.free:
		return b[:0]
	default:
		// room for a 64 KiB write after a partial line
		return make([]byte, 0, consoleChunk+consoleChunk/16)
	}
}

func (c *Console) putBuf(b []byte) {
	select {
	case c.free <- b:
	default:
	}
}

// Write buffers p and never blocks; it always returns len(p), nil: a slow
// or vanished reader must not stall the caller (see Dropped and Broken).
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.closed || c.isBroken.Load() {
		c.mu.Unlock()
		c.dropped.Add(countLines(p))
		return len(p), nil
	}
	if len(c.cur) > 0 && len(c.cur)+len(p) > cap(c.cur) {
		c.handoffLocked(true)
	}
	c.cur = append(c.cur, p...)
	if len(c.cur) >= consoleChunk {
		c.handoffLocked(true)
	}
	if len(c.cur) > 0 && !c.armed {
		c.armed = true
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	return len(p), nil
}

// handoffLocked hands the complete lines of cur to the writer goroutine
// (a partial last line stays in cur, unless it alone fills a chunk). When
// the goroutine is consoleChunks behind: full (the buffer reached its size)
// drops the chunk and counts its lines; otherwise the lines stay buffered
// for a later try (cur is bounded by the size rule anyway). Reports whether
// complete lines are still waiting in cur.
func (c *Console) handoffLocked(full bool) (waiting bool) {
	end := bytes.LastIndexByte(c.cur, '\n') + 1
	if end == 0 && len(c.cur) >= consoleChunk {
		end = len(c.cur) // one huge line: cannot cut it
	}
	if end == 0 {
		return false
	}
	// Only a holder of mu sends: a channel with room now still has room
	// at the send.
	if len(c.ch) == cap(c.ch) {
		if !full {
			return true
		}
		c.dropped.Add(countLines(c.cur[:end]))
		c.cur = append(c.cur[:0], c.cur[end:]...)
		return false
	}
	next := append(c.getBuf(), c.cur[end:]...)
	c.ch <- c.cur[:end]
	c.cur = next
	return false
}

// Flush hands the buffered complete lines to the writer goroutine without
// waiting for them to be written. If the goroutine is far behind, they stay
// buffered (bounded: a full buffer is dropped and counted by Write).
func (c *Console) Flush() {
	c.mu.Lock()
	if !c.closed {
		c.handoffLocked(false)
	}
	c.mu.Unlock()
}

// delayedFlush is Flush from the writer goroutine's timer; it reports
// whether to try again (complete lines kept back by a full backlog). A
// partial line alone does not re-arm: the Write completing it does.
func (c *Console) delayedFlush() (again bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		again = c.handoffLocked(false)
	}
	c.armed = again
	return again
}

// Dropped is the number of lines dropped so far: the reader was too slow,
// had gone away (Broken), or was still blocked at Close.
func (c *Console) Dropped() uint64 { return c.dropped.Load() }

// Broken is closed when a write to the stream failed (EPIPE: the reader
// went away). From then on everything written is discarded and counted.
func (c *Console) Broken() <-chan struct{} { return c.broken }

// Err is the write error that closed Broken (nil before).
func (c *Console) Err() error {
	select {
	case <-c.broken:
		return c.err
	default:
		return nil
	}
}

func (c *Console) run() {
	defer close(c.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case b, ok := <-c.ch:
			if !ok {
				return
			}
			c.write(b)
		case <-c.kick:
			t.Reset(consoleDelay)
		case <-t.C:
			if c.delayedFlush() {
				t.Reset(consoleDelay)
			}
		}
	}
}

func (c *Console) write(b []byte) {
	defer c.putBuf(b)
	n := countLines(b)
	if c.isBroken.Load() || c.abandoned.Load() {
		c.dropped.Add(n)
		return
	}
	c.inflight.Store(n + 1)
	w, err := c.w.Write(b)
	// Close may have taken (and counted) the in-flight lines meanwhile.
	counted := c.inflight.Swap(0) == 0
	if err == nil {
		c.progress.Add(1)
		return
	}
	c.brokenOnce.Do(func() {
		c.err = err
		c.isBroken.Store(true)
		close(c.broken)
	})
	if !counted {
		c.dropped.Add(countLines(b[min(max(w, 0), len(b)):]))
	}
}

// Close hands over what is buffered and waits at most timeout for it to be
// written. A writer stuck in write(2) (a pipe nobody reads) is given up
// on: its undelivered lines are counted as dropped and the goroutine is
// left behind — the process is about to exit, and a console must never
// keep it alive. Close returns the write error that broke the stream, an
// error if it gave up, else nil.
func (c *Console) Close(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true // Write now drops, and nobody else sends on ch
	last := c.cur
	c.cur = nil
	c.mu.Unlock()
	// A reader that is slow but reading (a JSON consumer under load) gets
	// everything: the wait is extended while chunks go out. Only a reader
	// that took nothing for timeout (stopped, or a pager not scrolling) is
	// given up on; closeMaxWait bounds a reader that trickles.
	limit := time.Now().Add(closeMaxWait)
	seen := c.progress.Load()
	stalled := func() bool {
		if p := c.progress.Load(); p != seen && time.Now().Before(limit) {
			seen = p
			timer.Reset(timeout)
			return false
		}
		return true
	}
	for len(last) > 0 {
		select {
		case c.ch <- last:
			last = nil
		case <-timer.C:
			if stalled() {
				c.dropped.Add(countLines(last))
				close(c.ch) // lets the stuck goroutine end if it ever comes back
				return c.giveUp(timeout)
			}
		}
	}
	close(c.ch)
	for {
		select {
		case <-c.done:
			return c.Err()
		case <-timer.C:
			if stalled() {
				return c.giveUp(timeout)
			}
		}
	}
}

func (c *Console) giveUp(timeout time.Duration) error {
	c.abandoned.Store(true)
	if v := c.inflight.Swap(0); v > 0 {
		c.dropped.Add(v - 1)
	}
	// Count what the stuck goroutine will never write (ch is closed: this
	// does not wait); if it comes back, it counts what it still receives
	// itself (abandoned).
	for b := range c.ch {
		c.dropped.Add(countLines(b))
	}
	return fmt.Errorf("%s: output blocked, gave up after %v", c.name, timeout)
}
