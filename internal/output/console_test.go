package output

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// A reader that never reads (`| less` not scrolling): Write must not
// block, Close must give up in time and count what it could not deliver.
func TestConsoleStalledReaderNeverBlocks(t *testing.T) {
	_, w := pipe(t)
	c := NewConsole(w, "stdout")
	line := bytes.Repeat([]byte("x"), 99)
	line = append(line, '\n')
	start := time.Now()
	const n = 300_000 // 30 MB: the pipe (64 KiB) and the backlog (16 MiB) fill
	var slowest time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if m, err := c.Write(line); m != len(line) || err != nil {
			t.Fatalf("Write = %d, %v", m, err)
		}
		if i%1000 == 0 {
			c.Flush()
		}
		slowest = max(slowest, time.Since(t0))
	}
	if d := time.Since(start); d > 5*time.Second || slowest > time.Second {
		t.Fatalf("writes stalled: %v in all, slowest %v", d, slowest)
	}
	if c.Dropped() == 0 {
		t.Error("nothing counted as dropped while the reader was stalled")
	}
	start = time.Now()
	err := c.Close(200 * time.Millisecond)
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("Close(200ms) took %v", d)
	}
	if err == nil {
		t.Error("Close gave up but returned nil")
	}
	// All but what the pipe holds (< 64 KiB = 656 lines + the chunk being
	// written when Close gave up, counted as dropped) is dropped.
	if d := c.Dropped(); d < n-700 || d > n {
		t.Errorf("dropped %d of %d lines, want nearly all", d, n)
	}
	// After Close, writes are discarded and counted, still without blocking.
	before := c.Dropped()
	c.Write([]byte("late\n"))
	if c.Dropped() != before+1 {
		t.Errorf("write after Close: dropped %d -> %d", before, c.Dropped())
	}
}

// The reader went away (`| head -3`): EPIPE closes Broken, nothing panics,
// everything after is discarded and counted.
func TestConsoleBrokenPipe(t *testing.T) {
	r, w := pipe(t)
	r.Close()
	c := NewConsole(w, "stdout")
	c.Write([]byte("one\ntwo\n"))
	c.Flush()
	select {
	case <-c.Broken():
	case <-time.After(5 * time.Second):
		t.Fatal("Broken not closed after a write to a pipe without reader")
	}
	if !errors.Is(c.Err(), syscall.EPIPE) {
		t.Errorf("Err = %v, want EPIPE", c.Err())
	}
	c.Write([]byte("three\n"))
	c.Flush()
	if err := c.Close(time.Second); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("Close = %v, want EPIPE", err)
	}
	if c.Dropped() != 3 {
		t.Errorf("dropped %d lines, want 3", c.Dropped())
	}
}

// A reader that keeps up gets everything in order, also when the producer
// hands over pieces that split lines (bufio flushes at 64 KiB, not at line
// ends) and when it never calls Flush.
func TestConsoleDeliversInOrder(t *testing.T) {
	r, w := pipe(t)
	c := NewConsole(w, "stdout")
	got := make(chan []string, 1)
	go func() {
		var lines []string
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		got <- lines
	}()
	// 2 MiB in all: less than the backlog, so nothing may be dropped.
	var all []byte
	const n = 60_000
	for i := 0; i < n; i++ {
		all = fmt.Appendf(all, "line %d %s\n", i, bytes.Repeat([]byte("y"), i%50))
	}
	for rest := all; len(rest) > 0; {
		k := min(len(rest), 7919) // a prime: cuts lines anywhere
		c.Write(rest[:k])
		rest = rest[k:]
	}
	if err := c.Close(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	w.Close()
	lines := <-got
	if len(lines) != n || c.Dropped() != 0 {
		t.Fatalf("got %d lines, dropped %d, want %d and 0", len(lines), c.Dropped(), n)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("line %d %s", i, bytes.Repeat([]byte("y"), i%50)); l != want {
			t.Fatalf("line %d = %q, want %q", i, l, want)
		}
	}
}

// The slog handler writes from several goroutines and never flushes: every
// line arrives whole, within the delayed flush.
func TestConsoleConcurrentWritersAndDelayedFlush(t *testing.T) {
	r, w := pipe(t)
	c := NewConsole(w, "stderr")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				c.Write(fmt.Appendf(nil, "g=%d i=%d end\n", g, i))
			}
		}()
	}
	wg.Wait()
	// No Flush, no Close: the writer goroutine hands the lines over by
	// itself.
	br := bufio.NewReader(r)
	seen := map[string]bool{}
	deadline := time.Now().Add(5 * time.Second)
	r.SetReadDeadline(deadline)
	for len(seen) < 8*500 {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d lines: %v", len(seen), err)
		}
		var g, i int
		if _, err := fmt.Sscanf(l, "g=%d i=%d end\n", &g, &i); err != nil || seen[l] {
			t.Fatalf("torn or repeated line %q", l)
		}
		seen[l] = true
	}
	if err := c.Close(time.Second); err != nil || c.Dropped() != 0 {
		t.Errorf("Close = %v, dropped %d", err, c.Dropped())
	}
}

// A line longer than a chunk goes out whole.
func TestConsoleHugeLine(t *testing.T) {
	r, w := pipe(t)
	c := NewConsole(w, "stdout")
	huge := append(bytes.Repeat([]byte("z"), 3*consoleChunk), '\n')
	go func() {
		c.Write(huge)
		c.Write([]byte("after\n"))
		c.Close(5 * time.Second)
		w.Close()
	}()
	b, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(b, append(huge, "after\n"...)) {
		t.Fatalf("got %d bytes (%v), want %d", len(b), err, len(huge)+6)
	}
}

// Buffers are recycled: writing a line allocates nothing.
func TestConsoleWriteDoesNotAllocate(t *testing.T) {
	c := NewConsole(io.Discard, "stdout")
	defer c.Close(time.Second)
	line := []byte(strconv.Quote("a typical packet line of about a hundred bytes, give or take a few more") + "\n")
	for i := 0; i < 10000; i++ { // warm the free list
		c.Write(line)
	}
	if a := testing.AllocsPerRun(20000, func() { c.Write(line) }); a > 0.01 {
		t.Errorf("%.3f allocations per Write", a)
	}
}

// A chunk without a line end (a line longer than a chunk) breaks the
// stream too.
func TestConsoleBrokenPipeLongLine(t *testing.T) {
	r, w := pipe(t)
	r.Close()
	c := NewConsole(w, "stdout")
	c.Write(bytes.Repeat([]byte("z"), 2*consoleChunk))
	select {
	case <-c.Broken():
	case <-time.After(5 * time.Second):
		t.Fatal("Broken not closed")
	}
	c.Close(time.Second)
}
