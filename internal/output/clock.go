package output

import (
	"time"
	_ "unsafe" // go:linkname

	"golang.org/x/sys/unix"
)

// MonoNow is CLOCK_MONOTONIC in ns, the clock of bpf_ktime_get_ns. It is
// the runtime's clock (nanotime: CLOCK_MONOTONIC through the vDSO on
// Linux); unix.ClockGettime is a real system call, and the readers and
// the merge ask for the time at every pass (TestMonoNowIsMonotonicClock).
func MonoNow() uint64 { return uint64(nanotime()) }

//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Clock turns the kernel's monotonic timestamps into wall-clock time, so a
// record can be lined up with `tcpdump -tt` or an application's log. The
// offset is re-read by Sync (every second): it follows clock steps within a
// second. Formatting caches the text of the current second: no allocation
// and no calendar arithmetic per record.
type Clock struct {
	off     int64 // realtime - monotonic, ns
	loc     *time.Location
	sec     int64 // the second the caches hold (unix)
	jsonSec []byte
	tabSec  []byte
}

// NewClock returns a synced clock; table times are in loc (nil: local).
func NewClock(loc *time.Location) *Clock {
	if loc == nil {
		loc = time.Local
	}
	c := &Clock{loc: loc, sec: -1}
	c.Sync()
	return c
}

// Sync re-reads the offset between the two clocks.
func (c *Clock) Sync() {
	var rt unix.Timespec
	m1 := MonoNow()
	unix.ClockGettime(unix.CLOCK_REALTIME, &rt)
	m2 := MonoNow()
	c.off = rt.Nano() - int64(m1+(m2-m1)/2)
}

// Wall is the wall-clock time of a monotonic timestamp, unix ns.
func (c *Clock) Wall(mono uint64) int64 { return int64(mono) + c.off }

func (c *Clock) at(mono uint64) (nsec int64) {
	w := c.Wall(mono)
	s, ns := w/1e9, w%1e9
	if s != c.sec {
		c.sec = s
		t := time.Unix(s, 0)
		c.jsonSec = t.UTC().AppendFormat(c.jsonSec[:0], "2006-01-02T15:04:05.")
		c.tabSec = t.In(c.loc).AppendFormat(c.tabSec[:0], "15:04:05.")
	}
	return ns
}

// appendFrac appends v (0 <= v < 10^digits) with leading zeros: digits of them.
func appendFrac(b []byte, v int64, digits int) []byte {
	if v < 0 { // a stamp before 1970 (not a real one): what this always printed
		var d [9]byte
		for i := digits - 1; i >= 0; i-- {
			d[i] = byte('0' + v%10)
			v /= 10
		}
		return append(b, d[:digits]...)
	}
	b = grow(b, digits)
	putDec(b[len(b)-digits:], uint64(v))
	return b
}

// AppendJSON appends RFC 3339 UTC time with ns ("2026-11-28T03:12:01.123456789Z").
func (c *Clock) AppendJSON(b []byte, mono uint64) []byte {
	ns := c.at(mono)
	b = append(b, c.jsonSec...)
	b = appendFrac(b, ns, 9)
	return append(b, 'Z')
}

// AppendTable appends local time of day with µs, like tcpdump
// ("03:12:01.123456").
func (c *Clock) AppendTable(b []byte, mono uint64) []byte {
	ns := c.at(mono)
	b = append(b, c.tabSec...)
	return appendFrac(b, ns/1000, 6)
}
