// Package peer builds cmd/nwpeer and runs it as a separate process (inside
// a test namespace or not) for tests and benchmarks.
package peer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
)

const pkg = "github.com/netwatcher/netwatcher/cmd/nwpeer"

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds cmd/nwpeer once per test process and returns its path. The
// binary is named nwpeer, so its comm is "nwpeer". It lives in
// $TMPDIR/nwpeer-<uid>/ and is replaced atomically, so parallel test
// processes do not disturb each other.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("nwpeer-%d", os.Getuid()))
		if buildErr = os.MkdirAll(dir, 0o700); buildErr != nil {
			return
		}
		tmp := filepath.Join(dir, fmt.Sprintf("nwpeer.%d.tmp", os.Getpid()))
		out, err := exec.Command(goTool(), "build", "-o", tmp, pkg).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build %s: %v: %s", pkg, err, out)
			return
		}
		buildPath = filepath.Join(dir, "nwpeer")
		buildErr = os.Rename(tmp, buildPath)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
		return p
	}
	return "/usr/local/go/bin/go"
}

// Proc is a running nwpeer.
type Proc struct {
	Cmd *exec.Cmd
	Pid int

	t      testing.TB
	stdin  io.WriteCloser
	stderr *nwtest.SyncBuffer
	done   chan struct{} // closed after Wait returned; err is set then
	err    error

	mu     sync.Mutex
	lines  []string      // stdout lines not yet consumed (unbounded: nwpeer never blocks on stdout)
	eof    bool          // stdout closed
	notify chan struct{} // poked when lines or eof change
}

// Start runs `nwpeer args...` inside ns (nil: the test's own namespace)
// with a pipe on stdin, and kills it at cleanup if it is still running.
func Start(t testing.TB, ns *nstest.NS, args ...string) *Proc {
	t.Helper()
	cmd := ns.Cmd(Binary(t), args...)
	p := &Proc{Cmd: cmd, t: t, stderr: &nwtest.SyncBuffer{}, done: make(chan struct{}), notify: make(chan struct{}, 1)}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	p.Pid = cmd.Process.Pid // ip netns exec execs: this is nwpeer's pid
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.push(sc.Text(), false)
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.push("", true)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Serve starts `nwpeer serve args...` and returns it with the address from
// its READY line.
func Serve(t testing.TB, ns *nstest.NS, args ...string) (*Proc, string) {
	t.Helper()
	p := Start(t, ns, append([]string{"serve"}, args...)...)
	ready := p.Expect("READY ", 5*time.Second)
	return p, strings.TrimPrefix(ready, "READY ")
}

func (p *Proc) push(line string, eof bool) {
	p.mu.Lock()
	if eof {
		p.eof = true
	} else {
		p.lines = append(p.lines, line)
	}
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// pop returns the next line; ok is false at end of output, and timedOut
// after timeout.
func (p *Proc) pop(timeout time.Duration) (line string, ok, timedOut bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		if len(p.lines) > 0 {
			line = p.lines[0]
			p.lines = p.lines[1:]
			p.mu.Unlock()
			return line, true, false
		}
		eof := p.eof
		p.mu.Unlock()
		if eof {
			return "", false, false
		}
		select {
		case <-p.notify:
		case <-timer.C:
			return "", false, true
		}
	}
}

// Next returns the next stdout line, failing the test after timeout or if
// the process ends first.
func (p *Proc) Next(timeout time.Duration) string {
	p.t.Helper()
	l, ok, timedOut := p.pop(timeout)
	switch {
	case timedOut:
		p.t.Fatalf("nwpeer %v: no line within %v; stderr: %s", p.Cmd.Args[1:], timeout, p.stderr)
	case !ok:
		<-p.done
		p.t.Fatalf("nwpeer %v ended (%v) before the next line; stderr: %s", p.Cmd.Args[1:], p.err, p.stderr)
	}
	return l
}

// Expect skips stdout lines until one starts with prefix and returns it.
func (p *Proc) Expect(prefix string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l := p.Next(time.Until(deadline))
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
}

// CloseStdin closes nwpeer's stdin (ends --hold and --stdin-exit).
func (p *Proc) CloseStdin() { _ = p.stdin.Close() }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) { _ = p.Cmd.Process.Signal(sig) }

// Wait waits for the process to exit (failing the test after timeout) and
// returns the remaining stdout lines and the exit error.
func (p *Proc) Wait(timeout time.Duration) ([]string, error) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("nwpeer %v did not exit within %v; stderr: %s", p.Cmd.Args[1:], timeout, p.stderr)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	rest := p.lines
	p.lines = nil
	return rest, p.err
}

// Stderr returns what the process wrote to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Run runs nwpeer to completion (failing the test if it fails or takes
// longer than timeout) and returns its stdout lines.
func Run(t testing.TB, ns *nstest.NS, timeout time.Duration, args ...string) []string {
	t.Helper()
	p := Start(t, ns, args...)
	p.CloseStdin()
	lines, err := p.Wait(timeout)
	if err != nil {
		t.Fatalf("nwpeer %v: %v; stderr: %s", args, err, p.stderr)
	}
	return lines
}
