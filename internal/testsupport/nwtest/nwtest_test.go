package nwtest_test

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
)

// fatalTB records the first Fatalf and ends the calling goroutine, as
// testing's FailNow does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// call runs fn as a test body would and returns its Fatalf message ("" if
// it returned).
func call(f *fatalTB, fn func()) string {
	f.msg = ""
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	return f.msg
}

// TestEventCap: with the cap at 10 events, a run that prints more keeps
// 10, drops the rest (still reading them), and Events, Find and a WaitFor
// for an event not kept fail the test saying why; a WaitFor for a kept
// event still answers. Stop is clean.
func TestEventCap(t *testing.T) {
	nstest.RequireRoot(t)
	t.Setenv(nwtest.MaxEventsEnv, "10")
	ns := nstest.NewNS(t)
	f := &fatalTB{TB: t}
	r := nwtest.Start(f, "--no-packets")
	if r.MaxEvents != 10 {
		t.Fatalf("MaxEvents %d, want 10 from $%s", r.MaxEvents, nwtest.MaxEventsEnv)
	}
	// 20 connections in a namespace of the test's own: 40+ events
	err := ns.Do(func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		for range 20 {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Dropped() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if r.Dropped() == 0 {
		t.Fatal("no event dropped past a cap of 10")
	}
	for what, fn := range map[string]func(){
		"Events": func() { r.Events() },
		"Find":   func() { r.Find(func(nwtest.Ev) bool { return true }) },
		"waiting for nothing": func() {
			r.WaitFor(time.Second, "nothing", func(nwtest.Ev) bool { return false })
		},
	} {
		msg := call(f, fn)
		t.Logf("%s: %s", what, msg)
		if !strings.Contains(msg, "more than 10 events") || !strings.HasPrefix(msg, what) {
			t.Errorf("%s past the cap: Fatalf %q, want one about the cap", what, msg)
		}
	}
	if msg := call(f, func() { r.WaitFor(time.Second, "anything", func(nwtest.Ev) bool { return true }) }); msg != "" {
		t.Errorf("WaitFor of a kept event past the cap: %q", msg)
	}
	r.Stop()
}
