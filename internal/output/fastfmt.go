package output

import (
	"math/bits"
	"net/netip"
)

// The number and address formatting of every record, written in place
// into the caller's buffer: strconv.AppendUint and netip's AppendTo format
// into a buffer of their own and copy it, which was a third of the CPU of
// a packet record (issue 17). The bytes are theirs (fastfmt_test.go).

const digits2 = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

var pow10 = [20]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// decLen is the number of decimal digits of v > 0.
func decLen(v uint64) int {
	t := bits.Len64(v) * 1233 >> 12 // log10(2) ≈ 1233/4096: floor(log10 v) or one more
	if v < pow10[t] {
		return t
	}
	return t + 1
}

// grow extends b by n bytes (their content is overwritten by the caller).
func grow(b []byte, n int) []byte {
	if l := len(b) + n; l <= cap(b) {
		return b[:l]
	}
	return append(b, make([]byte, n)...)
}

// appendUint is strconv.AppendUint(b, v, 10).
func appendUint(b []byte, v uint64) []byte {
	if v < 10 {
		return append(b, byte('0'+v))
	}
	n := decLen(v)
	l := len(b)
	b = grow(b, n)
	d := b[l : l+n : l+n]
	i := n
	// four digits a step: the two halves of each step do not wait for
	// each other (the chain of divisions is what a number costs)
	for v >= 10000 {
		q := v / 10000
		r := uint32(v - q*10000)
		hi, lo := (r/100)*2, (r%100)*2
		i -= 4
		d[i+3], d[i+2], d[i+1], d[i] = digits2[lo+1], digits2[lo], digits2[hi+1], digits2[hi]
		v = q
	}
	w := uint32(v)
	if w >= 100 {
		q := w / 100
		r := (w - q*100) * 2
		i -= 2
		d[i+1], d[i] = digits2[r+1], digits2[r]
		w = q
	}
	if w >= 10 {
		d[1], d[0] = digits2[2*w+1], digits2[2*w]
	} else {
		d[0] = byte('0' + w)
	}
	return b
}

// putDec writes v's decimal digits right-aligned into d (len(d) of them:
// leading zeros when v has fewer).
func putDec(d []byte, v uint64) {
	i := len(d)
	for v >= 100 && i >= 2 {
		q := v / 100
		r := (v - q*100) * 2
		d[i-1], d[i-2] = digits2[r+1], digits2[r]
		i -= 2
		v = q
	}
	for i > 0 {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
	}
}

const hexDigits = "0123456789abcdef"

// hexPairs holds the two hex digits of every byte value.
var hexPairs = func() (t [512]byte) {
	for i := range 256 {
		t[2*i], t[2*i+1] = hexDigits[i>>4], hexDigits[i&15]
	}
	return t
}()

// appendHex is "0x" + strconv.AppendUint(b, v, 16).
func appendHex(b []byte, v uint64) []byte {
	n := max((bits.Len64(v)+3)/4, 1)
	b = grow(b, n+2)
	d := b[len(b)-n-2:]
	d[0], d[1] = '0', 'x'
	i := n + 1 // a byte (two digits) a step, from the last digit
	for i >= 3 {
		x := (v & 0xff) * 2
		d[i], d[i-1] = hexPairs[x+1], hexPairs[x]
		i -= 2
		v >>= 8
	}
	if i == 2 {
		d[2] = hexDigits[v&15]
	}
	return b
}

// appendAddrPort is ap.AppendTo(b) (nothing for an invalid one).
func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	a := ap.Addr()
	if !a.Is4() {
		return ap.AppendTo(b)
	}
	v4 := a.As4()
	b = appendOctet(b, v4[0])
	b = append(b, '.')
	b = appendOctet(b, v4[1])
	b = append(b, '.')
	b = appendOctet(b, v4[2])
	b = append(b, '.')
	b = appendOctet(b, v4[3])
	b = append(b, ':')
	return appendUint(b, uint64(ap.Port()))
}

func appendOctet(b []byte, v uint8) []byte {
	switch {
	case v >= 100:
		r := uint(v%100) * 2
		return append(b, '0'+v/100, digits2[r], digits2[r+1])
	case v >= 10:
		r := uint(v) * 2
		return append(b, digits2[r], digits2[r+1])
	}
	return append(b, '0'+v)
}

// spaces pads table columns (pad).
const spaces = "                                                                "
