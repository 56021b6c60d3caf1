package udp

import (
	"net/netip"
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

func record(r *udpNwUdpEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(r)), RecordSize)...)
}

func comm(c *[16]int8, s string) {
	for i, b := range s {
		c[i] = int8(b)
	}
}

func TestDecodeDatagram(t *testing.T) {
	var r udpNwUdpEvent
	r.Hdr.Type, r.Hdr.Netns, r.Hdr.Ts, r.Hdr.Sk = uint8(event.UDP), 4026531840, 5000, 0xffff888172830a80
	r.Rx, r.Len, r.Dgrams, r.Family, r.Lport, r.Rport = 1, 303, 1, unix.AF_INET, 47999, 50732
	r.Laddr = [16]uint8{127, 0, 0, 1}
	r.Raddr = [16]uint8{127, 0, 0, 2}
	r.T = [4]uint64{1000, 1500, 2200, 4000}
	r.Owner.Pid, r.Owner.Src = 21351, uint8(event.OwnerIO)
	comm(&r.Owner.Comm, "python3")
	ev := event.Event{Ext: new(event.Ext)}
	if !Decode(record(&r), &ev) {
		t.Fatal("not decoded")
	}
	u := ev.Ext.UDP
	if ev.Type != event.UDP || ev.TS != 5000 || ev.Conn.Sock != r.Hdr.Sk || ev.Conn.Netns != r.Hdr.Netns ||
		u.Src != netip.MustParseAddrPort("127.0.0.1:47999") || u.Dst != netip.MustParseAddrPort("127.0.0.2:50732") ||
		ev.Conn.Src != u.Src || ev.Conn.Dst != u.Dst || !u.Rx || u.Len != 303 || u.Dgrams != 1 ||
		u.MacNs != 500 || u.IPNs != 700 || u.UDPNs != 1800 || u.Missing != 0 ||
		ev.Conn.Pid != 21351 || string(ev.Conn.Comm.Bytes()) != "python3" {
		t.Errorf("received: %+v %+v", ev.Conn, u)
	}

	// sent: t[0] (UDP entry) never observed; stamps out of order are missing, never wrapped
	r.Rx, r.T = 0, [4]uint64{0, 1000, 900, 1300}
	r.Family, r.Laddr, r.Raddr = unix.AF_INET6, [16]uint8{15: 1}, [16]uint8{15: 2}
	if !Decode(record(&r), &ev) {
		t.Fatal("not decoded")
	}
	u = ev.Ext.UDP
	if u.Rx || u.Missing != event.MissingTCP|event.MissingIP || u.MacNs != 400 ||
		u.Src != netip.MustParseAddrPort("[::1]:47999") || u.Dst != netip.MustParseAddrPort("[::2]:50732") {
		t.Errorf("sent: %+v", u)
	}

	raw := record(&r)
	if Decode(raw[:RecordSize-1], &ev) {
		t.Error("a short record decoded")
	}
	raw[0] = byte(event.Packet)
	if Decode(raw, &ev) {
		t.Error("a record of another type decoded")
	}
}

func TestDiff(t *testing.T) {
	k := udpNwUdpKey{Cookie: 7, Rport: 53, Family: unix.AF_INET, Raddr: [16]uint8{10, 0, 0, 2}}
	f := udpNwUdpFlow{Sk: 0xffff1, FirstNs: 10, LastNs: 90, RxDgrams: 5, RxBytes: 500, TxDgrams: 3, TxBytes: 120,
		Netns: 99, Lport: 40000, Laddr: [16]uint8{10, 0, 0, 1}}
	f.Owner.Pid = 42
	comm(&f.Owner.Comm, "dig")
	ev := event.Event{Ext: new(event.Ext)}
	if !Diff(&k, &f, &udpNwUdpFlow{}, 100, event.UDPInterval, true, &ev) {
		t.Fatal("a new flow made no record")
	}
	u := ev.Ext.UDP
	if ev.Type != event.UDPFlow || ev.TS != 100 || ev.Conn.Sock != 0xffff1 || ev.Conn.Netns != 99 || ev.Conn.Pid != 42 ||
		u.Src != netip.MustParseAddrPort("10.0.0.1:40000") || u.Dst != netip.MustParseAddrPort("10.0.0.2:53") ||
		u.RxDgrams != 5 || u.RxBytes != 500 || u.TxDgrams != 3 || u.TxBytes != 120 || u.RxDgramsTotal != 5 || u.TxBytesTotal != 120 ||
		u.FirstNs != 10 || u.LastNs != 90 || u.Why != event.UDPInterval {
		t.Errorf("new flow: %+v %+v", ev.Conn, u)
	}
	prev := f
	if Diff(&k, &f, &prev, 200, event.UDPInterval, true, &ev) {
		t.Error("an unchanged flow made a periodic record")
	}
	if !Diff(&k, &f, &prev, 200, event.UDPExit, true, &ev) || ev.Ext.UDP.RxDgrams != 0 || ev.Ext.UDP.RxDgramsTotal != 5 || ev.Ext.UDP.Why != event.UDPExit {
		t.Errorf("exit record of an unchanged flow: %+v", ev.Ext.UDP)
	}
	f.TxDgrams, f.TxBytes = 4, 200
	if !Diff(&k, &f, &prev, 300, event.UDPInterval, true, &ev) || ev.Ext.UDP.TxDgrams != 1 || ev.Ext.UDP.TxBytes != 80 || ev.Ext.UDP.RxDgrams != 0 {
		t.Errorf("delta: %+v", ev.Ext.UDP)
	}
}

// TestEveryCandidateLoads: every program of every candidate of the udp
// boundaries passes this kernel's verifier, the fallbacks included (the
// cgroup_skb variants without bpf_cast_to_kern_ctx, the raw_tp owner
// twin), with and without -t.
func TestEveryCandidateLoads(t *testing.T) {
	nstest.RequireRoot(t)
	all := append(append([]string{BRx, BTx, BOwner, BOwnerTx, BDrop}, timeBoundaries...), nsBoundaries...)
	for _, cfg := range []*config.Config{{Time: true}, {}} {
		cp, err := conn.Load(conn.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c := New(cfg)
		if err := c.Load(cfg, cp.SharedMaps()); err != nil {
			cp.Close()
			t.Fatalf("-t=%v: %v", cfg.Time, err)
		}
		n := 0
		for _, name := range all {
			for _, cand := range kernel.Hooks[name].Candidates {
				if !cfg.Time && (cand.Kind == kernel.Netfilter || slices.Contains(timeBoundaries, name)) {
					continue
				}
				if cand.Kind == kernel.Netfilter && netfilterAvailable() != nil {
					continue
				}
				if c.Coll.Programs[cand.Prog] == nil {
					t.Errorf("-t=%v: %s candidate %s %s: program %s not loaded", cfg.Time, name, cand.Kind, cand.Target, cand.Prog)
				}
				n++
			}
		}
		t.Logf("-t=%v: %d candidate programs loaded", cfg.Time, n)
		c.Close()
		cp.Close()
	}
}
