// Package nwtest runs the real netwatcher binary for tests: built once per
// test process (with -race when the test is), started with --ready-file and
// JSON output, its events collected, and stopped with SIGINT.
package nwtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of a netwatcher binary built from this checkout.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = err
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		dir, err := os.MkdirTemp("", "nwtest-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "netwatcher")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/netwatcher")
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if o, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build netwatcher: %v\n%s", err, o)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Ev is one JSON event line.
type Ev map[string]any

// Str returns a string field ("" if absent).
func (e Ev) Str(k string) string { s, _ := e[k].(string); return s }

// Num returns a numeric field (-1 if absent or null).
func (e Ev) Num(k string) float64 {
	if v, ok := e[k].(float64); ok {
		return v
	}
	return -1
}

// Has reports whether the field is present.
func (e Ev) Has(k string) bool { _, ok := e[k]; return ok }

// MaxEvents is how many events a Run keeps in memory by default
// ($NW_TEST_MAX_EVENTS overrides it; Run.MaxEvents per run, set before
// events arrive). A test's own traffic makes a few tens of thousands; a
// host-wide run while another workload floods the host can make millions
// (a run once held 9.7 GB and hung). Past the cap the lines are read and
// dropped (netwatcher never blocks on its output); Events, Find and
// WaitFor then fail the test, saying so, instead of answering from an
// incomplete list. A test that needs more raises it explicitly.
var MaxEvents = 300_000

// MaxEventsEnv overrides MaxEvents.
const MaxEventsEnv = "NW_TEST_MAX_EVENTS"

func maxEvents() int {
	if n, err := strconv.Atoi(os.Getenv(MaxEventsEnv)); err == nil && n > 0 {
		return n
	}
	return MaxEvents
}

// Run is a running netwatcher.
type Run struct {
	t       testing.TB
	cmd     *exec.Cmd
	DataDir string
	stderr  SyncBuffer
	mu      sync.Mutex
	events  []Ev
	lines   int
	dropped int // lines past the cap
	done    chan struct{}
	stopped bool
	ExitErr error
	// MaxEvents caps the events kept (see the package's MaxEvents).
	MaxEvents int
}

// Start runs netwatcher with args plus --data-dir, --ready-file and -o json,
// and waits until it is ready. It is stopped at test cleanup if still running.
func Start(t testing.TB, args ...string) *Run {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	r := &Run{t: t, DataDir: filepath.Join(dir, "data"), done: make(chan struct{}), MaxEvents: maxEvents()}
	all := append([]string{"--data-dir", r.DataDir, "--ready-file", ready, "-o", "json"}, args...)
	r.cmd = exec.Command(bin, all...)
	r.cmd.Stderr = &r.stderr
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev Ev
			r.mu.Lock()
			r.lines++
			if len(r.events) >= r.MaxEvents {
				r.dropped++
			} else if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				r.events = append(r.events, Ev{"type": "_bad_json", "line": sc.Text()})
			} else {
				r.events = append(r.events, ev)
			}
			r.mu.Unlock()
		}
		r.ExitErr = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		if !r.stopped {
			r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("netwatcher stderr:\n%s", r.Stderr())
		}
	})
	WaitReady(t, ready, r.done, func() any { return r.ExitErr }, r.Stderr)
	return r
}

// WaitReady waits (up to 30 s) until netwatcher has written its
// --ready-file ready. It fails the test if netwatcher exits first (done is
// closed; exit then describes how) or takes longer, with what it logged
// (stderr) in the message.
func WaitReady(t testing.TB, ready string, done <-chan struct{}, exit func() any, stderr func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("netwatcher exited before ready: %v\n%s", exit(), stderr())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("netwatcher not ready after 30s\n%s", stderr())
		}
	}
}

// SyncBuffer is a buffer that a child process writes (its stderr) while
// the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Stderr returns what netwatcher logged so far.
func (r *Run) Stderr() string { return r.stderr.String() }

// Stop sends SIGINT and requires a clean exit (code 0) within 20s.
func (r *Run) Stop() {
	r.t.Helper()
	if r.stopped {
		return
	}
	if !r.interrupt(20 * time.Second) {
		r.cmd.Process.Kill()
		<-r.done
		r.t.Fatalf("netwatcher did not stop within 20s of SIGINT\n%s", r.Stderr())
	}
	if r.ExitErr != nil {
		r.t.Fatalf("netwatcher exit: %v\n%s", r.ExitErr, r.Stderr())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Str("type") == "_bad_json" {
			r.t.Errorf("netwatcher printed a line that is not JSON: %q", e.Str("line"))
		}
	}
}

// Dropped is the number of events past the cap (MaxEvents) so far: read
// and not kept.
func (r *Run) Dropped() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// capped fails the test if events were dropped past the cap: any answer
// from the kept ones could be wrong.
func (r *Run) capped(asked string) {
	r.t.Helper()
	if n := r.Dropped(); n > 0 {
		r.t.Fatalf("%s: netwatcher printed more than %d events (%d more were dropped, not kept): the list is incomplete. "+
			"Other traffic on the host flooded a host-wide run? Narrow the run's filters (-s, -d, -S) or raise the cap (Run.MaxEvents, $%s)",
			asked, r.MaxEvents, n, MaxEventsEnv)
	}
}

// interrupt sends SIGINT and reports whether netwatcher exited within d.
func (r *Run) interrupt(d time.Duration) bool {
	r.stopped = true
	r.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-r.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Events returns a snapshot of all events so far. It fails the test if
// more than MaxEvents came (the list would be incomplete).
func (r *Run) Events() []Ev {
	r.t.Helper()
	r.capped("Events")
	return r.kept()
}

// kept is a snapshot of the kept events.
func (r *Run) kept() []Ev {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Ev(nil), r.events...)
}

// Find returns events matching pred. It fails the test if more than
// MaxEvents came (the answer could be incomplete).
func (r *Run) Find(pred func(Ev) bool) []Ev {
	r.t.Helper()
	r.capped("Find")
	return r.find(pred)
}

func (r *Run) find(pred func(Ev) bool) []Ev {
	var out []Ev
	for _, e := range r.kept() {
		if pred(e) {
			out = append(out, e)
		}
	}
	return out
}

// WaitFor waits up to d for an event matching pred and returns it. A
// matching event among those kept is returned even past the cap; else,
// past the cap, it fails the test at once (the event may have been
// dropped).
func (r *Run) WaitFor(d time.Duration, what string, pred func(Ev) bool) Ev {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		// past the cap before the search: every kept event was searched
		over := r.Dropped() > 0
		if evs := r.find(pred); len(evs) > 0 {
			return evs[0]
		}
		if over {
			r.capped("waiting for " + what)
		}
		if time.Now().After(deadline) {
			// Stop it, so that the failure shows what it printed last,
			// its final stats line included.
			if !r.stopped {
				r.interrupt(5 * time.Second)
			}
			evs := r.kept()
			last := evs[max(0, len(evs)-10):]
			var b strings.Builder
			for _, e := range last {
				fmt.Fprintf(&b, "\n  %v", e)
			}
			r.t.Fatalf("no %s event within %v; %d events seen, the last %d:%s\nstderr:\n%s", what, d, len(evs), len(last), b.String(), r.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// File reads a file of the data dir.
func (r *Run) File(name string) string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.DataDir, name))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}
