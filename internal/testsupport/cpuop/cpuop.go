// Package cpuop reports a benchmark's CPU time per op.
package cpuop

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// PerOp reports the benchmark goroutine's thread CPU time per op
// (cpu-ns/op; user + system, so a log file's pwrite is included), which
// other load on a shared host does not inflate the way it does wall time.
// Call as defer cpuop.PerOp(b)() before the timed loop.
func PerOp(b *testing.B) func() {
	runtime.LockOSThread()
	t0 := ThreadNs()
	return func() {
		b.ReportMetric(float64(ThreadNs()-t0)/float64(b.N), "cpu-ns/op")
		runtime.UnlockOSThread()
	}
}

// ThreadNs is the calling thread's CPU time in ns (lock the goroutine to its
// thread around what is measured).
func ThreadNs() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}
