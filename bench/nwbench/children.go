package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Child processes: every tool, client and server the bench starts.

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func newTail(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// proc is a child process started by the bench. Every child runs in a
// process group of its own (so stopping it reaches nothing else) and gets
// SIGKILL if the bench dies (Pdeathsig).
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *tailBuffer
	done           chan struct{}
	err            error
	stdin          io.Closer // kept referenced: a collected pipe would close
}

// nsArgv prefixes argv with `ip netns exec NS` (ip execs the program, so the
// pid is the program's own).
func nsArgv(ns string, argv []string) []string {
	if ns == "" {
		return argv
	}
	return append([]string{"ip", "netns", "exec", ns}, argv...)
}

type startOpts struct {
	ns        string
	stdinPipe bool // give the child a stdin pipe that closes when the bench exits
	devnull   bool // stdout to /dev/null instead of a tail buffer
	dir       string
}

var (
	childMu sync.Mutex
	// children that are still running, for the emergency stop on exit.
	children = map[*proc]struct{}{}
)

func start(name string, o startOpts, argv ...string) (*proc, error) {
	argv = nsArgv(o.ns, argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = o.dir
	p := &proc{name: name, cmd: cmd, stdout: newTail(64 << 10), stderr: newTail(64 << 10), done: make(chan struct{})}
	if o.devnull {
		cmd.Stdout = nil // /dev/null
	} else {
		cmd.Stdout = p.stdout
	}
	cmd.Stderr = p.stderr
	if o.stdinPipe {
		// The write end stays open in the bench: EOF (and exit, with
		// nwpeer --stdin-exit) comes when the bench dies.
		w, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		p.stdin = w
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start: %w", name, err)
	}
	childMu.Lock()
	children[p] = struct{}{}
	childMu.Unlock()
	go func() {
		p.err = cmd.Wait()
		childMu.Lock()
		delete(children, p)
		childMu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the child's process group, waits up to grace, then
// SIGKILLs the group. It returns whether the child ended by itself within
// grace.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) bool {
	if p.exited() {
		return true
	}
	_ = syscall.Kill(-p.pid(), sig)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	return false
}

// killAllChildren is the last-resort cleanup.
func killAllChildren() {
	childMu.Lock()
	var ps []*proc
	for p := range children {
		ps = append(ps, p)
	}
	childMu.Unlock()
	for _, p := range ps {
		p.stop(syscall.SIGTERM, 2*time.Second)
	}
}

// runCmd runs a short command to completion with a timeout and returns its
// combined output.
func runCmd(timeout time.Duration, ns string, argv ...string) (string, error) {
	return runCmdCtx(context.Background(), timeout, ns, argv...)
}

// runCmdCtx is runCmd that also ends (killing the command) when parent ends.
func runCmdCtx(parent context.Context, timeout time.Duration, ns string, argv ...string) (string, error) {
	argv = nsArgv(ns, argv)
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if parent.Err() != nil {
		err = fmt.Errorf("interrupted")
	} else if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}
