package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
)

func runBin(t *testing.T, cred *syscall.Credential, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin := nwtest.Binary(t)
	cmd := exec.Command(bin, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{"-d", "0"}, {"--sport=70000"}, {"--bogus"}, {"--duration=soon"}, {"-o", "yaml"}, {"stray"}, {"--data-dir", "/etc/passwd"}} {
		out, errOut, code := runBin(t, nil, args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: code %d stdout %q stderr %q (want exit 2 and one stderr line)", args, code, out, errOut)
		}
	}
	for _, a := range []string{"--help", "-?", "--usage"} {
		out, _, code := runBin(t, nil, a)
		if code != 0 || !strings.Contains(out, "Usage: netwatcher") {
			t.Errorf("%s: code %d out %q", a, code, out)
		}
	}
}

func TestNotRootSaysWhatIsMissing(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nwtest.Binary(t)
	// the binary must be reachable by an unprivileged user
	dir, err := os.MkdirTemp("", "nwbin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	data, _ := os.ReadFile(bin)
	pub := filepath.Join(dir, "netwatcher")
	if err := os.WriteFile(pub, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pub, "--data-dir", filepath.Join(dir, "d"), "--duration", "1s")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v: %s", err, out)
	}
	if !strings.Contains(string(out), "not root") || strings.Count(string(out), "\n") != 1 {
		t.Errorf("want one line naming the missing privilege: %q", out)
	}
}

// TestSignalsAndDuration: SIGTERM and --duration both end with exit 0,
// complete files and a final stats record.
func TestSignalsAndDuration(t *testing.T) {
	nstest.RequireRoot(t)
	r := nwtest.Start(t, "-x")
	r.Stop()
	if len(r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "stats" })) != 1 {
		t.Error("no final stats record")
	}
	for _, f := range []string{"connects.log", "packets.log", "err.log"} {
		st, err := os.Lstat(filepath.Join(r.DataDir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", f, err, st.Mode())
		}
	}
	st, _ := os.Stat(r.DataDir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v", st.Mode().Perm())
	}

	dir := t.TempDir()
	start := time.Now()
	_, errOut, code := runBin(t, nil, "--duration", "1s", "-q", "--data-dir", dir)
	if code != 0 || time.Since(start) > 15*time.Second {
		t.Errorf("--duration 1s: code %d after %v: %s", code, time.Since(start), errOut)
	}
}

func TestSymlinkedLogIsNotFollowed(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "victim")
	os.WriteFile(target, []byte("keep"), 0o600)
	os.MkdirAll(filepath.Join(dir, "d"), 0o700)
	os.Symlink(target, filepath.Join(dir, "d", "packets.log"))
	_, errOut, code := runBin(t, nil, "--duration", "1s", "-q", "--data-dir", filepath.Join(dir, "d"))
	if code == 0 || strings.Count(errOut, "refusing to write through a symlink: "+filepath.Join(dir, "d", "packets.log")) != 1 {
		t.Errorf("followed or ignored a symlinked log, or did not say so: %s", errOut)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Error("symlink target was modified")
	}
}

// TestMain doubles as the helper of TestSIGPIPE: with NW_SIGPIPE_HELPER set,
// the test binary writes to its stdout (a pipe without reader) and says
// what happened, instead of running the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("NW_SIGPIPE_HELPER"); mode != "" {
		switch mode {
		case "ignore":
			ignoreSIGPIPE()
		case "notify":
			signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
		}
		_, err := os.Stdout.Write([]byte("x\n"))
		fmt.Fprintf(os.Stderr, "write: %v\n", err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSIGPIPE: Go kills a program whose write to stdout hits a closed pipe
// (exit 141, no final flush); after ignoreSIGPIPE the write returns EPIPE.
func TestSIGPIPE(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		killed bool
	}{{"default", true}, {"ignore", false}, {"notify", false}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "NW_SIGPIPE_HELPER="+tc.mode)
		cmd.Stdout = w
		var e bytes.Buffer
		cmd.Stderr = &e
		err = cmd.Run()
		w.Close()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if tc.killed {
			if !ws.Signaled() || ws.Signal() != syscall.SIGPIPE {
				t.Errorf("%s: %v %q, want death by SIGPIPE (else this test proves nothing)", tc.mode, err, e.String())
			}
			continue
		}
		if err != nil || !strings.Contains(e.String(), "broken pipe") {
			t.Errorf("%s: %v %q, want exit 0 after a write failing with EPIPE", tc.mode, err, e.String())
		}
	}
}

// proc is the binary run with a stdout of the test's choosing.
type proc struct {
	cmd    *exec.Cmd
	stderr nwtest.SyncBuffer
	done   chan struct{}
}

func (p *proc) Stderr() string { return p.stderr.String() }

// startProc starts netwatcher with stdout (nil: /dev/null) and waits for
// ready (written by --ready-file, which args must hold).
func startProc(t *testing.T, stdout *os.File, ready string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(nwtest.Binary(t), args...)
	// A race-enabled binary sleeps 1 s at exit by default: these tests
	// time the exit.
	p.cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	if stdout != nil {
		p.cmd.Stdout = stdout
	}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("netwatcher stderr:\n%s", p.Stderr())
		}
	})
	nwtest.WaitReady(t, ready, p.done, func() any { return p.cmd.ProcessState }, p.Stderr)
	return p
}

// exited waits up to d for the exit and returns its status (-1: killed
// by a signal; fails the test if still running).
func (p *proc) exited(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("netwatcher still running %v later\n%s", d, p.Stderr())
	}
	return p.cmd.ProcessState.ExitCode()
}

// server listens on 127.0.0.1 and answers each 50-byte request with 100
// bytes until the client closes.
func server(t *testing.T) (port int) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, resp := make([]byte, 50), make([]byte, 100)
				for {
					if _, err := io.ReadFull(c, req); err != nil {
						return
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// client makes one connection with rounds request/response exchanges.
func client(port, rounds int) error {
	c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer c.Close()
	req, resp := make([]byte, 50), make([]byte, 100)
	for i := 0; i < rounds; i++ {
		if _, err := c.Write(req); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			return err
		}
	}
	return nil
}

// wholeLines checks that every line of a data-dir file is a complete
// record name{...} and returns them.
func wholeLines(t *testing.T, path, name string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Fatalf("%s: torn last line %q", path, b[max(0, len(b)-80):])
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, name+"{") || !strings.HasSuffix(l, `"}`) || strings.Count(l, "{") != 1 {
			t.Fatalf("%s: torn line %q", path, l)
		}
	}
	return lines
}

// startPiped starts netwatcher -a -d on a fresh server's port with its
// stdout the write end of a pipe, and returns the port, the process, the
// read end of the pipe and the data dir.
func startPiped(t *testing.T) (port int, p *proc, r *os.File, data string) {
	t.Helper()
	nstest.RequireRoot(t)
	port = server(t)
	dir := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "ready")
	data = filepath.Join(dir, "d")
	p = startProc(t, w, ready, "-a", "-d", strconv.Itoa(port), "--data-dir", data, "--ready-file", ready)
	w.Close()
	return port, p, r, data
}

// A stdout nobody reads (`netwatcher -a | less`, not scrolling) must not
// stall the tracer: SIGTERM stops it at once, exit 0, complete files.
func TestStalledStdout(t *testing.T) {
	port, p, r, data := startPiped(t)
	defer r.Close() // never read; open until the end (no EPIPE)
	const n = 300
	for i := 0; i < n; i++ {
		if err := client(port, 1); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // let the pipe and the console backlog fill
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exited(t, 2*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start))
	clients := 0
	for _, l := range wholeLines(t, filepath.Join(data, "connects.log"), "connection") {
		if strings.Contains(l, fmt.Sprintf(`dst="127.0.0.1:%d"`, port)) && strings.Contains(l, `is_server="0"`) {
			clients++
		}
	}
	if clients < n {
		t.Errorf("connects.log holds %d of the %d client connections", clients, n)
	}
	if len(wholeLines(t, filepath.Join(data, "packets.log"), "packet")) == 0 {
		t.Error("packets.log is empty")
	}
	if !strings.Contains(p.Stderr(), "console lines dropped") {
		t.Error("the lines stdout could not take are not reported on stderr")
	}
}

// A stdout whose reader went away (`netwatcher | head -3`): netwatcher
// stops by itself like on SIGTERM, exit 0, files complete, stats on
// stderr (Go's default was death by SIGPIPE, exit 141, nothing flushed).
func TestClosedStdout(t *testing.T) {
	port, p, r, data := startPiped(t)
	stop := make(chan struct{})
	traffic := make(chan struct{})
	go func() {
		defer close(traffic)
		for {
			select {
			case <-stop:
				return
			default:
			}
			client(port, 1)
			time.Sleep(time.Millisecond)
		}
	}()
	defer func() { close(stop); <-traffic }()
	br := bufio.NewReader(r)
	for i := 0; i < 3; i++ {
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
	r.Close() // head -3 exits
	code := p.exited(t, 15*time.Second)
	ws, _ := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if code != 0 || ws.Signaled() {
		t.Errorf("exit %d (signaled %v: %v), want 0", code, ws.Signaled(), ws.Signal())
	}
	e := p.Stderr()
	if !strings.Contains(e, "stdout closed, stopping") || !strings.Contains(e, "netwatcher stopped") {
		t.Errorf("stderr lacks the stop reason or the stats line:\n%s", e)
	}
	if len(wholeLines(t, filepath.Join(data, "packets.log"), "packet")) == 0 {
		t.Error("packets.log is empty")
	}
	if len(wholeLines(t, filepath.Join(data, "connects.log"), "connection")) == 0 {
		t.Error("connects.log is empty")
	}
}

// A data dir on a full disk: no torn line, exit 1 with one line naming the
// lost lines (the run's files are incomplete: scripts must be able to
// tell), one ERROR line per file rather than one a second.
func TestFullDisk(t *testing.T) {
	nstest.RequireRoot(t)
	port := server(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o700)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	ready := filepath.Join(dir, "ready")
	data := filepath.Join(mnt, "d")
	p := startProc(t, nil, ready, "-d", strconv.Itoa(port), "--data-dir", data, "--ready-file", ready)
	// ~8,000 packet records of ~130 bytes: 1 MB for 256 KiB
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := client(port, 200); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	time.Sleep(1500 * time.Millisecond) // a flush or two on the full disk
	p.cmd.Process.Signal(syscall.SIGTERM)
	code := p.exited(t, 20*time.Second)
	e := p.Stderr()
	lines := strings.Split(strings.TrimSuffix(e, "\n"), "\n")
	last := lines[len(lines)-1]
	if code != 1 || !strings.HasPrefix(last, "netwatcher: ") || !regexp.MustCompile(`[1-9][0-9]* packets.log lines lost`).MatchString(last) {
		t.Errorf("exit %d, last stderr line %q: want exit 1 and one line naming the lost packets.log lines", code, last)
	}
	if n := strings.Count(e, "level=ERROR"); n > 2 {
		t.Errorf("%d ERROR lines: want one per failing file, not one a second", n)
	}
	if len(wholeLines(t, filepath.Join(data, "packets.log"), "packet")) == 0 {
		t.Error("packets.log is empty")
	}
	wholeLines(t, filepath.Join(data, "connects.log"), "connection")
	wholeLines(t, filepath.Join(data, "err.log"), "error")
	if _, err := os.Lstat(filepath.Join(data, ".connects.log.tmp")); err == nil {
		t.Error("a half-written connects.log temp file was left behind")
	}
}

// --ready-file is never written through a symlink, and is removed at exit
// (a script must not find a stale pid).
func TestReadyFile(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	link := filepath.Join(dir, "ready")
	os.Symlink(victim, link)
	_, errOut, code := runBin(t, nil, "--duration", "5s", "-q", "-d", "9", "--data-dir", filepath.Join(dir, "d"), "--ready-file", link)
	if code == 0 || strings.Count(errOut, "refusing to write through a symlink: "+link) != 1 {
		t.Errorf("symlinked ready file: exit %d, stderr %q", code, errOut)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Error("symlink target modified")
	}

	ready := filepath.Join(dir, "ready2")
	p := startProc(t, nil, ready, "--duration", "2s", "-q", "-d", "9", "--data-dir", filepath.Join(dir, "d"), "--ready-file", ready)
	if b, _ := os.ReadFile(ready); string(b) != fmt.Sprintf("%d\n", p.cmd.Process.Pid) {
		t.Errorf("ready file holds %q, want the pid %d", b, p.cmd.Process.Pid)
	}
	if code := p.exited(t, 20*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if _, err := os.Lstat(ready); !os.IsNotExist(err) {
		t.Error("ready file left behind after exit")
	}
}

// A --data-dir that cannot be used is a bad invocation: one line, exit 2,
// whether config sees it (a file) or only the run does (a dangling link).
func TestDataDirErrorsExit2(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	dangling := filepath.Join(dir, "dangling")
	os.Symlink(filepath.Join(dir, "nowhere", "x"), dangling)
	os.WriteFile(filepath.Join(dir, "nowhere"), nil, 0o600)
	for _, d := range []string{file, filepath.Join(file, "sub"), dangling} {
		out, errOut, code := runBin(t, nil, "--duration", "1s", "-q", "--data-dir", d)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--data-dir") {
			t.Errorf("%s: exit %d stdout %q stderr %q, want exit 2 and one line naming --data-dir", d, code, out, errOut)
		}
	}
}
