package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/tcpconn"
)

// The test binary doubles as nwfault when NWFAULT_TEST_MAIN=1, so that
// signal handling can be tested on a real process.
func TestMain(m *testing.M) {
	if os.Getenv("NWFAULT_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestUsageErrors(t *testing.T) {
	cases := [][]string{
		{},
		{"frobnicate"},
		{"badcsum", "--flow", "198.18.200.1:1,198.18.200.2:2"},
		{"badcsum", "--netns", "nwf-no-such-ns", "--flow", "198.18.200.1:1,198.18.200.2:2"},
		{"badcsum", "--netns", "../etc", "--flow", "198.18.200.1:1,198.18.200.2:2"},
		{"oow", "--bogus"},
		{"oow", "--count", "x"},
		{"drop", "--duration", "10q"},
		{"blackout", "--ms"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(c...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", c, code)
		}
		if n := strings.Count(stderr, "\n"); n != 1 {
			t.Errorf("%q: stderr has %d lines, want 1: %q", c, n, stderr)
		}
	}
	for _, c := range [][]string{{"--help"}, {"badcsum", "--help"}, {"drop", "-h"}} {
		code, stdout, _ := runCLI(c...)
		if code != 0 || !strings.Contains(stdout, "usage: nwfault") {
			t.Errorf("%q: exit %d, stdout %q", c, code, stdout)
		}
	}
}

// lab: namespaces A (client) and B (server) joined by a veth, one TCP
// connection A->B over IPv4.
type lab struct {
	*nstest.Pair
	c    *tcpconn.Conn
	flow string
}

func newLab(t *testing.T) *lab {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "nft")
	l := &lab{Pair: nstest.NewPair(t)}
	l.c = tcpconn.Dial(t, l.Pair, false, 0, 0)
	l.flow = l.c.ClientAddr.String() + "," + l.c.ServerAddr.String()
	return l
}

func (l *lab) ping() error { return l.c.RoundTrip(9, 1) }

// pinger sends a round trip every 100 ms until stopped.
func (l *lab) pinger(t *testing.T) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
				if err := l.ping(); err != nil {
					t.Errorf("ping: %v", err)
					return
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func TestCLI(t *testing.T) {
	l := newLab(t)
	if code, out, errs := runCLI("rxcsum-off", "--netns", l.B.Name, "--iface", l.IfB); code != 0 {
		t.Fatalf("rxcsum-off: %d %s %s", code, out, errs)
	}
	before, err := fault.ReadCounters(l.B.Name)
	if err != nil {
		t.Fatal(err)
	}
	stop := l.pinger(t)
	code, out, errs := runCLI("badcsum", "--netns", l.A.Name, "--flow", l.flow, "--count", "3")
	stop()
	t.Log(out)
	if code != 0 {
		t.Fatalf("badcsum: exit %d: %s", code, errs)
	}
	if n := len(regexp.MustCompile(`(?m)^injected badcsum seq=\d+ ack=\d+ `).FindAllString(out, -1)); n != 3 {
		t.Errorf("%d 'injected badcsum' lines, want 3", n)
	}
	if !strings.Contains(out, "summary: badcsum injected=3") {
		t.Errorf("no summary line")
	}
	time.Sleep(50 * time.Millisecond)
	after, _ := fault.ReadCounters(l.B.Name)
	if d := after["TcpInCsumErrors"] - before["TcpInCsumErrors"]; d != 3 {
		t.Errorf("TcpInCsumErrors +%d, want 3", d)
	}
	stop = l.pinger(t)
	code, out, errs = runCLI("oow", "--netns", l.A.Name, "--flow", l.flow, "--count", "2", "--mode", "old")
	stop()
	t.Log(out)
	if code != 0 || strings.Count(out, "injected oow-old seq=") != 2 {
		t.Fatalf("oow: exit %d: %s", code, errs)
	}
	// Refusals: the receiver namespace does not hold the sender address.
	if code, _, errs := runCLI("badcsum", "--netns", l.B.Name, "--flow", l.flow); code != 2 {
		t.Errorf("badcsum in the wrong namespace: exit %d (%s)", code, errs)
	}
	if code, _, errs := runCLI("drop", "--netns", l.A.Name, "--flow", l.flow, "--every", "2", "--duration", "1s"); code != 2 {
		t.Errorf("drop in the wrong namespace: exit %d (%s)", code, errs)
	}
	if code, out, errs := runCLI("blackout", "--netns", l.B.Name, "--flow", l.flow, "--ms", "50", "--repeat", "2", "--gap-ms", "50"); code != 0 || !strings.Contains(out, "removed table inet nwfault_") {
		t.Errorf("blackout: exit %d: %s %s", code, out, errs)
	}
	if code, out, _ := runCLI("counters", "--netns", l.B.Name, "TcpInCsumErrors"); code != 0 || !strings.HasPrefix(out, "TcpInCsumErrors ") {
		t.Errorf("counters: %d %q", code, out)
	}
	if err := l.ping(); err != nil {
		t.Fatalf("connection broken: %v", err)
	}

	// A real process: SIGTERM ends a drop without duration and removes its table.
	cmd := exec.Command(os.Args[0], "drop", "--netns", l.B.Name, "--flow", l.flow, "--every", "3")
	cmd.Env = append(os.Environ(), "NWFAULT_TEST_MAIN=1")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(tables(t, l.B), "nwfault_") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("drop table never appeared: %s %s", so.String(), se.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("nwfault drop after SIGTERM: %v: %s", err, se.String())
	}
	if tb := tables(t, l.B); tb != "" {
		t.Fatalf("tables left after SIGTERM: %q", tb)
	}
	t.Log(so.String())
}

func tables(t *testing.T, ns *nstest.NS) string {
	return strings.TrimSpace(ns.Run(t, "nft", "list", "tables"))
}
