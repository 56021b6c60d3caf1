package icmp

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/ringtest"
)

func record(r *icmpNwIcmpEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(r)), RecordSize)...)
}

func v4(r *[16]uint8, a string) { ip := netip.MustParseAddr(a).As4(); copy(r[:], ip[:]) }

// An echo reply copied to ping: the packet's addresses become local/remote,
// the four receive stamps the three layer times, the owner the copier's.
func TestDecodeEchoReplyReceived(t *testing.T) {
	var r icmpNwIcmpEvent
	r.Hdr.Type, r.Hdr.Netns, r.Hdr.Ts, r.Hdr.Sk = uint8(event.ICMP), 4026532314, 900, 0xffff888167c9cd80
	r.T = [4]uint64{100, 150, 400, 900}
	r.Family, r.Rx, r.IcmpType, r.IcmpCode, r.End = unix.AF_INET, 1, 0, 0, event.ICMPEndCopy
	r.Id, r.Seq, r.Len = 20636, 7, 64
	v4(&r.Saddr, "198.18.250.2")
	v4(&r.Daddr, "198.18.250.1")
	r.Owner.Pid, r.Owner.Src = 20636, uint8(event.OwnerIO)
	for i, c := range "ping" {
		r.Owner.Comm[i] = int8(c)
	}
	ev := event.Event{Ext: new(event.Ext)}
	if !Decode(record(&r), &ev) {
		t.Fatal("not decoded")
	}
	i := ev.Ext.ICMP
	if ev.Type != event.ICMP || ev.TS != 900 || ev.Conn.Netns != 4026532314 || ev.Conn.Sock != r.Hdr.Sk ||
		ev.Conn.Pid != 20636 || string(ev.Conn.Comm.Bytes()) != "ping" {
		t.Errorf("event %+v", ev)
	}
	if !i.Rx || !i.IsReply() || i.IsRequest() || i.ID != 20636 || i.Seq != 7 || i.Len != 64 || i.Kernel ||
		i.Local != netip.MustParseAddr("198.18.250.1") || i.Remote != netip.MustParseAddr("198.18.250.2") {
		t.Errorf("info %+v", i)
	}
	if i.MacNs != 50 || i.IPNs != 250 || i.ICMPNs != 500 || i.Missing != 0 || i.First != 100 || i.Last != 900 {
		t.Errorf("times %+v", i)
	}
	raw := record(&r)
	if Decode(raw[:RecordSize-1], &ev) {
		t.Error("a short record decoded")
	}
	raw[0] = byte(event.Drop)
	if Decode(raw, &ev) {
		t.Error("a record of another type decoded")
	}
}

// A sent message: t0 (send entry) is never seen, so icmp_time is missing;
// stamps out of order or absent are missing, never wrapped; the kernel
// sent it when no process owns it.
func TestDecodeSentMissingStamps(t *testing.T) {
	var r icmpNwIcmpEvent
	r.Hdr.Type = uint8(event.ICMP)
	r.T = [4]uint64{0, 1000, 900, 0} // queue before IP: out of order; no driver
	r.Family, r.IcmpType = unix.AF_INET6, 129
	r.Saddr[15], r.Daddr[15] = 2, 1
	ev := event.Event{Ext: new(event.Ext)}
	if !Decode(record(&r), &ev) {
		t.Fatal("not decoded")
	}
	i := ev.Ext.ICMP
	if i.Rx || !i.Kernel || !i.IsReply() || i.Local != netip.MustParseAddr("::2") || i.Remote != netip.MustParseAddr("::1") {
		t.Errorf("info %+v", i)
	}
	if i.Missing != event.MissingMac|event.MissingIP|event.MissingTCP || i.MacNs != 0 || i.IPNs != 0 || i.ICMPNs != 0 {
		t.Errorf("missing %b times %d %d %d", i.Missing, i.MacNs, i.IPNs, i.ICMPNs)
	}
	if i.First != 1000 || i.Last != 900 {
		t.Errorf("first/last %d %d", i.First, i.Last)
	}
}

// An error type names the flow it quotes; a request the kernel answered
// is the kernel's.
func TestDecodeErrorAndKernelAnswer(t *testing.T) {
	var r icmpNwIcmpEvent
	r.Hdr.Type = uint8(event.ICMP)
	r.Family, r.Rx, r.IcmpType, r.IcmpCode = unix.AF_INET, 1, 3, 3
	r.InnerProto, r.InnerSport, r.InnerDport = event.ProtoUDP, 40001, 9
	v4(&r.InnerSaddr, "198.18.250.1")
	v4(&r.InnerDaddr, "198.18.250.2")
	ev := event.Event{Ext: new(event.Ext)}
	if !Decode(record(&r), &ev) {
		t.Fatal("not decoded")
	}
	i := ev.Ext.ICMP
	if i.InnerProto != event.ProtoUDP || i.InnerSrc != netip.MustParseAddrPort("198.18.250.1:40001") ||
		i.InnerDst != netip.MustParseAddrPort("198.18.250.2:9") || i.Kernel || i.IsEcho() {
		t.Errorf("error %+v", i)
	}
	r = icmpNwIcmpEvent{}
	r.Hdr.Type = uint8(event.ICMP)
	r.Family, r.Rx, r.IcmpType, r.End = unix.AF_INET, 1, 8, event.ICMPEndKernel
	if !Decode(record(&r), &ev) || !ev.Ext.ICMP.Kernel || !ev.Ext.ICMP.IsRequest() {
		t.Errorf("kernel answer %+v", ev.Ext.ICMP)
	}
}

// Every program of the object passes this kernel's verifier: both twins of
// each host-wide boundary and the netfilter programs.
func TestEveryCandidateLoads(t *testing.T) {
	nstest.RequireRoot(t)
	cfg := &config.Config{ICMP: true}
	c := New(cfg)
	ringtest.Load(t, conn.Options{}, cfg, c)
	for _, b := range append(append([]string(nil), hostBoundaries...), nsBoundaries...) {
		for _, cand := range kernel.Hooks[b].Candidates {
			if c.Coll.Programs[cand.Prog] == nil {
				t.Errorf("%s: candidate %s %s: program %s not loaded", b, cand.Kind, cand.Target, cand.Prog)
			}
		}
	}
}

// Finish records every message still waiting, whatever its age; Tick
// only those older than PendingMax.
func TestSweepAtTickAndExit(t *testing.T) {
	nstest.RequireRoot(t)
	cfg := &config.Config{ICMP: true}
	c := New(cfg)
	ringtest.Load(t, conn.Options{}, cfg, c)
	var v icmpNwIcmpEvent
	v.Hdr.Type, v.Rx, v.Family, v.IcmpType = uint8(event.ICMP), 1, unix.AF_INET, 8
	now := uint64(10e9)
	v.T = [4]uint64{now - 2e9, now - 2e9, now - 2e9, 0} // waited 2 s
	old := icmpNwIcmpEchoKey{Netns: 1, Family: unix.AF_INET, Type: 8, Seq: 1}
	if err := c.Coll.Maps["nw_icmp_rxpend"].Put(&old, &v); err != nil {
		t.Fatal(err)
	}
	v.T = [4]uint64{now - 1e6, now - 1e6, now - 1e6, 0} // 1 ms
	v.Seq = 2
	fresh := icmpNwIcmpEchoKey{Netns: 1, Family: unix.AF_INET, Type: 8, Seq: 2}
	if err := c.Coll.Maps["nw_icmp_rxpend"].Put(&fresh, &v); err != nil {
		t.Fatal(err)
	}
	var seqs []uint16
	emit := func(ev *event.Event) {
		if ev.Type != event.ICMP || ev.Ext.ICMP.Missing&event.MissingTCP == 0 {
			t.Errorf("swept record %+v", ev.Ext.ICMP)
		}
		seqs = append(seqs, ev.Ext.ICMP.Seq)
	}
	c.Tick(now, emit)
	if len(seqs) != 1 || seqs[0] != 0 {
		t.Fatalf("Tick recorded seqs %v, want the old one (its record has seq 0)", seqs)
	}
	c.Finish(now, emit)
	if len(seqs) != 2 || seqs[1] != 2 {
		t.Fatalf("Finish recorded seqs %v, want the fresh one too", seqs)
	}
	if got := c.Counters(); got["icmp_unfinished"] != 2 || got["icmp_pending_at_exit"] != 0 {
		t.Errorf("counters %v", got)
	}
}

// A message an application's socket sent where netfilter programs may not
// call the task helpers (pid unknown): still the application's, not the
// kernel's.
func TestDecodeSentOwnerUnknown(t *testing.T) {
	var r icmpNwIcmpEvent
	r.Hdr.Type, r.Hdr.Sk = uint8(event.ICMP), 0xffff888100caf600
	r.Family, r.IcmpType = unix.AF_INET, 8
	ev := event.Event{Ext: new(event.Ext)}
	if !Decode(record(&r), &ev) {
		t.Fatal("not decoded")
	}
	if ev.Ext.ICMP.Kernel || ev.Conn.Pid != 0 {
		t.Errorf("kernel %v pid %d", ev.Ext.ICMP.Kernel, ev.Conn.Pid)
	}
}
