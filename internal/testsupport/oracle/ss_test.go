package oracle

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func parseFile(t *testing.T, name string) []TCPInfo {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	infos, err := ParseSS(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

func mustLookup(t *testing.T, infos []TCPInfo, local, peer string) TCPInfo {
	t.Helper()
	in, ok := Lookup(infos, ap(local), ap(peer))
	if !ok {
		t.Fatalf("no socket %s -> %s in %d sockets", local, peer, len(infos))
	}
	return in
}

func check(t *testing.T, what string, got, want any) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// The testdata files are real `ss -tinmHea` output (iproute2 6.1, Linux
// 6.18, bbr) from two namespaces joined by veth (nwxa/nwxb): client side and
// server side of IPv4 and IPv6 echo connections, with 1/20 of the client's
// segments dropped at the server's ingress by nft, plus a socket bound to a
// device, IPv6 link-local, v4-mapped and loopback sockets, listeners and
// TIME-WAIT entries.
func TestParseSSCaptured(t *testing.T) {
	cli := parseFile(t, "ss-tinmHea-client.txt")
	check(t, "client sockets", len(cli), 10)

	in := mustLookup(t, cli, "198.18.200.1:49526", "198.18.200.2:5000")
	check(t, "State", in.State, "ESTAB")
	check(t, "Inode", in.Inode, 7017)
	check(t, "Cookie", in.Cookie, "3")
	check(t, "RTT", in.RTT, 85)
	check(t, "RTTVar", in.RTTVar, 84)
	check(t, "RTO", in.RTO, 204)
	check(t, "MSS", in.MSS, 1448)
	check(t, "Cwnd", in.Cwnd, 478)
	check(t, "Ssthresh", in.Ssthresh, 180)
	check(t, "BytesSent", in.BytesSent, 2000000)
	check(t, "BytesAcked", in.BytesAcked, 2000001)
	check(t, "BytesReceived", in.BytesReceived, 2000000)
	check(t, "RetransTotal", in.RetransTotal, 0)
	check(t, "SndWnd", in.SndWnd, 2954240)
	check(t, "RcvSpace", in.RcvSpace, 326288)
	check(t, "RcvSsthresh", in.RcvSsthresh, 3729517)
	check(t, "Skmem", in.Skmem, Skmem{Rcvbuf: 10471598, Sndbuf: 2502144, Drops: 15})
	check(t, "Fields[rcv_ooopack]", in.Fields["rcv_ooopack"], "23")
	check(t, "Fields[send]", in.Fields["send"], "65142964706bps")
	check(t, "Fields[sack]", in.Fields["sack"], "")
	check(t, "Fields[bbr]", in.Fields["bbr"], "(bw:20851199440bps,mrtt:0.022,pacing_gain:1,cwnd_gain:2)")

	in = mustLookup(t, cli, "198.18.200.1:49528", "198.18.200.2:5000")
	check(t, "Iface", in.Iface, "nwxa")
	check(t, "Ssthresh (not printed)", in.Ssthresh, 0)
	check(t, "BytesAcked (handshake only)", in.BytesAcked, 1)

	in = mustLookup(t, cli, "[fe80::f82a:52ff:fe1d:f08b]:37326", "[fe80::4c39:ceff:fe1e:e731]:5002")
	check(t, "link-local Iface", in.Iface, "nwxa")
	check(t, "link-local RTT", in.RTT, 37)

	in = mustLookup(t, cli, "[::ffff:127.0.0.1]:36344", "[::ffff:127.0.0.1]:5003")
	check(t, "mapped MSS", in.MSS, 32741)
	in = mustLookup(t, cli, "[::ffff:127.0.0.1]:5003", "[::ffff:127.0.0.1]:36344")
	check(t, "not yet accepted: Inode", in.Inode, 0)
	mustLookup(t, cli, "[::1]:58278", "[::1]:5003")

	in = mustLookup(t, cli, "[::]:5003", "[::]:0")
	check(t, "LISTEN State", in.State, "LISTEN")
	check(t, "LISTEN RecvQ (accept queue)", in.RecvQ, 2)
	check(t, "LISTEN SendQ (backlog)", in.SendQ, 10)
	check(t, "v6only", in.Fields["v6only"], "0")
	check(t, "LISTEN Skmem.Sndbuf", in.Skmem.Sndbuf, 16384)

	in = mustLookup(t, cli, "[fd00:4e57:c8::1]:45758", "[fd00:4e57:c8::2]:5000")
	check(t, "TIME-WAIT", in.State, "TIME-WAIT")
	check(t, "timer", in.Fields["timer"], "(timewait,46sec,0)")

	srv := parseFile(t, "ss-tinmHea-server.txt")
	check(t, "server sockets", len(srv), 7)
	in = mustLookup(t, srv, "198.18.200.2:5000", "198.18.200.1:49526")
	check(t, "Retrans", in.Retrans, 0)
	check(t, "RetransTotal", in.RetransTotal, 15)
	check(t, "BytesRetrans", in.BytesRetrans, 21720)
	check(t, "BytesSent", in.BytesSent, 2021720)
	check(t, "BytesAcked", in.BytesAcked, 2000000)
	check(t, "RTT", in.RTT, 5349)
	check(t, "RTTVar", in.RTTVar, 10589)
	check(t, "Cwnd", in.Cwnd, 8)
	check(t, "Ssthresh", in.Ssthresh, 158)
	check(t, "Fields[rwnd_limited]", in.Fields["rwnd_limited"], "4ms(8.3%)")
	in = mustLookup(t, srv, "198.18.200.2:5000", "0.0.0.0:0")
	check(t, "v4 LISTEN", in.State, "LISTEN")
	in = mustLookup(t, srv, "[fe80::4c39:ceff:fe1e:e731]:5002", "[fe80::f82a:52ff:fe1d:f08b]:37326")
	check(t, "server link-local Iface", in.Iface, "nwxb")
}

func TestParseSSAddr(t *testing.T) {
	for _, c := range []struct{ in, addr, iface string }{
		{"1.2.3.4:80", "1.2.3.4:80", ""},
		{"1.2.3.4%eth0:80", "1.2.3.4:80", "eth0"},
		{"[fd00::1]:443", "[fd00::1]:443", ""},
		{"[fe80::1]%veth-a:22", "[fe80::1]:22", "veth-a"},
		{"*:5003", "[::]:5003", ""},
		{"*:*", "[::]:0", ""},
		{"0.0.0.0:*", "0.0.0.0:0", ""},
		{"[::]:*", "[::]:0", ""},
		{"[::ffff:10.0.0.1]:1", "[::ffff:10.0.0.1]:1", ""},
	} {
		got, iface, err := ParseSSAddr(c.in)
		if err != nil || got != ap(c.addr) || iface != c.iface {
			t.Errorf("ParseSSAddr(%q) = %v %q %v, want %v %q", c.in, got, iface, err, c.addr, c.iface)
		}
	}
	for _, bad := range []string{"", "1.2.3.4", "1.2.3.4:99999", "[zz]:1", "host:http"} {
		if _, _, err := ParseSSAddr(bad); err == nil {
			t.Errorf("ParseSSAddr(%q): no error", bad)
		}
	}
	if _, err := ParseSS("\tskmem:(r0)\n"); err == nil {
		t.Error("continuation without socket: no error")
	}
	in, err := ParseSS("0 4096 1.2.3.4:80 0.0.0.0:* ino:5\n")
	if err != nil || len(in) != 1 || in[0].State != "" || in[0].SendQ != 4096 || in[0].Inode != 5 {
		t.Errorf("line without State column: %+v %v", in, err)
	}
	if _, err := ParseSS("ESTAB 0 0 1.2.3.4:1 5.6.7.8:2\n\t rtt:abc/1\n"); err == nil {
		t.Error("bad rtt: no error")
	}
}

// socketInodes returns the inodes of pid's socket fds.
func socketInodes(t *testing.T, pid int) map[uint64]bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[uint64]bool{}
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join(dir, e.Name()))
		if s, ok := strings.CutPrefix(l, "socket:["); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
			m[n] = true
		}
	}
	return m
}

// TestSSLive checks SS against connections whose byte counts and owners
// are known, over IPv4 and IPv6 in a veth pair.
func TestSSLive(t *testing.T) {
	p := nstest.NewPair(t)
	for _, host := range []netip.Addr{p.B4, p.B6} {
		t.Run(host.String(), func(t *testing.T) {
			srv, addr := peer.Serve(t, p.B, "-l", net.JoinHostPort(host.String(), "0"), "--echo")
			cli := peer.Start(t, p.A, "connect", "-r", addr, "--send", "100000", "--hold")
			f := strings.Fields(cli.Expect("CONNECTED", 10*time.Second))
			local, remote := ap(f[1]), ap(f[2])

			in, ok := Lookup(SS(t, p.A), local, remote)
			if !ok {
				t.Fatalf("client socket %s -> %s not in ss", local, remote)
			}
			check(t, "State", in.State, "ESTAB")
			check(t, "BytesReceived", in.BytesReceived, 100000)
			check(t, "BytesSent", in.BytesSent, 100000)
			// The active opener's bytes_acked counts the SYN (measured on
			// 6.18): tcp_ack() moves snd_una over it when the SYN-ACK comes.
			check(t, "BytesAcked", in.BytesAcked, 100001)
			if !socketInodes(t, cli.Pid)[in.Inode] {
				t.Errorf("client Inode %d is not one of pid %d's sockets", in.Inode, cli.Pid)
			}
			if in.RTT == 0 || in.Cwnd == 0 || in.Skmem.Sndbuf == 0 || in.SndWnd == 0 || in.RcvSpace == 0 {
				t.Errorf("implausible zeros: %+v", in)
			}

			infos := SS(t, p.B)
			in, ok = Lookup(infos, remote, local)
			if !ok {
				t.Fatalf("server socket not in ss: %+v", infos)
			}
			check(t, "server BytesReceived", in.BytesReceived, 100000)
			check(t, "server BytesAcked", in.BytesAcked, 100000)
			if !socketInodes(t, srv.Pid)[in.Inode] {
				t.Errorf("server Inode %d is not one of pid %d's sockets", in.Inode, srv.Pid)
			}
			ls := SS(t, p.B, "state", "listening")
			// One state selected: ss prints no State column.
			if len(ls) != 1 || ls[0].Local != remote || ls[0].State != "" || ls[0].SendQ == 0 {
				t.Fatalf("listening: %+v", ls)
			}
			if _, mptcp := ls[0].Fields["tcp-ulp-mptcp"]; mptcp {
				t.Errorf("nwpeer's listener is MPTCP: %+v", ls[0])
			}
			cli.CloseStdin()
			if _, err := cli.Wait(10 * time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}
