// Package nsenter runs a function inside another network namespace: the one
// way netwatcher, its fault injector and its tests enter a namespace.
//
// setns(2) changes the namespace of the calling thread only, so fn runs on
// a goroutine locked to its OS thread; afterwards the thread goes back to
// its original namespace and is unlocked. If going back fails (or fn
// panics), the goroutine exits still locked and the Go runtime ends the
// thread instead of reusing it: no other goroutine ever runs in a namespace
// by accident. Goroutines started by fn do not run in the namespace.
package nsenter

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn inside the network namespace of target (an open nsfs file,
// e.g. /run/netns/NAME or /proc/PID/ns/net) and returns its error.
func Do(target *os.File, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", target.Name(), err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back to the original namespace: %w", err)
			return // still locked: the thread ends with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// DoPath is Do for the namespace file at path.
func DoPath(path string, fn func() error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return Do(f, fn)
}
