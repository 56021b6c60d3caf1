// Package stream follows one direction of a TCP connection through the
// application capture's records (internal/l7cap: each segment's sequence
// number, payload length and first bytes) and hands its protocol the
// messages in order: several messages in one segment, one message split
// over segments (its start kept, bounded, until the rest comes),
// retransmissions and overlaps skipped, bytes that were never seen (a ring
// loss, a payload beyond the capture) resynchronised on the next segment
// start. Used by DNS over TCP (internal/dns), Redis (internal/redis) and
// MySQL (internal/mysql).
//
// The protocol says where messages end with a Framer. A Follower holds the
// state of every direction it has seen (bounded: past MaxFlows it forgets
// them all and counts it); one goroutine (the pipeline's).
package stream

import "net/netip"

// Status of a Framer call.
type Status uint8

const (
	// OK: the first n bytes of the stream belong to the message (n may
	// be larger than the bytes given: the rest is skipped unseen); next
	// is 0 when the message ends there, else the framer's state to go on
	// with after those n bytes (its cont on the next call).
	OK Status = iota
	// More: too few bytes to tell; the Follower keeps them and calls
	// again with more (or gives the stream up when it cannot).
	More
	// Bad: not the start of a message (only with cont 0): the stream is
	// lost until a segment starts with one.
	Bad
)

// Framer tells where a message ends. b starts at a message start (cont 0)
// or, after an OK with next != 0, where the message goes on (cont =
// next). A Framer keeps no state of its own (all of it is in cont) and
// must not keep b; for a given start it answers the same for any b that
// begins with the same bytes, and More only when no prefix of b frames.
type Framer func(b []byte, cont uint32) (n int, next uint32, st Status)

// Key is one direction of a connection: the local socket (its memory is
// reused by the next connection at once: the addresses tell them apart),
// the direction, and the packet's addresses.
type Key struct {
	Sock     uint64
	Rx       bool
	Src, Dst netip.AddrPort
}

// MaxCarry is how many bytes of an unfinished message the Follower keeps
// across segments (a message longer than this is handed over cut when its
// segment ends).
const MaxCarry = 2048

// MaxFlows bounds the directions followed at once.
const MaxFlows = 65536

type flow struct {
	next    uint32 // sequence number of the next byte expected
	skip    uint32 // bytes of the current message still to skip
	cont    uint32 // framer state at next (after skip): 0 a message starts
	lost    bool   // the next segment is taken as a message start
	carry   []byte // bytes before next not framed yet (cap MaxCarry)
	carryTS uint64 // the time of the segment where the carry starts
}

// Follower is the per-direction state of the streams of one protocol.
type Follower struct {
	flows map[Key]*flow
	free  []*flow

	// OnLoss, if set, is called when direction k loses its place (bytes
	// missed, a message beyond the capture, not a message start, carry
	// full): before any later message of k is handed over (a protocol
	// that pairs in order gives up what waits).
	OnLoss func(k Key)

	// Counters (exit stats).
	Resync     uint64 // bytes missed (a ring loss, a gap): taken up again at a segment start
	Uncaptured uint64 // a message (or its continuation) began beyond the bytes captured: stream lost until a segment start
	BadStart   uint64 // a segment taken as a message start was not one (a connection seen mid-stream, or after a loss)
	CarryFull  uint64 // an unfinished message (head) longer than MaxCarry: stream lost
	FlowsReset uint64 // directions forgotten all at once (more than MaxFlows)
}

// New returns an empty Follower.
func New() *Follower { return &Follower{flows: map[Key]*flow{}} }

// Flows is the number of directions followed.
func (f *Follower) Flows() int { return len(f.flows) }

// Forget drops a direction's state (its connection is gone).
func (f *Follower) Forget(k Key) {
	if st, ok := f.flows[k]; ok {
		delete(f.flows, k)
		f.free = append(f.free, st)
	}
}

func (f *Follower) get(k Key) (*flow, bool) {
	if st, ok := f.flows[k]; ok {
		return st, true
	}
	if len(f.flows) >= MaxFlows {
		// directions have no end we see (a FIN has no payload): bound them
		for _, st := range f.flows {
			f.free = append(f.free, st)
		}
		clear(f.flows)
		f.FlowsReset++
	}
	var st *flow
	if n := len(f.free); n > 0 {
		st = f.free[n-1]
		f.free = f.free[:n-1]
		*st = flow{carry: st.carry[:0]}
	} else {
		st = &flow{}
	}
	f.flows[k] = st
	return st, false
}

// Segment takes one captured segment of direction k: seq, the payload's
// length in the packet (payLen), the bytes captured (data, a prefix of
// the payload), its time. Each message that starts in it (or in the carry
// it completes) is handed to emit: its bytes as far as they are known
// (head; at most the message), cut when the message goes on beyond them,
// and the time of the segment where it started. head is valid during the
// call only.
func (f *Follower) Segment(k Key, seq uint32, payLen int, data []byte, ts uint64, fr Framer,
	emit func(head []byte, cut bool, ts uint64)) {
	if payLen <= 0 {
		return
	}
	P := uint32(payLen)
	if len(data) > payLen {
		data = data[:payLen]
	}
	st, ok := f.get(k)
	pos := uint32(0)
	if !ok {
		st.lost = true
	} else {
		switch d := int32(seq - st.next); {
		case d == 0:
		case d > 0: // bytes missed
			if !st.lost {
				f.Resync++
				f.loss(k)
			}
			st.lost = true
		case int32(seq+P-st.next) <= 0:
			return // seen already (a retransmission)
		default:
			pos = st.next - seq // overlaps what was seen: the new part
		}
	}
	if st.lost {
		st.lost, st.skip, st.cont, st.carry = false, 0, 0, st.carry[:0]
	}
	st.next = seq + P
	for pos < P {
		if st.skip > 0 {
			s := min(st.skip, P-pos)
			pos += s
			st.skip -= s
			continue
		}
		var w []byte
		if pos < uint32(len(data)) {
			w = data[pos:]
		}
		whole := uint32(len(data)) == P // everything from pos to the segment's end is in w
		held := len(st.carry)
		mts := ts
		if held > 0 {
			if st.carry == nil || cap(st.carry) < MaxCarry {
				st.carry = make([]byte, held, MaxCarry)
			}
			add := min(len(w), MaxCarry-held)
			st.carry = append(st.carry, w[:add]...)
			whole = whole && add == len(w)
			w = st.carry
			mts = st.carryTS
		}
		if len(w) == 0 {
			f.Uncaptured++
			st.lost = true
			f.loss(k)
			return
		}
		n, next, s := fr(w, st.cont)
		switch {
		case s == Bad:
			f.BadStart++
			st.lost = true
			f.loss(k)
			return
		case s == More || n < held:
			if !whole || len(w) >= MaxCarry || s != More {
				if len(w) >= MaxCarry {
					f.CarryFull++
				} else {
					f.Uncaptured++
				}
				st.lost = true
				f.loss(k)
				return
			}
			f.keep(st, w, held, mts)
			return
		}
		if st.cont == 0 {
			if n > len(w) && whole && n <= MaxCarry {
				f.keep(st, w, held, mts) // wait for the rest of the message
				return
			}
			emit(w[:min(n, len(w))], n > len(w) || next != 0, mts)
		}
		st.cont = next
		st.carry = st.carry[:0]
		end := uint64(pos) + uint64(n-held) // the message's end in this segment's terms
		if end <= uint64(P) {
			pos = uint32(end)
		} else {
			st.skip = uint32(min(end-uint64(P), 1<<31))
			pos = P
		}
	}
}

func (f *Follower) loss(k Key) {
	if f.OnLoss != nil {
		f.OnLoss(k)
	}
}

// keep holds w (the carry already, or the rest of the segment) until the
// next segment.
func (f *Follower) keep(st *flow, w []byte, held int, ts uint64) {
	if held == 0 {
		if cap(st.carry) < MaxCarry {
			st.carry = make([]byte, 0, MaxCarry)
		}
		st.carry = append(st.carry[:0], w...)
	}
	st.carryTS = ts
}
