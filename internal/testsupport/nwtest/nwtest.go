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

// Run is a running netwatcher.
type Run struct {
	t       testing.TB
	cmd     *exec.Cmd
	DataDir string
	stderr  SyncBuffer
	mu      sync.Mutex
	events  []Ev
	lines   int
	done    chan struct{}
	stopped bool
	ExitErr error
}

// Start runs netwatcher with args plus --data-dir, --ready-file and -o json,
// and waits until it is ready. It is stopped at test cleanup if still running.
func Start(t testing.TB, args ...string) *Run {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	r := &Run{t: t, DataDir: filepath.Join(dir, "data"), done: make(chan struct{})}
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
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
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
	for _, e := range r.Events() {
		if e.Str("type") == "_bad_json" {
			r.t.Errorf("netwatcher printed a line that is not JSON: %q", e.Str("line"))
		}
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

// Events returns a snapshot of all events so far.
func (r *Run) Events() []Ev {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Ev(nil), r.events...)
}

// Find returns events matching pred.
func (r *Run) Find(pred func(Ev) bool) []Ev {
	var out []Ev
	for _, e := range r.Events() {
		if pred(e) {
			out = append(out, e)
		}
	}
	return out
}

// WaitFor waits up to d for an event matching pred and returns it.
func (r *Run) WaitFor(d time.Duration, what string, pred func(Ev) bool) Ev {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if evs := r.Find(pred); len(evs) > 0 {
			return evs[0]
		}
		if time.Now().After(deadline) {
			// Stop it, so that the failure shows what it printed last,
			// its final stats line included.
			if !r.stopped {
				r.interrupt(5 * time.Second)
			}
			evs := r.Events()
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
