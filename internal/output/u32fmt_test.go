package output

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// appendU32 writes what strconv wrote at every digit count, into buffers
// with and without room.
func TestAppendU32MatchesStrconv(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	vals := []uint32{0, math.MaxUint32}
	for i := 0; i < 10; i++ {
		p := uint32(pow10[i])
		vals = append(vals, p-1, p, p+1)
	}
	for i := 0; i < 500000; i++ {
		vals = append(vals, r.Uint32()>>r.IntN(32))
	}
	small := make([]byte, 3, 4)
	for _, v := range vals {
		for _, pre := range [][]byte{nil, small} {
			if got, want := string(appendU32(pre, v)), string(strconv.AppendUint(pre, uint64(v), 10)); got != want {
				t.Fatalf("appendU32(%d) = %q, want %q", v, got, want)
			}
		}
	}
}

func BenchmarkAppendU32(b *testing.B) {
	buf := make([]byte, 0, 64)
	v := uint32(3889652109)
	b.Run("u32", func(b *testing.B) {
		for b.Loop() {
			v += 1024
			buf = appendU32(buf[:0], v)
		}
	})
	b.Run("uint", func(b *testing.B) {
		for b.Loop() {
			v += 1024
			buf = appendUint(buf[:0], uint64(v))
		}
	})
}
