package nstest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func exists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

func TestNSLifecycle(t *testing.T) {
	RequireRoot(t)
	var name string
	var sleeper *exec.Cmd
	t.Run("inner", func(t *testing.T) {
		ns := NewNS(t)
		name = ns.Name
		if !strings.HasPrefix(name, Prefix+fmt.Sprint(os.Getpid())+"-") {
			t.Errorf("name %q lacks prefix and pid", name)
		}
		if out := ns.Run(t, "ip", "-o", "link", "show", "lo"); !strings.Contains(out, "UP") {
			t.Errorf("lo not up: %s", out)
		}
		// The inode must be the one processes inside see.
		out := ns.Run(t, "readlink", "/proc/self/ns/net")
		if want := fmt.Sprintf("net:[%d]", ns.Inode(t)); strings.TrimSpace(out) != want {
			t.Errorf("inode: readlink says %q, Inode says %q", strings.TrimSpace(out), want)
		}
		ns.Sysctl(t, "net.ipv4.tcp_tw_reuse", "1")
		if v := strings.TrimSpace(ns.Run(t, "cat", "/proc/sys/net/ipv4/tcp_tw_reuse")); v != "1" {
			t.Errorf("tcp_tw_reuse = %q", v)
		}
		// A process left running must not keep the namespace alive.
		sleeper = ns.Cmd("sleep", "60")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
	})
	if name == "" {
		t.Fatal("subtest did not run")
	}
	if exists(name) {
		t.Errorf("netns %s still exists after cleanup", name)
	}
	if sleeper != nil && sleeper.Process != nil {
		err := sleeper.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("process left in namespace: wait = %v, want killed", err)
		}
	}
}

func TestNSCleanupOnFailure(t *testing.T) {
	RequireRoot(t)
	// Run a failing test body in a sub-test-like TB that does not fail us.
	var name string
	ft := &fakeTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != errFatal {
				panic(r)
			}
		}()
		ns := NewNS(ft)
		name = ns.Name
		ns.Run(ft, "false") // fails -> Fatal
	}()
	ft.runCleanups()
	if !ft.failed {
		t.Error("Run of a failing command did not fail the test")
	}
	if !strings.Contains(ft.msg, "false") {
		t.Errorf("failure message lacks the command: %q", ft.msg)
	}
	if name == "" || exists(name) {
		t.Errorf("netns %q not removed after failure", name)
	}
}

var errFatal = errors.New("fatal")

// fakeTB captures failures and cleanups so a failing body can be tested.
type fakeTB struct {
	testing.TB
	failed   bool
	msg      string
	cleanups []func()
}

func (f *fakeTB) Helper()                   {}
func (f *fakeTB) Cleanup(fn func())         { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Errorf(s string, a ...any) { f.failed = true; f.msg += fmt.Sprintf(s, a...) }
func (f *fakeTB) Fatalf(s string, a ...any) {
	f.Errorf(s, a...)
	panic(errFatal)
}
func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestPair(t *testing.T) {
	p := NewPair(t)
	if p.A.Inode(t) == p.B.Inode(t) {
		t.Fatal("A and B share a namespace")
	}
	for _, ns := range []*NS{p.A, p.B} {
		if v := strings.Fields(ns.Run(t, "cat", "/proc/sys/net/ipv4/ip_local_port_range")); len(v) != 2 || v[0] != "10000" || v[1] != "65000" {
			t.Errorf("%s: ip_local_port_range = %v", ns.Name, v)
		}
	}
	if !p.A4.Is4() || !p.A6.Is6() || p.A4.As4()[2] != p.B4.As4()[2] {
		t.Errorf("addresses: %v %v %v %v", p.A4, p.B4, p.A6, p.B6)
	}

	// TCP both ways over both families, with sockets made through Do.
	for _, dst := range []string{net.JoinHostPort(p.B4.String(), "7000"), net.JoinHostPort(p.B6.String(), "7001")} {
		var ln net.Listener
		if err := p.B.Do(func() (err error) { ln, err = net.Listen("tcp", dst); return }); err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err == nil {
				_, _ = io.Copy(c, c)
				c.Close()
			}
		}()
		var c net.Conn
		if err := p.A.Do(func() (err error) { c, err = net.DialTimeout("tcp", dst, 2*time.Second); return }); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo: %q %v", buf, err)
		}
		c.Close()
		ln.Close()
	}
	// The test process itself must still be in its own namespace.
	var self unix.Stat_t
	_ = unix.Stat("/proc/thread-self/ns/net", &self)
	if self.Ino == p.A.Inode(t) || self.Ino == p.B.Inode(t) {
		t.Error("Do leaked the namespace into the calling thread")
	}

	p.TBF(t, true, "10mbit", "16kb", "100ms")
	if out := p.A.Run(t, "tc", "qdisc", "show", "dev", p.IfA); !strings.Contains(out, "tbf") {
		t.Errorf("no tbf: %s", out)
	}
	p.NoSegmentOffload(t, true)
	if out := p.A.Run(t, "ethtool", "-k", p.IfA); !strings.Contains(out, "tcp-segmentation-offload: off") || !strings.Contains(out, "generic-segmentation-offload: off") {
		t.Errorf("segmentation offload not off: %s", out)
	}
	p.RxChecksumOff(t, true)
	if out := p.B.Run(t, "ethtool", "-k", p.IfB); !strings.Contains(out, "rx-checksumming: off") {
		t.Errorf("rx checksumming not off: %s", out)
	}
}

func TestPairsParallel(t *testing.T) {
	for i := 0; i < 3; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			p := NewPair(t)
			p.A.Run(t, "ping", "-n", "-c1", "-W1", p.B4.String())
		})
	}
}
