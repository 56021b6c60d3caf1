package oracle

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// Capture is a running tcpdump writing to a pcap file.
type Capture struct {
	Path string // the pcap file (in the test's temp dir)

	t       testing.TB
	cmd     *exec.Cmd
	mu      sync.Mutex
	stderr  strings.Builder
	exited  chan struct{}
	waitErr error
	stopped bool
	segs    []Segment
}

// StartTcpdump runs `tcpdump -i iface -w FILE -U -s 128 filter` inside ns
// (nil: the test's own namespace) and returns once tcpdump is capturing
// (it has printed "listening on"). The filter may be empty. A capture not
// stopped by the test is killed at cleanup.
func StartTcpdump(t testing.TB, ns *nstest.NS, iface, bpfFilter string) *Capture {
	t.Helper()
	nstest.RequireTools(t, "tcpdump")
	c := &Capture{t: t, Path: filepath.Join(t.TempDir(), "capture.pcap"), exited: make(chan struct{})}
	args := []string{"-i", iface, "-w", c.Path, "-U", "-s", "128", "-n",
		"--immediate-mode", // deliver each packet at once, not per ring block
		"-Z", "root"}       // no privilege drop: the file stays writable
	if strings.TrimSpace(bpfFilter) != "" {
		args = append(args, bpfFilter)
	}
	c.cmd = ns.Cmd("tcpdump", args...)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start tcpdump: %v", err)
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			c.mu.Lock()
			c.stderr.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(listening) })
			}
		}
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	})
	select {
	case <-listening:
	case <-c.exited:
		t.Fatalf("tcpdump %v exited before capturing (%v): %s", args, c.waitErr, c.Stderr())
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump %v: not capturing after 10s: %s", args, c.Stderr())
	}
	return c
}

// Stderr returns what tcpdump printed so far (after Stop: including its
// "packets captured/dropped by kernel" summary).
func (c *Capture) Stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// Stop ends the capture (SIGINT, as a user would) and returns the TCP
// segments in the file. Calling it again returns the same segments.
func (c *Capture) Stop() []Segment {
	c.t.Helper()
	if c.stopped {
		return c.segs
	}
	c.stopped = true
	// tcpdump reads packets asynchronously: give it until the file stops
	// growing (at most ~1 s) so that packets sent just before Stop are in.
	var last int64 = -1
	for i := 0; i < 50; i++ {
		st, err := os.Stat(c.Path)
		if err == nil && st.Size() == last {
			break
		}
		if err == nil {
			last = st.Size()
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		c.t.Fatalf("tcpdump did not stop on SIGINT: %s", c.Stderr())
	}
	f, err := os.Open(c.Path)
	if err != nil {
		c.t.Fatalf("tcpdump wrote no file (%v): %s", c.waitErr, c.Stderr())
	}
	defer f.Close()
	c.segs, err = ReadPcap(bufio.NewReader(f))
	if err != nil {
		c.t.Fatalf("read %s: %v", c.Path, err)
	}
	for _, l := range strings.Split(c.Stderr(), "\n") {
		if n, ok := strings.CutSuffix(l, " packets dropped by kernel"); ok && n != "0" {
			c.t.Logf("tcpdump dropped packets, the capture is incomplete: %s", c.Stderr())
		}
	}
	return c.segs
}
