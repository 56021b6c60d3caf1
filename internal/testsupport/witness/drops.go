package witness

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// dropMap counts kfree_skb drops by reason (kind Drops): an array indexed
// by the kernel's enum skb_drop_reason, sized SKB_DROP_REASON_MAX (the
// subsystem reasons, high bits set, are not counted).
type dropMap struct {
	m     *ebpf.Map
	names map[uint32]string // code -> name less SKB_DROP_REASON_
	max   uint32
	rxSk  bool // the tracepoint passes rx_sk (6.11+)
}

func newDropMap(t testing.TB, spec *btf.Spec) *dropMap {
	t.Helper()
	var en *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &en); err != nil {
		t.Fatalf("BTF: enum skb_drop_reason: %v", err)
	}
	d := &dropMap{names: map[uint32]string{}}
	for _, v := range en.Values {
		name := strings.TrimPrefix(v.Name, "SKB_DROP_REASON_")
		if name == "MAX" {
			d.max = uint32(v.Value)
			continue
		}
		if v.Value < 1<<16 {
			d.names[uint32(v.Value)] = name
		}
	}
	if d.max == 0 {
		t.Fatal("BTF: enum skb_drop_reason has no SKB_DROP_REASON_MAX")
	}
	// btf_trace_kfree_skb(void *, skb, location, reason[, rx_sk])
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_kfree_skb", &td); err != nil {
		t.Fatalf("BTF: btf_trace_kfree_skb: %v", err)
	}
	if ptr, ok := td.Type.(*btf.Pointer); ok {
		if fp, ok := ptr.Target.(*btf.FuncProto); ok {
			d.rxSk = len(fp.Params) >= 5
		}
	}
	var err error
	d.m, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: d.max})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// program: kfree_skb(skb, location, reason, rx_sk): reasons[reason]++
// when the skb's namespace is one of ns. The namespace: the skb's
// device's; where that is not set or not readable (TCP took the segment
// from its device; skb->dev is a scratch value in a UDP receive queue),
// the receiving socket's (rx_sk, 6.11+), else skb->sk's. Only when that
// fails too is the run counted as a failed read ("readfail", the
// caller's).
func (d *dropMap) program(o offsets, ns [2]uint32) asm.Instructions {
	read := readInsns // R3 = the size bytes at R3 + off, or a jump to fail
	is := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.Mov.Imm(asm.R0, 0),
		asm.LoadMem(asm.R9, asm.R6, 16, asm.DWord),
		asm.JGE.Imm32(asm.R9, int32(d.max), "exit"),
		asm.LoadMem(asm.R3, asm.R6, 0, asm.DWord),
		asm.Mov.Reg(asm.R8, asm.R3),
	}
	// the device's namespace
	is = append(is, read(o.skbDev, asm.DWord, "nodev")...)
	is = append(is, asm.JEq.Imm(asm.R3, 0, "nodev"))
	is = append(is, read(o.devNet, asm.DWord, "nodev")...)
	is = append(is, asm.JEq.Imm(asm.R3, 0, "nodev"))
	is = append(is, read(o.netInum, asm.Word, "nodev")...)
	is = append(is, asm.Ja.Label("inum"))
	// the socket's: rx_sk, or skb->sk
	nodev := asm.Instructions{asm.Mov.Reg(asm.R3, asm.R8)}
	if d.rxSk {
		nodev = asm.Instructions{
			asm.LoadMem(asm.R3, asm.R6, 24, asm.DWord),
			asm.JNE.Imm(asm.R3, 0, "sock"),
			asm.Mov.Reg(asm.R3, asm.R8),
		}
	}
	nodev[0] = nodev[0].WithSymbol("nodev")
	is = append(is, nodev...)
	is = append(is, read(o.skbSk, asm.DWord, "readfail")...)
	is = append(is, asm.JEq.Imm(asm.R3, 0, "exit"))
	sock := read(o.skNet, asm.DWord, "readfail")
	sock[0] = sock[0].WithSymbol("sock")
	is = append(is, sock...)
	is = append(is, asm.JEq.Imm(asm.R3, 0, "exit"))
	is = append(is, read(o.netInum, asm.Word, "readfail")...)
	return append(is,
		asm.JEq.Imm32(asm.R3, int32(ns[0]), "inns").WithSymbol("inum"),
		asm.JEq.Imm32(asm.R3, int32(ns[1]), "inns"),
		asm.Ja.Label("exit"),
		asm.StoreMem(asm.RFP, -16, asm.R9, asm.Word).WithSymbol("inns"),
		asm.LoadMapPtr(asm.R1, d.m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Imm(asm.R7, 1),
		asm.StoreXAdd(asm.R0, asm.R7, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	)
}

// offsets: kernel struct members the drop program reads.
type offsets struct{ skbDev, devNet, netInum, skbSk, skNet int32 }

// counts reads the map: reason name -> drops (only reasons counted).
func (d *dropMap) counts(t testing.TB) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for code := uint32(0); code < d.max; code++ {
		var v uint64
		if err := d.m.Lookup(code, &v); err != nil {
			t.Fatal(err)
		}
		if v != 0 {
			name, ok := d.names[code]
			if !ok {
				name = fmt.Sprintf("#%d", code)
			}
			out[name] += v
		}
	}
	return out
}

// Dropped is the sum of the witness's kfree_skb drops with the reasons
// named (kernel names less SKB_DROP_REASON_), kind Drops.
func (c Counts) Dropped(reasons ...string) uint64 {
	var n uint64
	for _, r := range reasons {
		n += c.Drops[r]
	}
	return n
}

// DropsSince is c's drops of reasons less those of an earlier reading b.
func (c Counts) DropsSince(b Counts, reasons ...string) uint64 {
	return c.Dropped(reasons...) - b.Dropped(reasons...)
}
