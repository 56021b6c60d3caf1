package ringread

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// producer is a one-page ring and a BPF program that writes one 8-byte
// record (the u64 it is run with) into it, with or without a wakeup.
type producer struct {
	ring *ebpf.Map
	prog *ebpf.Program
}

func newProducer(t *testing.T, wake bool) *producer {
	t.Helper()
	nstest.RequireRoot(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	flags := int32(1) // BPF_RB_NO_WAKEUP
	if wake {
		flags = 2 // BPF_RB_FORCE_WAKEUP
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.Syscall,
		Flags:   unix.BPF_F_SLEEPABLE,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 0, asm.DWord),
			asm.StoreMem(asm.RFP, -8, asm.R2, asm.DWord),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -8),
			asm.Mov.Imm(asm.R3, 8),
			asm.Mov.Imm(asm.R4, flags),
			asm.FnRingbufOutput.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return &producer{ring: m, prog: prog}
}

func (p *producer) write(v uint64) error {
	ctx := make([]byte, 8)
	binary.LittleEndian.PutUint64(ctx, v)
	_, err := p.prog.Run(&ebpf.RunOptions{Context: ctx})
	return err
}

func (p *producer) put(t *testing.T, v uint64) {
	t.Helper()
	if err := p.write(v); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, p *producer) *Reader {
	t.Helper()
	r, err := Open(p.ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestBatchOrderAndWrap: records come out in order and intact across many
// wraps of a one-page ring (16 bytes each with header: 256 per lap), and
// each batch frees the space it read.
func TestBatchOrderAndWrap(t *testing.T) {
	p := newProducer(t, false)
	r := open(t, p)
	next := uint64(0)
	for i := 0; i < 40; i++ {
		for j := 0; j < 100; j++ { // 1600 bytes, under the page
			p.put(t, uint64(i*100+j))
		}
		n, busy := r.Batch(func(raw []byte) bool {
			if len(raw) != 8 {
				t.Fatalf("record of %d bytes, want 8", len(raw))
			}
			if v := binary.LittleEndian.Uint64(raw); v != next {
				t.Fatalf("record %d, want %d", v, next)
			}
			next++
			return true
		})
		if n != 100 || busy {
			t.Fatalf("batch %d: %d records (busy %v), want 100", i, n, busy)
		}
		if a := r.Available(); a != 0 {
			t.Fatalf("batch %d: %d bytes still unread after the batch", i, a)
		}
		// 16 bytes a record with its header: the positions the merge
		// compares to find an idle ring (engine merge.idleMark).
		if pr, co := r.Produced(), r.Consumed(); pr != uint64(i+1)*1600 || co != pr {
			t.Fatalf("batch %d: produced %d consumed %d, want both %d", i, pr, co, (i+1)*1600)
		}
	}
}

// TestBatchStop: a callback that says stop gets the rest on the next batch.
func TestBatchStop(t *testing.T) {
	p := newProducer(t, false)
	r := open(t, p)
	for v := uint64(0); v < 10; v++ {
		p.put(t, v)
	}
	var got []uint64
	n, _ := r.Batch(func(raw []byte) bool {
		got = append(got, binary.LittleEndian.Uint64(raw))
		return len(got) < 3
	})
	if n != 3 {
		t.Fatalf("stopped batch read %d, want 3", n)
	}
	if a := r.Available(); a != 7*16 {
		t.Fatalf("%d bytes unread after a stop at 3 of 10, want %d", a, 7*16)
	}
	r.Batch(func(raw []byte) bool { got = append(got, binary.LittleEndian.Uint64(raw)); return true })
	for i, v := range got {
		if v != uint64(i) {
			t.Fatalf("records %v, want 0..9 in order", got)
		}
	}
	if len(got) != 10 {
		t.Fatalf("%d records, want 10", len(got))
	}
}

// TestWait: a wait ends on a BPF wakeup, on its timeout, and at once after
// Flush (then for good).
func TestWait(t *testing.T) {
	p := newProducer(t, true)
	r := open(t, p)
	start := time.Now()
	if err := r.Wait(30 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 25*time.Millisecond {
		t.Errorf("an empty ring's wait returned after %v, want the 30ms timeout", d)
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		time.Sleep(20 * time.Millisecond)
		if err := p.write(7); err != nil {
			t.Error(err)
		}
	}()
	defer func() { <-wrote }()
	start = time.Now()
	if err := r.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a wakeup ended the wait only after %v", d)
	}
	if n, _ := r.Batch(func([]byte) bool { return true }); n != 1 {
		t.Errorf("%d records after the wakeup, want 1", n)
	}
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		time.Sleep(20 * time.Millisecond)
		r.Flush()
	}()
	defer func() { <-flushed }()
	start = time.Now()
	if err := r.Wait(5 * time.Second); !errors.Is(err, ErrFlushed) {
		t.Fatalf("wait during Flush: %v, want ErrFlushed", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Flush ended the wait only after %v", d)
	}
	if err := r.Wait(5 * time.Second); !errors.Is(err, ErrFlushed) {
		t.Fatalf("wait after Flush: %v, want ErrFlushed at once", err)
	}
}

// TestPoke: a Poke ends a wait at once (also one made before the wait),
// once: the next wait runs to its timeout again; a later Flush still stops.
func TestPoke(t *testing.T) {
	p := newProducer(t, true)
	r := open(t, p)
	poked := make(chan struct{})
	go func() {
		defer close(poked)
		time.Sleep(20 * time.Millisecond)
		r.Poke()
	}()
	start := time.Now()
	if err := r.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-poked
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a Poke ended the wait only after %v", d)
	}
	r.Poke() // before the wait: that wait returns at once
	start = time.Now()
	if err := r.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("an earlier Poke ended the wait only after %v", d)
	}
	start = time.Now()
	if err := r.Wait(30 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 25*time.Millisecond {
		t.Errorf("the wait after a consumed Poke returned after %v, want the 30ms timeout", d)
	}
	start = time.Now()
	if err := r.Wait(0); err != nil || time.Since(start) > time.Second {
		t.Errorf("Wait(0): %v after %v, want nil at once", err, time.Since(start))
	}
	r.Flush()
	if err := r.Wait(5 * time.Second); !errors.Is(err, ErrFlushed) {
		t.Fatalf("wait after Flush: %v, want ErrFlushed", err)
	}
}

func TestOpenRefusesOtherMaps(t *testing.T) {
	nstest.RequireRoot(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := Open(m); err == nil {
		t.Fatal("Open accepted an array map")
	}
}
