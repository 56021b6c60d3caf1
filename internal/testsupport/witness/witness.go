// Package witness is a second, minimal BPF consumer of the tracepoints
// netwatcher's per-event tests check (a raw_tracepoint program each, built
// here in instructions, sharing no code with netwatcher): it counts what
// the kernel handed to BPF programs.
//
// Why tests need it: a kernel may run no BPF program at all for an event
// and count that nowhere. On this project's test VM no BPF program
// (netwatcher's, bpftrace's, this witness) runs for events handled while
// a thread of the VM's agent (PID 1) is current, softirq work on top of it
// included: bursts of 1-15 ms on one CPU (README, "Events no BPF program
// sees"). The kernel's own counters (nstat's TcpRetransSegs, nft's counter,
// a device's packet counters, tcpdump) count those events; netwatcher and
// the witness miss the same ones, and no program's recursion_misses counts
// them. So a per-event test compares
//
//   - netwatcher with the witness exactly: everything BPF was given,
//     netwatcher must report;
//   - the witness with the kernel's count: the shortfall is what no BPF
//     program saw, the only allowance, logged as a NOTE when not zero
//     (Note).
//
// The witness counts events of the network namespaces it is given (inode
// numbers, up to 2); events of other namespaces (the host's other tests)
// are not counted.
package witness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// Kind selects the programs Start attaches (a bit set).
type Kind uint

const (
	// NfDrops: kfree_skb with reason NETFILTER_DROP of an skb whose device
	// is in one of the namespaces.
	NfDrops Kind = 1 << iota
	// Retrans: tcp_retransmit_skb calls of a socket in one of the
	// namespaces that the kernel counted, and their segments.
	Retrans
	// Devices: every skb of a device in one of the namespaces at two
	// device tracepoints netwatcher's packet boundaries use
	// (net_dev_start_xmit, netif_receive_skb): compared with the device's
	// own packet counters (LinkPackets), the packets no BPF program ran
	// for on the way out and on the way in. (Not net_dev_queue: it sees
	// an skb before a software GSO split, the device counts its pieces;
	// measured on loopback: ~15 of ~150 fewer.)
	Devices
	// Drops: kfree_skb drops of an skb of one of the namespaces (its
	// device's, else its socket's: drops.go), by reason (Counts.Drops,
	// Counts.Dropped): what netwatcher's drop hooks (-e, -k) were given.
	Drops
	// Resets: tcp_send_reset of a socket in one of the namespaces (or,
	// without a socket, of a segment received there: the reset for no
	// socket) and tcp_receive_reset of a socket there (Counts.RstSent,
	// RstRecv): what netwatcher's --rst hooks were given.
	Resets
	// States: inet_sock_set_state of a socket in one of the namespaces:
	// to ESTABLISHED (Counts.Opened), and to CLOSE from a state a
	// connection reaches once established (Counts.Closed; not LISTEN,
	// SYN_SENT, SYN_RECV): what netwatcher's connection tracker (and its
	// --metrics-addr connection counts) was given.
	States
)

// Counter slots.
const (
	slotNfDrops   = iota // kfree_skb NETFILTER_DROP
	slotRtx              // tcp_retransmit_skb calls counted
	slotRtxSegs          // their tcp_skb_pcount sum
	slotReadFails        // bpf_probe_read_kernel failures (the event is then not counted)
	slotXmit             // net_dev_start_xmit
	slotRecv             // netif_receive_skb
	slotRstSent          // tcp_send_reset
	slotRstRecv          // tcp_receive_reset
	slotOpened           // inet_sock_set_state to ESTABLISHED
	slotClosed           // inet_sock_set_state to CLOSE, once established
	slots
)

// Counts is what the witness counted since Start.
type Counts struct {
	NfDrops uint64 // NETFILTER_DROP drops
	Rtx     uint64 // retransmissions the kernel counted (err not -EBUSY, -EAGAIN, -ENOMEM, -EHOSTUNREACH, -EINVAL: as netwatcher)
	RtxSegs uint64 // their segments (TCP_SKB_CB(skb)->tcp_gso_segs, 0 read as 1: what TcpRetransSegs adds)
	Xmit    uint64 // skbs at net_dev_start_xmit (handed to the driver)
	Recv    uint64 // skbs at netif_receive_skb (received from the device)
	RstSent uint64 // tcp_send_reset
	RstRecv uint64 // tcp_receive_reset
	Opened  uint64 // TCP connections established (either side)
	Closed  uint64 // TCP connections closed that were established
	// Drops: kfree_skb drops by reason (the kernel's name less
	// SKB_DROP_REASON_, e.g. "TCP_CSUM"; only reasons counted), with
	// Drops in Start's kinds.
	Drops map[string]uint64
	// Unsure: runs the witness could not count (failed reads) plus the
	// runs the kernel reported skipping (recursion_misses). Must be 0 for
	// the counts to be exact.
	Unsure uint64
	// of Unsure: failed reads, recursion misses
	readFails, misses uint64
}

// Witness is a set of attached witness programs and their counters.
type Witness struct {
	m     *ebpf.Map
	drops *dropMap // with Drops
	links []link.Link
	progs []*ebpf.Program
}

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
func offsetOf(t testing.TB, spec *btf.Spec, strct string, path ...string) int32 {
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

// Start attaches the witness programs of kinds; they count events of the
// network namespaces ns (inode numbers, 1 or 2). They are detached at the
// test's cleanup.
func Start(t testing.TB, kinds Kind, ns ...uint32) *Witness {
	t.Helper()
	nstest.RequireRoot(t)
	switch len(ns) {
	case 1:
		ns = append(ns, ns[0])
	case 2:
	default:
		t.Fatalf("witness: %d namespaces, want 1 or 2", len(ns))
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
		skbSk    = offsetOf(t, spec, "sk_buff", "sk")
		skbCb    = offsetOf(t, spec, "sk_buff", "cb")
		cbGsoSeg = offsetOf(t, spec, "tcp_skb_cb", "tcp_gso_segs")
	)
	w := &Witness{}
	t.Cleanup(w.close)
	w.m, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: slots})
	if err != nil {
		t.Fatal(err)
	}
	// read: R3 = the size bytes at R3 + off; a failure is counted and ends
	// the run
	read := func(off int32, size asm.Size) asm.Instructions { return readInsns(off, size, "readfail") }
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
		return append(is, add(slotReadFails, "rf")...)
	}
	// skbInNS: R3 = the skb (first argument); the run ends unless its
	// device is in one of ns
	skbInNS := func() asm.Instructions {
		is := read(skbDev, asm.DWord)
		is = append(is, asm.JEq.Imm(asm.R3, 0, "exit"))
		is = append(is, read(devNet, asm.DWord)...)
		is = append(is, asm.JEq.Imm(asm.R3, 0, "exit"))
		return append(is, inNS()...)
	}

	type prog struct {
		tp    string
		insns asm.Instructions
	}
	var progs []prog

	if kinds&NfDrops != 0 {
		// kfree_skb(skb, location, reason, ...)
		drop := asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.Mov.Imm(asm.R0, 0),
			asm.LoadMem(asm.R2, asm.R6, 16, asm.DWord),
			asm.JNE.Imm32(asm.R2, 12, "exit"), // SKB_DROP_REASON_NETFILTER_DROP
			asm.LoadMem(asm.R3, asm.R6, 0, asm.DWord),
		}
		drop = append(drop, skbInNS()...)
		drop = append(drop, asm.Mov.Imm(asm.R7, 1).WithSymbol("inns"))
		drop = append(drop, add(slotNfDrops, "count")...)
		drop = append(drop, asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"), asm.Return())
		progs = append(progs, prog{"kfree_skb", tail(drop)})
	}

	if kinds&Retrans != 0 {
		// tcp_retransmit_skb(sk, skb, err): since 6.14 it also fires for
		// attempts the kernel counted nowhere (internal/retrans).
		rtx := asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.Mov.Imm(asm.R0, 0),
			asm.LoadMem(asm.R2, asm.R6, 16, asm.DWord),
			asm.JEq.Imm32(asm.R2, -16, "exit"),  // -EBUSY: not sent, not counted
			asm.JEq.Imm32(asm.R2, -11, "exit"),  // -EAGAIN
			asm.JEq.Imm32(asm.R2, -12, "exit"),  // -ENOMEM
			asm.JEq.Imm32(asm.R2, -113, "exit"), // -EHOSTUNREACH: no route
			asm.JEq.Imm32(asm.R2, -22, "exit"),  // -EINVAL: already acked
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
		ev := add(slotRtx, "count")
		rtx = append(rtx, ev[:len(ev)-2]...) // no return: the segments next
		rtx = append(rtx, asm.Mov.Reg(asm.R7, asm.R8).WithSymbol("count_out"))
		rtx = append(rtx, add(slotRtxSegs, "segcount")...)
		rtx = append(rtx, asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"), asm.Return())
		progs = append(progs, prog{"tcp_retransmit_skb", tail(rtx)})
	}

	if kinds&Devices != 0 {
		// net_dev_start_xmit(skb, dev), netif_receive_skb(skb): one
		// packet each
		for _, d := range []struct {
			tp   string
			slot int32
		}{{"net_dev_start_xmit", slotXmit}, {"netif_receive_skb", slotRecv}} {
			is := asm.Instructions{
				asm.Mov.Reg(asm.R6, asm.R1),
				asm.Mov.Imm(asm.R0, 0),
				asm.LoadMem(asm.R3, asm.R6, 0, asm.DWord),
			}
			is = append(is, skbInNS()...)
			is = append(is, asm.Mov.Imm(asm.R7, 1).WithSymbol("inns"))
			is = append(is, add(d.slot, "count")...)
			is = append(is, asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"), asm.Return())
			progs = append(progs, prog{d.tp, tail(is)})
		}
	}

	if kinds&Resets != 0 {
		// tcp_send_reset(sk, skb, reason): the socket's namespace, or
		// the received segment's device's (sk NULL)
		sent := asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.Mov.Imm(asm.R0, 0),
			asm.LoadMem(asm.R3, asm.R6, 0, asm.DWord),
			asm.JEq.Imm(asm.R3, 0, "nosk"),
		}
		sent = append(sent, read(skNet, asm.DWord)...)
		sent = append(sent, asm.JEq.Imm(asm.R3, 0, "exit"))
		sent = append(sent, asm.Ja.Label("net"))
		sent = append(sent, asm.LoadMem(asm.R3, asm.R6, 8, asm.DWord).WithSymbol("nosk"))
		sent = append(sent, asm.JEq.Imm(asm.R3, 0, "exit"))
		sent = append(sent, read(skbDev, asm.DWord)...)
		sent = append(sent, asm.JEq.Imm(asm.R3, 0, "exit"))
		sent = append(sent, read(devNet, asm.DWord)...)
		sent = append(sent, asm.JEq.Imm(asm.R3, 0, "exit"))
		in := inNS()
		in[0] = in[0].WithSymbol("net")
		sent = append(sent, in...)
		sent = append(sent, asm.Mov.Imm(asm.R7, 1).WithSymbol("inns"))
		sent = append(sent, add(slotRstSent, "count")...)
		sent = append(sent, asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"), asm.Return())
		progs = append(progs, prog{"tcp_send_reset", tail(sent)})
		// tcp_receive_reset(sk)
		recv := asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.Mov.Imm(asm.R0, 0),
			asm.LoadMem(asm.R3, asm.R6, 0, asm.DWord),
			asm.JEq.Imm(asm.R3, 0, "exit"),
		}
		recv = append(recv, read(skNet, asm.DWord)...)
		recv = append(recv, asm.JEq.Imm(asm.R3, 0, "exit"))
		recv = append(recv, inNS()...)
		recv = append(recv, asm.Mov.Imm(asm.R7, 1).WithSymbol("inns"))
		recv = append(recv, add(slotRstRecv, "count")...)
		recv = append(recv, asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"), asm.Return())
		progs = append(progs, prog{"tcp_receive_reset", tail(recv)})
	}

	if kinds&States != 0 {
		// inet_sock_set_state(sk, old, new)
		st := asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.Mov.Imm(asm.R0, 0),
			asm.LoadMem(asm.R8, asm.R6, 8, asm.DWord),  // old
			asm.LoadMem(asm.R9, asm.R6, 16, asm.DWord), // new
			asm.JEq.Imm32(asm.R9, 1, "state"),          // TCP_ESTABLISHED
			asm.JNE.Imm32(asm.R9, 7, "exit"),           // TCP_CLOSE
			asm.JEq.Imm32(asm.R8, 10, "exit"),          // from TCP_LISTEN
			asm.JEq.Imm32(asm.R8, 2, "exit"),           // from TCP_SYN_SENT
			asm.JEq.Imm32(asm.R8, 3, "exit"),           // from TCP_SYN_RECV
			asm.JEq.Imm32(asm.R8, 7, "exit"),           // from TCP_CLOSE
			asm.LoadMem(asm.R3, asm.R6, 0, asm.DWord).WithSymbol("state"),
			asm.JEq.Imm(asm.R3, 0, "exit"),
		}
		st = append(st, read(skNet, asm.DWord)...)
		st = append(st, asm.JEq.Imm(asm.R3, 0, "exit"))
		st = append(st, inNS()...)
		st = append(st, asm.Mov.Imm(asm.R7, 1).WithSymbol("inns"))
		st = append(st, asm.JEq.Imm32(asm.R9, 1, "open"))
		st = append(st, add(slotClosed, "close")...)
		opened := add(slotOpened, "open")
		st = append(st, opened...)
		st = append(st, asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"), asm.Return())
		progs = append(progs, prog{"inet_sock_set_state", tail(st)})
	}

	if kinds&Drops != 0 {
		w.drops = newDropMap(t, spec)
		progs = append(progs, prog{"kfree_skb", tail(w.drops.program(offsets{skbDev, devNet, netInum, skbSk, skNet}, [2]uint32{ns[0], ns[1]}))})
	}

	for _, p := range progs {
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

// Counts returns the witness's counters.
func (w *Witness) Counts(t testing.TB) Counts {
	t.Helper()
	var v [slots]uint64
	for i := range v {
		if err := w.m.Lookup(uint32(i), &v[i]); err != nil {
			t.Fatal(err)
		}
	}
	c := Counts{NfDrops: v[slotNfDrops], Rtx: v[slotRtx], RtxSegs: v[slotRtxSegs],
		Xmit: v[slotXmit], Recv: v[slotRecv], RstSent: v[slotRstSent], RstRecv: v[slotRstRecv], Opened: v[slotOpened], Closed: v[slotClosed], Unsure: v[slotReadFails], readFails: v[slotReadFails]}
	if w.drops != nil {
		c.Drops = w.drops.counts(t)
	}
	for _, p := range w.progs {
		if st, err := p.Stats(); err == nil {
			c.Unsure += st.RecursionMisses
			c.misses += st.RecursionMisses
		}
	}
	return c
}

// Usable fails the test unless the witness counted every run the kernel
// gave it (Unsure 0).
func (c Counts) Usable(t testing.TB) {
	t.Helper()
	if c.Unsure != 0 {
		t.Fatalf("BPF witness not usable: %d runs uncounted (%d failed reads, %d recursion misses)", c.Unsure, c.readFails, c.misses)
	}
}

func (w *Witness) close() {
	for _, l := range w.links {
		l.Close()
	}
	for _, p := range w.progs {
		p.Close()
	}
	if w.m != nil {
		w.m.Close()
	}
	if w.drops != nil {
		w.drops.m.Close()
		w.drops = nil
	}
	w.links, w.progs, w.m = nil, nil, nil
}

// Shortfall is kernel - witness: the events the kernel counted that no BPF
// program was given. A witness count above the kernel's fails the test
// (the witness would count something else than the oracle).
func Shortfall(t testing.TB, what string, kernel, witness uint64) uint64 {
	t.Helper()
	if witness > kernel {
		t.Fatalf("BPF witness counted %d %s, the kernel %d: the witness does not count what the oracle counts", witness, what, kernel)
	}
	return kernel - witness
}

// Note logs, when n is not 0, that n events of what the kernel counted
// reached no BPF program (README, "Events no BPF program sees").
func Note(t testing.TB, n uint64, what string) {
	t.Helper()
	if n != 0 {
		t.Logf("NOTE: %d %s reached no BPF program (the kernel counted them, the BPF witness did not see them: README, \"Events no BPF program sees\")", n, what)
	}
}

// NSPackets sums the packet counters of every device of ns
// (/proc/net/dev read from inside the namespace): the packets its devices
// sent and received.
func NSPackets(t testing.TB, ns *nstest.NS) (tx, rx uint64) {
	t.Helper()
	return linkPackets(t, ns, "")
}

// LinkPackets reads the packet counters of device dev in ns: the packets
// it sent and received.
func LinkPackets(t testing.TB, ns *nstest.NS, dev string) (tx, rx uint64) {
	t.Helper()
	return linkPackets(t, ns, dev)
}

// linkPackets: dev's counters, or the sum over all devices ("").
func linkPackets(t testing.TB, ns *nstest.NS, dev string) (tx, rx uint64) {
	t.Helper()
	err := ns.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/dev")
		if err != nil {
			return err
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			k, rest, ok := strings.Cut(line, ":")
			if !ok || (dev != "" && strings.TrimSpace(k) != dev) {
				continue
			}
			// receive: bytes packets errs drop fifo frame compressed
			// multicast; transmit: bytes packets ...
			f := strings.Fields(rest)
			if len(f) < 10 {
				continue // the header lines
			}
			r, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return err
			}
			x, err := strconv.ParseUint(f[9], 10, 64)
			if err != nil {
				return err
			}
			tx, rx, found = tx+x, rx+r, true
		}
		if !found {
			return fmt.Errorf("no device %q", dev)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("packet counters of %q in %s: %v", dev, filepath.Base(ns.Path()), err)
	}
	return tx, rx
}

// Links compares the witness's packet counts at the device tracepoints
// with the devices' own counters over every device of 1 or 2 namespaces:
// the packets no BPF program ran for on their way out or in, each of which
// may cost a per-packet record or a layer stamp (the receive path and a
// send from softirq run every boundary of a packet in the same context
// within microseconds: a span without BPF covers them all).
type Links struct {
	w  *Witness
	ns []*nstest.NS
	c0 Counts
	x0 [2]uint64 // devices: tx, rx
}

// StartLinks attaches the witness's device programs for the devices of ns
// and takes both counts.
func StartLinks(t testing.TB, ns ...*nstest.NS) *Links {
	t.Helper()
	l := &Links{ns: ns}
	var inos []uint32
	for _, n := range ns {
		inos = append(inos, uint32(n.Inode(t)))
	}
	l.w = Start(t, Devices, inos...)
	l.c0, l.x0 = l.snapshot(t)
	return l
}

// snapshot reads the witness between two equal readings of the devices'
// counters (a few tries), so that no packet was on its way between the
// two counts (other traffic of the namespaces: neighbour discovery, timers).
func (l *Links) snapshot(t testing.TB) (Counts, [2]uint64) {
	t.Helper()
	dev := func() (x [2]uint64) {
		for _, n := range l.ns {
			tx, rx := NSPackets(t, n)
			x[0] += tx
			x[1] += rx
		}
		return x
	}
	var c Counts
	var x [2]uint64
	for range 20 {
		before := dev()
		c = l.w.Counts(t)
		if x = dev(); x == before {
			break
		}
	}
	return c, x
}

// Missed returns the packets the devices counted since StartLinks that no
// BPF program ran for (sent + received; 0 but for the kernel's spans
// without BPF), logs the counts, and notes a shortfall. Call it after the
// traffic the test checks.
func (l *Links) Missed(t testing.TB) uint64 {
	t.Helper()
	c, x := l.snapshot(t)
	c.Usable(t)
	xmit, recv := c.Xmit-l.c0.Xmit, c.Recv-l.c0.Recv
	tx, rx := x[0]-l.x0[0], x[1]-l.x0[1]
	t.Logf("BPF witness: %d packets transmitted, %d received (the devices counted %d, %d)", xmit, recv, tx, rx)
	if xmit > tx || recv > rx {
		// a packet between tracepoint and counter at a snapshot
		t.Logf("NOTE: the BPF witness counted more packets than the devices: taken as none missed")
		return 0
	}
	n := tx - xmit + rx - recv
	Note(t, n, "packets")
	return n
}

// readInsns: R3 = the size bytes at R3 + off (zero-extended), read with
// bpf_probe_read_kernel through the stack slot at RFP-8; a failed read
// jumps to fail.
func readInsns(off int32, size asm.Size, fail string) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
		asm.Add.Imm(asm.R3, off),
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, -8),
		asm.Mov.Imm(asm.R2, int32(size.Sizeof())),
		asm.FnProbeReadKernel.Call(),
		asm.JNE.Imm(asm.R0, 0, fail),
		asm.LoadMem(asm.R3, asm.RFP, -8, asm.DWord),
	}
}
