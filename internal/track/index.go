package track

// index maps a ConnKey to its entry: the table's entries (open and kept
// closed) and the removed ones still remembered for their late records,
// in one open-addressing table with the keys inline (linear probing,
// deletion by backward shift: no tombstones).
//
// It replaced two Go maps (one for the table, one for the removed ones):
// under connection churn with -a (16,384 kept closed, 4,096 remembered
// removed) every connection moved through both maps, ~10 map operations
// on maps too big for the cache, a third of the pipeline's CPU. Here a
// connection is inserted once (when the table learns of it) and deleted
// once (when the memory of removed ones forgets it); a lookup is one hash
// and a short run of adjacent 16-byte slots.
//
// A slot holds the key's 64-bit hash, not the key: 16 bytes, not 24 (with
// -a the index is 32,768 slots, and a new connection's slot is a cache
// miss more often the larger it is). A lookup whose hash matches checks
// the entry's own key (the caller reads the entry next anyway); a delete
// looks for the entry itself.
type index struct {
	slots []islot // len a power of two, at most 3/4 used
	n     int
	shift uint // 64 - log2(len(slots))
}

type islot struct {
	h uint64 // hashOf the entry's key
	e *Entry // nil: empty
}

const indexMin = 1024

func hashOf(k ConnKey) uint64 {
	return (k.Sock ^ uint64(k.EstLo)<<29 ^ uint64(k.EstLo)) * 0x9e3779b97f4a7c15
}

func (x *index) get(k ConnKey) *Entry {
	if x.n == 0 {
		return nil
	}
	h := hashOf(k)
	mask := uint64(len(x.slots) - 1)
	for i := h >> x.shift; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.e == nil {
			return nil
		}
		if s.h == h && KeyOf(&s.e.Conn) == k {
			return s.e
		}
	}
}

// put maps k to e (k must not be in the index; e's key is k).
func (x *index) put(k ConnKey, e *Entry) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow()
	}
	x.putHash(hashOf(k), e)
}

func (x *index) putHash(h uint64, e *Entry) {
	mask := uint64(len(x.slots) - 1)
	i := h >> x.shift
	for x.slots[i].e != nil {
		i = (i + 1) & mask
	}
	x.slots[i] = islot{h, e}
	x.n++
}

// del removes k if it maps to e.
func (x *index) del(k ConnKey, e *Entry) {
	if x.n == 0 {
		return
	}
	mask := uint64(len(x.slots) - 1)
	i := hashOf(k) >> x.shift
	for {
		s := &x.slots[i]
		if s.e == nil {
			return
		}
		if s.e == e {
			break
		}
		i = (i + 1) & mask
	}
	// backward shift: move later slots of the run whose home is not in
	// (i, j] into the hole
	for j := i; ; {
		j = (j + 1) & mask
		s := &x.slots[j]
		if s.e == nil {
			break
		}
		h := s.h >> x.shift
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			x.slots[i] = *s
			i = j
		}
	}
	x.slots[i] = islot{}
	x.n--
}

func (x *index) grow() {
	old := x.slots
	n := max(2*len(old), indexMin)
	x.slots = make([]islot, n)
	x.shift = 64
	for m := n; m > 1; m >>= 1 {
		x.shift--
	}
	x.n = 0
	for _, s := range old {
		if s.e != nil {
			x.putHash(s.h, s.e)
		}
	}
}
