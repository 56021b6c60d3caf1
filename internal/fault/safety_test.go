package fault

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseFlow(t *testing.T) {
	good := map[string]Flow{
		"198.18.200.1:1234,198.18.200.2:80": {netip.MustParseAddrPort("198.18.200.1:1234"), netip.MustParseAddrPort("198.18.200.2:80")},
		"[fd00::1]:1,[fd00::2]:2":           {netip.MustParseAddrPort("[fd00::1]:1"), netip.MustParseAddrPort("[fd00::2]:2")},
		"[::ffff:10.0.0.1]:1,10.0.0.2:2":    {netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2")},
	}
	for in, want := range good {
		f, err := ParseFlow(in)
		if err != nil || f != want {
			t.Errorf("ParseFlow(%q) = %v, %v; want %v", in, f, err, want)
		}
	}
	for _, in := range []string{"", "1.2.3.4:1", "1.2.3.4:1,1.2.3.5", "1.2.3.4:0,1.2.3.5:1",
		"1.2.3.4:1,[fd00::1]:2", "0.0.0.0:1,1.2.3.4:2", "224.0.0.1:1,1.2.3.4:2", "1.2.3.4:1,1.2.3.4:1",
		"1.2.3.4:1,1.2.3.5:70000", "x:1,y:2", "1.2.3.4:1,1.2.3.5:2,1.2.3.6:3"} {
		if _, err := ParseFlow(in); err == nil || !IsUsage(err) {
			t.Errorf("ParseFlow(%q): err %v, want a usage error", in, err)
		}
	}
}

func TestChecksum(t *testing.T) {
	f := Flow{netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:80")}
	for _, v6 := range []bool{false, true} {
		if v6 {
			f = Flow{netip.MustParseAddrPort("[fd00::1]:40000"), netip.MustParseAddrPort("[fd00::2]:80")}
		}
		seg := segment{flow: f, seq: 1, ack: 2, flags: tcpACK | tcpPSH, window: 100, payload: []byte("hello")}
		pkt, good, written := seg.build(7)
		if good != written {
			t.Fatal("checksum changed without csumXor")
		}
		p, ok := parseIPTCP(pkt, len(pkt))
		if !ok || p.src != f.Src || p.dst != f.Dst || p.seq != 1 || p.ack != 2 || p.paylen != 5 || string(p.payload) != "hello" {
			t.Fatalf("round trip: %+v %v", p, ok)
		}
		// Verifying: the sum over pseudo header + segment incl. checksum is 0xffff.
		hl := 20
		if v6 {
			hl = 40
		}
		if c := tcpChecksum(f.Src.Addr(), f.Dst.Addr(), pkt[hl:]); c != 0 {
			t.Errorf("v6=%v: checksum does not verify (residue %#x)", v6, c)
		}
		seg.csumXor = 0x5555
		pkt, _, _ = seg.build(7)
		if c := tcpChecksum(f.Src.Addr(), f.Dst.Addr(), pkt[hl:]); c == 0 {
			t.Errorf("v6=%v: corrupted checksum verifies", v6)
		}
	}
}

func TestRefusals(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	f := Flow{netip.MustParseAddrPort("198.18.200.1:1000"), netip.MustParseAddrPort("198.18.200.2:80")}
	mustRefuse := func(what string, err error, substr string) {
		t.Helper()
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), substr) {
			t.Errorf("%s: got %v, want a usage error containing %q", what, err, substr)
		}
	}
	// No namespace, a missing one, and the root namespace.
	_, err := BadCsum(ctx, InjectOptions{Flow: f, Count: 1})
	mustRefuse("no netns", err, "--netns is required")
	_, err = Drop(ctx, DropOptions{Netns: "nwf-does-not-exist", Flow: f, Every: 2})
	mustRefuse("missing netns", err, "does not exist")
	mustRefuse("bad name", CheckNetns("../x"), "bad namespace name")
	rootFile, err := rootNetnsFile()
	if err != nil {
		t.Fatal(err)
	}
	mustRefuse("root netns", checkNsFile(rootFile, "root"), "root network namespace")
	if self, err := os.Stat("/proc/thread-self/ns/net"); err == nil {
		if root, _ := os.Stat(rootFile); root != nil && os.SameFile(self, root) {
			mustRefuse("own (root) netns", checkNsFile("/proc/thread-self/ns/net", "self"), "root network namespace")
		}
	}
	mustRefuse("not a netns", checkNsFile("/proc/self/ns/uts", "uts"), "not a")
	mustRefuse("not nsfs", checkNsFile("/etc/hostname", "file"), "not a mounted network namespace")

	l := newLab(t)
	f = Flow{netip.AddrPortFrom(l.A4, 1000), netip.AddrPortFrom(l.B4, 80)}
	// Addresses that are not local where they must be.
	other := Flow{netip.AddrPortFrom(onSubnet(l.A4, 9), 1000), f.Dst}
	_, err = BadCsum(ctx, InjectOptions{Netns: l.A, Flow: other, Count: 1})
	mustRefuse("sender not local", err, "not assigned")
	_, err = Drop(ctx, DropOptions{Netns: l.A, Flow: f, Every: 2})
	mustRefuse("receiver not local (drop)", err, "not assigned")
	_, err = Blackout(ctx, BlackoutOptions{Netns: l.A, Flow: f})
	mustRefuse("receiver not local (blackout)", err, "not assigned")
	// A destination on the veth's subnet that the peer namespace does not hold.
	_, err = OutOfWindow(ctx, InjectOptions{Netns: l.A, Flow: Flow{f.Src, netip.AddrPortFrom(onSubnet(l.A4, 77), 80)}, Count: 1})
	mustRefuse("destination not in peer", err, "not assigned")
	// A destination behind a gateway.
	l.Pair.A.Run(t, "ip", "route", "add", "203.0.113.0/24", "via", l.B4.String())
	_, err = OutOfWindow(ctx, InjectOptions{Netns: l.A, Flow: Flow{f.Src, netip.MustParseAddrPort("203.0.113.5:80")}, Count: 1})
	mustRefuse("gateway", err, "gateway")
	// --peer-netns naming the wrong namespace.
	_, err = BadCsum(ctx, InjectOptions{Netns: l.A, Flow: f, Count: 1, PeerNetns: l.A})
	mustRefuse("wrong peer", err, "peer")
	// Right addresses, but no such connection.
	_, err = BadCsum(ctx, InjectOptions{Netns: l.A, Flow: f, Count: 1})
	mustRefuse("no connection", err, "no live TCP connection")

	// A live connection without traffic: times out, not a usage error.
	p := l.connect(t, false)
	_, err = BadCsum(ctx, InjectOptions{Netns: l.A, Flow: p.flow, Count: 1, Timeout: 200 * time.Millisecond})
	if err == nil || IsUsage(err) || !strings.Contains(err.Error(), "no packet of flow") {
		t.Errorf("idle flow: got %v", err)
	}
	// Usage errors in the options.
	_, err = OutOfWindow(ctx, InjectOptions{Netns: l.A, Flow: p.flow, Count: 1, Mode: "sideways"})
	mustRefuse("mode", err, "bad --mode")
	_, err = Drop(ctx, DropOptions{Netns: l.B, Flow: p.flow, Every: 0})
	mustRefuse("every", err, "--every")
	if err := p.RoundTrip(10, 1); err != nil {
		t.Fatal(err)
	}
}

func TestCleanupAndCancel(t *testing.T) {
	l := newLab(t)
	p := l.connect(t, true)
	// A drop cancelled through its context still removes its table.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Drop(ctx, DropOptions{Netns: l.B, Flow: p.flow, Every: 1, Ready: cancel})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drop did not return after cancel")
	}
	if tb := nftTables(t, l.B); tb != "" {
		t.Fatalf("tables left: %q", tb)
	}
	// Cleanup removes tables left by a killed nwfault, and only those.
	if _, err := runNft(l.B, "add table inet nwfault_999999\nadd table inet keepme\n"); err != nil {
		t.Fatal(err)
	}
	gone, err := Cleanup(l.B)
	if err != nil || len(gone) != 1 || gone[0] != "nwfault_999999" {
		t.Fatalf("Cleanup = %v, %v", gone, err)
	}
	if tb := nftTables(t, l.B); tb != "table inet keepme" {
		t.Fatalf("tables after cleanup: %q", tb)
	}
	if err := p.RoundTrip(2, 1); err != nil {
		t.Fatal(err)
	}
}
