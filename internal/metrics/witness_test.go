package metrics_test

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// bpfWitness is a second, minimal consumer of the tracepoints netwatcher
// counts retransmitted segments and drops on (a raw_tracepoint program
// each, built here, sharing no code with netwatcher): what the kernel
// handed to BPF programs. The kernel counters (TcpRetransSegs, nft's
// counter) count some events whose tracepoint runs no BPF program at all:
// under load, in bursts of a few ms, the tracepoint fires (an ftrace event
// on it sees every one) but no BPF program attached to it runs (netwatcher's
// tp_btf programs, a bpftrace tracepoint program and this witness miss the
// same ones) and no program's recursion_misses counts it. netwatcher cannot
// see those; everything BPF was given, it must report: the oracle checks
// netwatcher against the witness exactly, and against the kernel's counters
// with the witness's shortfall as the only allowance.
type bpfWitness struct {
	m     *ebpf.Map
	links []link.Link
	progs []*ebpf.Program
}

// Witness counter slots.
const (
	witNfDrops   = 0 // kfree_skb NETFILTER_DROP of an skb whose device is in one of the namespaces
	witRtx       = 1 // tcp_retransmit_skb calls the kernel counted (err not -EBUSY, -EAGAIN, -ENOMEM) of a socket in one of the namespaces
	witRtxSegs   = 2 // their tcp_skb_pcount sum (TCP_SKB_CB(skb)->tcp_gso_segs, 0 read as 1)
	witReadFails = 3 // bpf_probe_read_kernel failures (the event is then not counted)
	witSlots     = 4
)

// memberOffset is the byte offset of the member called name in the struct
// or union typ, looking into anonymous members.
func memberOffset(typ btf.Type, name string) (uint32, btf.Type, bool) {
	var ms []btf.Member
	switch s := btf.UnderlyingType(typ).(type) {
	case *btf.Struct:
		ms = s.Members
	case *btf.Union:
		ms = s.Members
	default:
		return 0, nil, false
	}
	for _, m := range ms {
		if m.Name == name {
			return m.Offset.Bytes(), m.Type, true
		}
		if m.Name == "" {
			if off, t, ok := memberOffset(m.Type, name); ok {
				return m.Offset.Bytes() + off, t, true
			}
		}
	}
	return 0, nil, false
}

// offsetOf follows path (struct name, then member names through nested
// structs: not through pointers) in the kernel's BTF.
func offsetOf(t *testing.T, spec *btf.Spec, strct string, path ...string) int32 {
	t.Helper()
	var s *btf.Struct
	if err := spec.TypeByName(strct, &s); err != nil {
		t.Fatalf("BTF: struct %s: %v", strct, err)
	}
	var typ btf.Type = s
	var off uint32
	for _, name := range path {
		o, mt, ok := memberOffset(typ, name)
		if !ok {
			t.Fatalf("BTF: %s has no member %v", strct, path)
		}
		off += o
		typ = mt
	}
	return int32(off)
}

// startWitness attaches the witness programs; they count events of the
// network namespaces ns (inode numbers, up to 2).
func startWitness(t *testing.T, ns ...uint32) *bpfWitness {
	t.Helper()
	if len(ns) == 1 {
		ns = append(ns, ns[0])
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	var (
		skbDev   = offsetOf(t, spec, "sk_buff", "dev")
		devNet   = offsetOf(t, spec, "net_device", "nd_net", "net")
		netInum  = offsetOf(t, spec, "net", "ns", "inum")
		skNet    = offsetOf(t, spec, "sock", "__sk_common", "skc_net", "net")
		skbCb    = offsetOf(t, spec, "sk_buff", "cb")
		cbGsoSeg = offsetOf(t, spec, "tcp_skb_cb", "tcp_gso_segs")
	)
	w := &bpfWitness{}
	t.Cleanup(w.close)
	w.m, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: witSlots})
	if err != nil {
		t.Fatal(err)
	}
	// read: R3 = the size bytes at R3 + off (zero-extended), read with
	// bpf_probe_read_kernel; a failure is counted and ends the run.
	read := func(off int32, size asm.Size) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Imm(asm.R1, 0),
			asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
			asm.Add.Imm(asm.R3, off),
			asm.Mov.Reg(asm.R1, asm.RFP),
			asm.Add.Imm(asm.R1, -8),
			asm.Mov.Imm(asm.R2, int32(size.Sizeof())),
			asm.FnProbeReadKernel.Call(),
			asm.JNE.Imm(asm.R0, 0, "readfail"),
			asm.LoadMem(asm.R3, asm.RFP, -8, asm.DWord),
		}
	}
	// add: slot += R7
	add := func(slot int32, label string) asm.Instructions {
		return asm.Instructions{
			asm.StoreImm(asm.RFP, -16, int64(slot), asm.Word).WithSymbol(label),
			asm.LoadMapPtr(asm.R1, w.m.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -16),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, label+"_out"),
			asm.StoreXAdd(asm.R0, asm.R7, asm.DWord),
			asm.Mov.Imm(asm.R0, 0).WithSymbol(label + "_out"),
			asm.Return(),
		}
	}
	// R3 = struct net * -> namespace inode, the run ends unless one of ns
	inNS := func() asm.Instructions {
		is := read(netInum, asm.Word)
		return append(is,
			asm.JEq.Imm32(asm.R3, int32(ns[0]), "inns"),
			asm.JEq.Imm32(asm.R3, int32(ns[1]), "inns"),
			asm.Return(),
		)
	}
	// readfail: count the failed read, end the run
	tail := func(is asm.Instructions) asm.Instructions {
		is = append(is, asm.Mov.Imm(asm.R7, 1).WithSymbol("readfail"))
		return append(is, add(witReadFails, "rf")...)
	}

	// kfree_skb(skb, location, reason, ...)
	drop := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.Mov.Imm(asm.R0, 0),
		asm.LoadMem(asm.R2, asm.R6, 16, asm.DWord),
		asm.JNE.Imm32(asm.R2, 12, "exit"), // SKB_DROP_REASON_NETFILTER_DROP
		asm.LoadMem(asm.R3, asm.R6, 0, asm.DWord),
	}
	drop = append(drop, read(skbDev, asm.DWord)...)
	drop = append(drop, asm.JEq.Imm(asm.R3, 0, "exit"))
	drop = append(drop, read(devNet, asm.DWord)...)
	drop = append(drop, asm.JEq.Imm(asm.R3, 0, "exit"))
	drop = append(drop, inNS()...)
	drop = append(drop, asm.Mov.Imm(asm.R7, 1).WithSymbol("inns"))
	drop = append(drop, add(witNfDrops, "count")...)
	drop = append(drop, asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"), asm.Return())
	drop = tail(drop)

	// tcp_retransmit_skb(sk, skb, err)
	rtx := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.Mov.Imm(asm.R0, 0),
		asm.LoadMem(asm.R2, asm.R6, 16, asm.DWord),
		asm.JEq.Imm32(asm.R2, -16, "exit"), // -EBUSY: not sent, not counted
		asm.JEq.Imm32(asm.R2, -11, "exit"), // -EAGAIN
		asm.JEq.Imm32(asm.R2, -12, "exit"), // -ENOMEM
		asm.LoadMem(asm.R3, asm.R6, 0, asm.DWord),
	}
	rtx = append(rtx, read(skNet, asm.DWord)...)
	rtx = append(rtx, asm.JEq.Imm(asm.R3, 0, "exit"))
	rtx = append(rtx, inNS()...)
	rtx = append(rtx, asm.LoadMem(asm.R3, asm.R6, 8, asm.DWord).WithSymbol("inns"))
	rtx = append(rtx, read(skbCb+cbGsoSeg, asm.Half)...)
	rtx = append(rtx,
		asm.Mov.Reg(asm.R8, asm.R3),
		asm.JNE.Imm(asm.R8, 0, "segs"),
		asm.Mov.Imm(asm.R8, 1),
		asm.Mov.Imm(asm.R7, 1).WithSymbol("segs"),
	)
	ev := add(witRtx, "count")
	rtx = append(rtx, ev[:len(ev)-2]...) // no return: the segments next
	rtx = append(rtx, asm.Mov.Reg(asm.R7, asm.R8).WithSymbol("count_out"))
	rtx = append(rtx, add(witRtxSegs, "segcount")...)
	rtx = append(rtx, asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"), asm.Return())
	rtx = tail(rtx)

	for _, p := range []struct {
		tp    string
		insns asm.Instructions
	}{{"kfree_skb", drop}, {"tcp_retransmit_skb", rtx}} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "nw_witness", Type: ebpf.RawTracepoint, License: "GPL", Instructions: p.insns})
		if err != nil {
			t.Fatalf("witness for %s: %v", p.tp, err)
		}
		w.progs = append(w.progs, prog)
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: p.tp, Program: prog})
		if err != nil {
			t.Fatalf("witness on %s: %v", p.tp, err)
		}
		w.links = append(w.links, l)
	}
	return w
}

// counts returns the witness's counters: NETFILTER_DROP drops,
// retransmissions, retransmitted segments, and the runs it could not count
// (failed reads; must be 0) plus the runs the kernel skipped of it
// (recursion_misses).
func (w *bpfWitness) counts(t *testing.T) (nfDrops, rtx, rtxSegs, unsure uint64) {
	t.Helper()
	var v [witSlots]uint64
	for i := range v {
		if err := w.m.Lookup(uint32(i), &v[i]); err != nil {
			t.Fatal(err)
		}
	}
	unsure = v[witReadFails]
	for _, p := range w.progs {
		if st, err := p.Stats(); err == nil {
			unsure += st.RecursionMisses
		}
	}
	return v[witNfDrops], v[witRtx], v[witRtxSegs], unsure
}

func (w *bpfWitness) close() {
	for _, l := range w.links {
		l.Close()
	}
	for _, p := range w.progs {
		p.Close()
	}
	if w.m != nil {
		w.m.Close()
	}
	w.links, w.progs, w.m = nil, nil, nil
}
