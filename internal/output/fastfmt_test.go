package output

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// appendUint, appendHex, appendAddrPort, appendFrac and pad write what
// strconv, netip and a byte loop wrote, at every digit count, into
// buffers with and without room.
func TestFastFormatMatchesStrconv(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	vals := []uint64{0, math.MaxUint64, math.MaxUint32}
	for i := 0; i < 20; i++ {
		vals = append(vals, pow10[i]-1, pow10[i], pow10[i]+1, 1<<(3*i), 1<<(3*i)-1)
	}
	for i := 0; i < 200000; i++ {
		vals = append(vals, r.Uint64()>>r.IntN(64))
	}
	small := make([]byte, 3, 4)
	for _, v := range vals {
		for _, pre := range [][]byte{nil, small} {
			if got, want := string(appendUint(pre, v)), string(strconv.AppendUint(pre, v, 10)); got != want {
				t.Fatalf("appendUint(%d) = %q, want %q", v, got, want)
			}
			if got, want := string(appendHex(pre, v)), string(strconv.AppendUint(append(pre, "0x"...), v, 16)); got != want {
				t.Fatalf("appendHex(%#x) = %q, want %q", v, got, want)
			}
		}
		if v > 0 && decLen(v) != len(strconv.FormatUint(v, 10)) {
			t.Fatalf("decLen(%d) = %d", v, decLen(v))
		}
		for _, digits := range []int{6, 9} {
			f := int64(v % uint64(pow10[digits]))
			want := strconv.FormatInt(f+int64(pow10[digits]), 10)[1:]
			if got := string(appendFrac(nil, f, digits)); got != want {
				t.Fatalf("appendFrac(%d, %d) = %q, want %q", f, digits, got, want)
			}
		}
		var a4 [4]byte
		for i := range a4 {
			a4[i] = byte(v >> (8 * i))
		}
		ap := netip.AddrPortFrom(netip.AddrFrom4(a4), uint16(v>>32))
		if got, want := string(appendAddrPort(small, ap)), string(ap.AppendTo(small)); got != want {
			t.Fatalf("appendAddrPort(%v) = %q, want %q", ap, got, want)
		}
	}
	for _, s := range []string{"[::1]:1", "[::ffff:1.2.3.4]:5", "[fe80::1%eth0]:22"} {
		ap := netip.MustParseAddrPort(s)
		if got := string(appendAddrPort(nil, ap)); got != s {
			t.Errorf("appendAddrPort(%s) = %q", s, got)
		}
	}
	if got := appendAddrPort(nil, netip.AddrPort{}); len(got) != 0 {
		t.Errorf("invalid AddrPort: %q", got)
	}
	for start := 0; start < 3; start++ {
		for width := -1; width < 200; width++ {
			for n := 0; n < 100; n += 7 {
				b := make([]byte, start+n)
				want := append([]byte(nil), b...)
				for len(want)-start < width {
					want = append(want, ' ')
				}
				want = append(want, ' ')
				if got := pad(b, start, width); string(got) != string(want) {
					t.Fatalf("pad(%d, %d, %d): %d bytes, want %d", len(b), start, width, len(got), len(want))
				}
			}
		}
	}
}

func TestFastFormatDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 256)
	ap := netip.MustParseAddrPort("198.18.1.1:40000")
	if n := testing.AllocsPerRun(100, func() {
		b := appendUint(buf[:0], math.MaxUint64)
		b = appendHex(b, math.MaxUint64)
		b = appendAddrPort(b, ap)
		b = appendFrac(b, 123, 9)
		_ = pad(b, 0, 100)
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// MonoNow reads CLOCK_MONOTONIC (what BPF stamps records with).
func TestMonoNowIsMonotonicClock(t *testing.T) {
	for i := 0; i < 100; i++ {
		var a, c unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &a)
		m := MonoNow()
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &c)
		if m < uint64(a.Nano()) || m > uint64(c.Nano()) {
			t.Fatalf("MonoNow %d not between two CLOCK_MONOTONIC reads %d, %d", m, a.Nano(), c.Nano())
		}
	}
}
