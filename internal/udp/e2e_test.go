package udp_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	nwpeer "github.com/netwatcher/netwatcher/internal/testsupport/peer"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// The test binary is also the UDP peer (a process of its own, so each side
// has its own pid): NW_UDP_PEER=echo|client, see peerMain.
func TestMain(m *testing.M) {
	if mode := os.Getenv("NW_UDP_PEER"); mode != "" {
		if err := peerMain(mode); err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// size of the client's i-th datagram, and of the echo's reply to a
// datagram of n bytes
func size(i int) int  { return 100 + 37*i }
func reply(n int) int { return n + 7 }

// maxSize bounds the payload of the datagrams these tests send.
const maxSize = 2048

func sizes(n int) []int {
	out := []int{}
	for i := range n {
		out = append(out, size(i))
	}
	return out
}

// peerMain: echo: listen on NW_UDP_ADDR (unconnected), print its address,
// answer NW_UDP_N datagrams with reply(len) bytes each, exit. client: send
// NW_UDP_N datagrams of size(i) bytes to NW_UDP_ADDR (connected socket with
// NW_UDP_CONNECTED=1, else WriteTo on an unconnected one), wait for each
// reply, print the local address, exit.
func peerMain(mode string) error {
	addr, err := net.ResolveUDPAddr("udp", os.Getenv("NW_UDP_ADDR"))
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(os.Getenv("NW_UDP_N"))
	buf := make([]byte, 65536)
	deadline := time.Now().Add(20 * time.Second)
	switch mode {
	case "echo":
		c, err := net.ListenUDP("udp", addr)
		if err != nil {
			return err
		}
		fmt.Println(c.LocalAddr())
		c.SetDeadline(deadline)
		sink := os.Getenv("NW_UDP_SINK") == "1"
		if os.Getenv("NW_UDP_LATE") == "1" {
			// a small receive buffer, read late (when stdin says so): most
			// datagrams are dropped (UdpRcvbufErrors); print the size of
			// each one received
			c.SetReadBuffer(4096)
			if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
				return err
			}
			c.SetDeadline(time.Now().Add(300 * time.Millisecond))
			for {
				m, _, err := c.ReadFromUDP(buf)
				if err != nil {
					return nil
				}
				fmt.Println(m)
			}
		}
		for range n {
			m, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return err
			}
			if sink {
				continue
			}
			if _, err := c.WriteToUDP(buf[:reply(m)], from); err != nil {
				return err
			}
		}
		return nil
	case "client":
		var c *net.UDPConn
		connected := os.Getenv("NW_UDP_CONNECTED") == "1"
		if connected {
			c, err = net.DialUDP("udp", nil, addr)
		} else {
			local := &net.UDPAddr{IP: net.IPv4zero}
			if addr.IP.To4() == nil {
				local.IP = net.IPv6unspecified
			}
			c, err = net.ListenUDP("udp", local)
		}
		if err != nil {
			return err
		}
		c.SetDeadline(deadline)
		if g, _ := strconv.Atoi(os.Getenv("NW_UDP_GSO")); g > 0 {
			// one send of n datagrams of g bytes (UDP_SEGMENT)
			rc, err := c.SyscallConn()
			if err != nil {
				return err
			}
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, g) }); err != nil {
				return err
			}
			if serr != nil {
				return serr
			}
			if _, err := c.Write(buf[:n*g]); err != nil {
				return err
			}
			fmt.Println(c.LocalAddr())
			return nil
		}
		for i := range n {
			if connected {
				_, err = c.Write(buf[:size(i)])
			} else {
				_, err = c.WriteToUDP(buf[:size(i)], addr)
			}
			if err != nil {
				return err
			}
			if os.Getenv("NW_UDP_SINK") == "1" {
				time.Sleep(time.Millisecond)
				continue
			}
			if _, _, err := c.ReadFromUDP(buf); err != nil {
				return err
			}
		}
		fmt.Println(c.LocalAddr())
		return nil
	}
	return fmt.Errorf("mode %q", mode)
}

// peer runs the test binary as a UDP peer in ns; its first output line is
// an address.
type peer struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	pid  int
	addr netip.AddrPort
}

func startPeer(t *testing.T, ns *nstest.NS, mode, addr string, n int, connected bool, env ...string) *peer {
	t.Helper()
	cmd := ns.Cmd(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "NW_UDP_PEER="+mode, "NW_UDP_ADDR="+addr, "NW_UDP_N="+strconv.Itoa(n)), env...)
	if connected {
		cmd.Env = append(cmd.Env, "NW_UDP_CONNECTED=1")
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &peer{cmd: cmd, in: in, out: bufio.NewScanner(out), pid: cmd.Process.Pid}
}

// line reads the peer's address line.
func (p *peer) line(t *testing.T) netip.AddrPort {
	t.Helper()
	if !p.out.Scan() {
		t.Fatalf("peer %d printed no address", p.pid)
	}
	ap, err := netip.ParseAddrPort(strings.TrimSpace(p.out.Text()))
	if err != nil {
		t.Fatal(err)
	}
	p.addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return p.addr
}

func (p *peer) wait(t *testing.T) {
	t.Helper()
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("peer %d: %v", p.pid, err)
	}
}

// session: an echo server in B on port, a client in A sending n datagrams;
// returns both peers (addresses known).
func session(t *testing.T, pr *nstest.Pair, server netip.Addr, n int, connected bool) (cli, srv *peer) {
	t.Helper()
	srv = startPeer(t, pr.B, "echo", netip.AddrPortFrom(server, 0).String(), n, false)
	saddr := srv.line(t)
	if server.Is4() {
		saddr = netip.AddrPortFrom(server, saddr.Port())
	}
	cli = startPeer(t, pr.A, "client", saddr.String(), n, connected)
	cli.line(t)
	cli.wait(t)
	srv.wait(t)
	srv.addr = netip.AddrPortFrom(server, srv.addr.Port())
	local := pr.A4 // an unconnected client prints its wildcard address
	if server.Is6() {
		local = pr.A6
	}
	cli.addr = netip.AddrPortFrom(local, cli.addr.Port())
	return cli, srv
}

type flowTotals struct {
	rx, rxb, tx, txb     float64 // from the exit record
	drops                float64
	drx, drxb, dtx, dtxb float64 // sums of the deltas of every record
	pid                  float64
	records              int
}

// flows sums udp_flow records by (netns, src, dst).
func flows(evs []nwtest.Ev) map[string]*flowTotals {
	out := map[string]*flowTotals{}
	for _, e := range evs {
		if e.Str("type") != "udp_flow" {
			continue
		}
		k := fmt.Sprintf("%v %s %s", e.Num("netns"), e.Str("src"), e.Str("dst"))
		f := out[k]
		if f == nil {
			f = &flowTotals{}
			out[k] = f
		}
		f.records++
		f.drx += e.Num("rx_dgrams")
		f.drxb += e.Num("rx_bytes")
		f.dtx += e.Num("tx_dgrams")
		f.dtxb += e.Num("tx_bytes")
		if e.Str("event") == "exit" {
			f.rx, f.rxb, f.tx, f.txb = e.Num("rx_dgrams_total"), e.Num("rx_bytes_total"), e.Num("tx_dgrams_total"), e.Num("tx_bytes_total")
			f.drops = e.Num("rx_drops_total")
			f.pid = e.Num("pid")
		}
	}
	return out
}

func key(netns uint64, src, dst netip.AddrPort) string {
	return fmt.Sprintf("%v %s %s", float64(netns), src, dst)
}

func sum(v []int) (s float64) {
	for _, x := range v {
		s += float64(x)
	}
	return s
}

// TestUDPFlowsAgainstNstat: clients in namespace A exchange N datagrams of
// known sizes with echo servers in namespace B over a veth, IPv4 and IPv6,
// connected and unconnected client sockets, with -u -t. Each flow's
// counts and payload bytes are exact (both ends), its deltas add up to its
// totals, its owner is the process on that side; per namespace and family
// the flows' datagrams equal the kernel's UdpInDatagrams/UdpOutDatagrams
// (Udp6... for IPv6) deltas; every datagram has a -t record with its layer
// times (receive: all three; send: ip and mac, udp not observed).
func TestUDPFlowsAgainstNstat(t *testing.T) {
	nstest.RequireRoot(t)
	pr := nstest.NewPair(t)
	nsA, nsB := pr.A.Inode(t), pr.B.Inode(t)
	r := nwtest.Start(t, "-u", "-t", "--interval", "200ms")
	wit := witness.StartLinks(t, pr.A, pr.B)
	beforeA, beforeB := oracle.Nstat(t, pr.A), oracle.Nstat(t, pr.B)

	const n = 12
	type run struct {
		cli, srv *peer
	}
	var runs []run
	for _, server := range []netip.Addr{pr.B4, pr.B6} {
		for _, connected := range []bool{true, false} {
			cli, srv := session(t, pr, server, n, connected)
			runs = append(runs, run{cli, srv})
		}
	}
	afterA, afterB := oracle.Nstat(t, pr.A), oracle.Nstat(t, pr.B)
	// packets of the pair no BPF program ran for (README, "Events no BPF
	// program sees"): each may be a datagram missing from a flow's counts
	// and records; 0 in most runs
	nobpf := wit.Missed(t)
	short := func(got, want float64) bool { return got > want || got < want-float64(nobpf) }
	shortB := func(got, want float64) bool { return got > want || got < want-float64(nobpf*maxSize) }
	// the last periodic read sees everything, then the exit records
	last := runs[len(runs)-1]
	r.WaitFor(10*time.Second, "udp_flow of the last server", func(e nwtest.Ev) bool {
		return e.Str("type") == "udp_flow" && e.Str("src") == last.srv.addr.String() && !short(e.Num("rx_dgrams_total"), n)
	})
	r.Stop()
	evs := r.Events()
	fl := flows(evs)

	sent := sizes(n)
	var replies []int
	for _, s := range sent {
		replies = append(replies, reply(s))
	}
	for _, ru := range runs {
		c := fl[key(nsA, ru.cli.addr, ru.srv.addr)]
		s := fl[key(nsB, ru.srv.addr, ru.cli.addr)]
		if c == nil || s == nil {
			t.Fatalf("flows %s <-> %s: client %v server %v", ru.cli.addr, ru.srv.addr, c, s)
		}
		if short(c.tx, n) || shortB(c.txb, sum(sent)) || short(c.rx, n) || shortB(c.rxb, sum(replies)) {
			t.Errorf("client %s: tx %v/%v rx %v/%v, want %d/%v %d/%v", ru.cli.addr, c.tx, c.txb, c.rx, c.rxb, n, sum(sent), n, sum(replies))
		}
		if short(s.rx, n) || shortB(s.rxb, sum(sent)) || short(s.tx, n) || shortB(s.txb, sum(replies)) {
			t.Errorf("server %s: rx %v/%v tx %v/%v, want %d/%v %d/%v", ru.srv.addr, s.rx, s.rxb, s.tx, s.txb, n, sum(sent), n, sum(replies))
		}
		for _, f := range []*flowTotals{c, s} {
			if f.drx != f.rx || f.drxb != f.rxb || f.dtx != f.tx || f.dtxb != f.txb {
				t.Errorf("deltas %v/%v %v/%v do not add up to the totals %v/%v %v/%v", f.drx, f.drxb, f.dtx, f.dtxb, f.rx, f.rxb, f.tx, f.txb)
			}
		}
		if c.pid != float64(ru.cli.pid) || s.pid != float64(ru.srv.pid) {
			t.Errorf("owners: client flow pid %v (want %d), server flow pid %v (want %d)", c.pid, ru.cli.pid, s.pid, ru.srv.pid)
		}
		t.Logf("%s -> %s: client tx %v/%vB rx %v/%vB pid %v; server pid %v, %d+%d records", ru.cli.addr, ru.srv.addr, c.tx, c.txb, c.rx, c.rxb, c.pid, s.pid, c.records, s.records)

		// -t: one record per datagram, with the owner and sane times
		for _, side := range []struct {
			p        *peer
			local    netip.AddrPort
			txSizes  []int
			rxSizes  []int
			netnsIno uint64
		}{{ru.cli, ru.cli.addr, sent, replies, nsA}, {ru.srv, ru.srv.addr, replies, sent, nsB}} {
			var rx, tx []int
			var stampless uint64
			for _, e := range evs {
				if e.Str("type") != "udp" || e.Str("src") != side.local.String() || e.Num("netns") != float64(side.netnsIno) {
					continue
				}
				if e.Num("pid") != float64(side.p.pid) {
					t.Errorf("datagram record of %s: pid %v, want %d", side.local, e.Num("pid"), side.p.pid)
				}
				mac, ip, u := e.Num("mac_time_ns"), e.Num("ip_time_ns"), e.Num("udp_time_ns")
				if e.Num("rx") == 1 {
					rx = append(rx, int(e.Num("len")))
					if mac < 0 || ip < 0 || u < 0 || mac+ip+u > 1e9 {
						if stampless++; stampless > nobpf || mac+ip+u > 1e9 {
							t.Errorf("received datagram %v: layer times mac %v ip %v udp %v", e, mac, ip, u)
						}
					}
				} else {
					tx = append(tx, int(e.Num("len")))
					if mac < 0 || ip < 0 || u != -1 || mac+ip > 1e9 {
						if stampless++; stampless > nobpf || u != -1 || mac+ip > 1e9 {
							t.Errorf("sent datagram %v: layer times mac %v ip %v udp %v", e, mac, ip, u)
						}
					}
				}
			}
			slices.Sort(rx)
			slices.Sort(tx)
			if !subset(rx, side.rxSizes, nobpf) || !subset(tx, side.txSizes, nobpf) {
				t.Errorf("%s: datagram records rx %v tx %v, want rx %v tx %v (packets no BPF program ran for %d)", side.local, rx, tx, side.rxSizes, side.txSizes, nobpf)
			}
		}
	}

	// per namespace and family: the flows against the kernel's own counters
	for _, c := range []struct {
		ns             uint64
		before, after  map[string]uint64
		prefix, family string
	}{{nsA, beforeA, afterA, "Udp", "4"}, {nsB, beforeB, afterB, "Udp", "4"}, {nsA, beforeA, afterA, "Udp6", "6"}, {nsB, beforeB, afterB, "Udp6", "6"}} {
		var rx, tx float64
		for k, f := range fl {
			parts := strings.Fields(k)
			if parts[0] != fmt.Sprint(float64(c.ns)) {
				continue
			}
			is6 := strings.HasPrefix(parts[1], "[")
			if is6 != (c.family == "6") {
				continue
			}
			rx += f.rx - f.drops
			tx += f.tx
		}
		in := oracle.Delta(c.before, c.after, c.prefix+"InDatagrams")
		out := oracle.Delta(c.before, c.after, c.prefix+"OutDatagrams")
		if short(rx, float64(in)) || short(tx, float64(out)) {
			t.Errorf("netns %d IPv%s: flows rx %v tx %v, nstat %sInDatagrams %d %sOutDatagrams %d (packets no BPF program ran for %d)", c.ns, c.family, rx, tx, c.prefix, in, c.prefix, out, nobpf)
		} else if rx != float64(in) || tx != float64(out) {
			t.Logf("NOTE: netns %d IPv%s: flows rx %v tx %v, nstat %sInDatagrams %d %sOutDatagrams %d: no BPF program ran for the rest", c.ns, c.family, rx, tx, c.prefix, in, c.prefix, out)
		} else {
			t.Logf("netns %d IPv%s: flows rx %v tx %v = nstat", c.ns, c.family, rx, tx)
		}
	}
	log := r.File("udp.log")
	if !strings.Contains(log, `udp{event="exit",sock="0x`) || !strings.Contains(log, `udp{event="rx",`) {
		t.Errorf("udp.log lacks exit or datagram lines:\n%.2000s", log)
	}
}

// subset: got (sorted) is want (sorted) less at most missing of its
// elements.
func subset(got, want []int, missing uint64) bool {
	if len(got) > len(want) || uint64(len(want)-len(got)) > missing {
		return false
	}
	i := 0
	for _, w := range want {
		if i < len(got) && got[i] == w {
			i++
		}
	}
	return i == len(got)
}

// TestUDPPortFilter: with -d (remote port) only the flows whose remote
// port is that one are seen: the client's side of a session to the echo
// server on that port; not the server's side (its remote port is the
// client's), nor a session with another server.
func TestUDPPortFilter(t *testing.T) {
	nstest.RequireRoot(t)
	pr := nstest.NewPair(t)
	// the port is chosen before netwatcher starts: a server that exits
	// frees it again at once (UDP has no TIME_WAIT)
	probe := startPeer(t, pr.B, "echo", netip.AddrPortFrom(pr.B4, 0).String(), 0, false)
	port := probe.line(t).Port()
	probe.wait(t)
	r := nwtest.Start(t, "-u", "-d", strconv.Itoa(int(port)), "--interval", "200ms")
	nsA := pr.A.Inode(t)
	const n = 5
	srv := startPeer(t, pr.B, "echo", netip.AddrPortFrom(pr.B4, port).String(), n, false)
	srv.line(t)
	cli := startPeer(t, pr.A, "client", srv.addr.String(), n, true)
	cli.line(t)
	cli.wait(t)
	srv.wait(t)
	other, _ := session(t, pr, pr.B4, n, true)
	r.WaitFor(10*time.Second, "udp_flow to the filtered port", func(e nwtest.Ev) bool {
		return e.Str("type") == "udp_flow" && e.Str("dst") == srv.addr.String() && e.Num("rx_dgrams_total") == n
	})
	r.Stop()
	for _, e := range r.Events() {
		if e.Str("type") != "udp_flow" {
			continue
		}
		if e.Str("src") == srv.addr.String() || e.Str("src") == other.addr.String() {
			t.Errorf("flow left out by -d %d was recorded: %v", port, e)
		}
		if e.Num("netns") == float64(nsA) && !strings.HasSuffix(e.Str("dst"), fmt.Sprintf(":%d", port)) {
			t.Errorf("flow with another remote port: %v", e)
		}
	}
	fl := flows(r.Events())
	if c := fl[key(nsA, cli.addr, srv.addr)]; c == nil || c.tx != n || c.rx != n {
		t.Errorf("client flow to the filtered port: %+v", c)
	}
}

// TestUDPReceiveOnlyOwner: owners come from the socket calls in process
// context: a socket that only receives gets its owner from recvmsg
// (sock_recv_length), one that only sends from sendmsg
// (sock_send_length), with the tp_btf programs and with their raw_tp twins
// (NW_AVOID=tp_btf, what kernels without BTF-typed tracepoints get): the
// flow of a sink that never sends names the sink's pid, the flow of its
// client that never receives the client's. Also with the task helpers
// refused to cgroup_skb and netfilter programs (NW_AVOID=task_pid,task_comm:
// what kernels before 6.10 get): the programs still load and the owners
// still come from the socket calls.
func TestUDPReceiveOnlyOwner(t *testing.T) {
	nstest.RequireRoot(t)
	pr := nstest.NewPair(t)
	nsA, nsB := pr.A.Inode(t), pr.B.Inode(t)
	for _, avoid := range []string{"", "tp_btf", "task_pid,task_comm"} {
		t.Run("avoid="+avoid, func(t *testing.T) {
			progs := []string{"nw_udp_owner_btf", "nw_udp_owner_tx_btf"}
			if avoid != "" {
				t.Setenv("NW_AVOID", avoid)
			}
			if avoid == "tp_btf" {
				progs = []string{"nw_udp_owner_raw", "nw_udp_owner_tx_raw"}
			}
			r := nwtest.Start(t, "-u", "-v", "--interval", "200ms")
			for _, prog := range progs {
				for i := 0; !strings.Contains(r.Stderr(), "prog="+prog); i++ {
					if i == 100 {
						t.Fatalf("%s not attached:\n%s", prog, r.Stderr())
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			const n = 5
			sink := startPeer(t, pr.B, "echo", netip.AddrPortFrom(pr.B6, 0).String(), n, false, "NW_UDP_SINK=1")
			addr := sink.line(t)
			cli := startPeer(t, pr.A, "client", addr.String(), n, true, "NW_UDP_SINK=1")
			cli.line(t)
			cli.wait(t)
			sink.wait(t)
			r.WaitFor(10*time.Second, "udp_flow of the sink", func(e nwtest.Ev) bool {
				return e.Str("type") == "udp_flow" && e.Str("src") == addr.String() && e.Num("rx_dgrams_total") == n
			})
			r.Stop()
			var got, sent []nwtest.Ev
			for _, e := range r.Events() {
				if e.Str("type") != "udp_flow" || e.Str("event") != "exit" {
					continue
				}
				if e.Str("src") == addr.String() && e.Num("netns") == float64(nsB) {
					got = append(got, e)
				}
				if e.Str("src") == cli.addr.String() && e.Num("netns") == float64(nsA) {
					sent = append(sent, e)
				}
			}
			if len(got) != 1 || got[0].Num("pid") != float64(sink.pid) || got[0].Num("rx_dgrams_total") != n || got[0].Num("tx_dgrams_total") != 0 {
				t.Errorf("sink pid %d: exit records %v", sink.pid, got)
			}
			if len(sent) != 1 || sent[0].Num("pid") != float64(cli.pid) || sent[0].Num("tx_dgrams_total") != n || sent[0].Num("rx_dgrams_total") != 0 {
				t.Errorf("client pid %d: exit records %v", cli.pid, sent)
			}
		})
	}
}

// TestUDPReceiveDrops: a receiver with a small buffer that reads late, so
// most datagrams are dropped after the UDP hook (UdpRcvbufErrors). With
// -t, the datagrams it received have records with the copy time, in the
// order it got them and with their sizes (a dropped datagram's stamps
// leave the socket's FIFO: kfree_skb's rx_sk, 6.11+); the dropped ones
// have none; the flow counts what passed the UDP hook (the drops too:
// what UdpInDatagrams + UdpRcvbufErrors count). Its drops equal the BPF
// witness's SOCKET_RCVBUFF drops exactly; the kernel's counts less what
// the witness saw (no BPF program ran for them) are the only allowance.
func TestUDPReceiveDrops(t *testing.T) {
	nstest.RequireRoot(t)
	pr := nstest.NewPair(t)
	nsB := pr.B.Inode(t)
	r := nwtest.Start(t, "-u", "-t", "--interval", "200ms")
	wit := witness.Start(t, witness.Drops, uint32(nsB))
	links := witness.StartLinks(t, pr.A, pr.B)
	before := oracle.Nstat(t, pr.B)
	const n = 40
	sink := startPeer(t, pr.B, "echo", netip.AddrPortFrom(pr.B4, 0).String(), 0, false, "NW_UDP_LATE=1")
	addr := sink.line(t)
	cli := startPeer(t, pr.A, "client", addr.String(), n, true, "NW_UDP_SINK=1")
	cli.line(t)
	cli.wait(t)
	time.Sleep(100 * time.Millisecond) // the last datagrams reach the sink's socket
	io.WriteString(sink.in, "read\n")
	var got []int
	for sink.out.Scan() {
		v, err := strconv.Atoi(strings.TrimSpace(sink.out.Text()))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	sink.wait(t)
	after := oracle.Nstat(t, pr.B)
	in, drops := oracle.Delta(before, after, "UdpInDatagrams"), oracle.Delta(before, after, "UdpRcvbufErrors")
	if drops == 0 || int(in) != len(got) || in+drops != n {
		t.Fatalf("want drops: received %d (UdpInDatagrams %d), UdpRcvbufErrors %d, sent %d", len(got), in, drops, n)
	}
	// the drops BPF was given, exactly; the packets no BPF program ran
	// for (README, "Events no BPF program sees": 0 in most runs), a
	// datagram each, the only allowance
	wc := wit.Counts(t)
	wc.Usable(t)
	seen := wc.Dropped("SOCKET_RCVBUFF")
	witness.Note(t, witness.Shortfall(t, "SOCKET_RCVBUFF drops", drops, seen), "receive-buffer drops")
	nobpf := float64(links.Missed(t))
	short := func(got, want float64) bool { return got > want || got < want-nobpf }
	r.WaitFor(10*time.Second, "udp_flow of the sink", func(e nwtest.Ev) bool {
		return e.Str("type") == "udp_flow" && e.Str("src") == addr.String() && !short(e.Num("rx_dgrams_total"), n)
	})
	r.Stop()
	fl := flows(r.Events())
	f := fl[key(nsB, addr, cli.addr)]
	if f == nil || short(f.rx, n) || f.drops != float64(seen) || short(f.rx-f.drops, float64(in)) {
		t.Errorf("sink flow: %+v, want rx %d, drops %d (the BPF witness's; UdpRcvbufErrors %d), delivered %d (UdpInDatagrams) (packets no BPF program ran for: %v)", f, n, seen, drops, in, nobpf)
	}
	var copied []int
	uncopied := 0
	for _, e := range r.Events() {
		if e.Str("type") != "udp" || e.Str("src") != addr.String() || e.Num("netns") != float64(nsB) {
			continue
		}
		if e.Num("udp_time_ns") < 0 {
			uncopied++
			continue
		}
		copied = append(copied, int(e.Num("len")))
	}
	// the datagrams received, in order, less at most nobpf of them
	sub := 0
	for _, v := range got {
		if sub < len(copied) && copied[sub] == v {
			sub++
		}
	}
	if sub != len(copied) || float64(len(copied)) < float64(len(got))-nobpf || uncopied != 0 {
		t.Errorf("records with a copy time: sizes %v, received %v; %d records without (packets no BPF program ran for: %v)", copied, got, uncopied, nobpf)
	}
	t.Logf("sent %d, received %d, dropped %d (BPF witness %d): %d records, sizes as received", n, len(got), drops, seen, len(copied))
}

// TestUDPSegmentOffload: one send of 3 x 1000 bytes with UDP_SEGMENT is
// one skb through the sender's hooks and 3 datagrams on the wire: the
// flows count 3 datagrams and 3000 bytes on both sides (the receiver's
// UdpInDatagrams agrees), the -t send record says 3 datagrams. The only
// allowance: the pair's packets the BPF witness shows no BPF program ran
// for (README, "Events no BPF program sees": 0 in most runs), each of
// which may take the whole send from a flow or the send record.
func TestUDPSegmentOffload(t *testing.T) {
	nstest.RequireRoot(t)
	pr := nstest.NewPair(t)
	nsA, nsB := pr.A.Inode(t), pr.B.Inode(t)
	r := nwtest.Start(t, "-u", "-t", "--interval", "200ms")
	wit := witness.StartLinks(t, pr.A, pr.B)
	before := oracle.Nstat(t, pr.B)
	const n, g = 3, 1000
	sink := startPeer(t, pr.B, "echo", netip.AddrPortFrom(pr.B4, 0).String(), n, false, "NW_UDP_SINK=1")
	addr := sink.line(t)
	cli := startPeer(t, pr.A, "client", addr.String(), n, true, "NW_UDP_SINK=1", "NW_UDP_GSO="+strconv.Itoa(g))
	cli.line(t)
	cli.wait(t)
	sink.wait(t)
	after := oracle.Nstat(t, pr.B)
	nobpf := wit.Missed(t)
	if nobpf == 0 {
		r.WaitFor(10*time.Second, "udp_flow of the sink", func(e nwtest.Ev) bool {
			return e.Str("type") == "udp_flow" && e.Str("src") == addr.String() && e.Num("rx_dgrams_total") == n
		})
	}
	r.Stop()
	fl := flows(r.Events())
	c, s := fl[key(nsA, cli.addr, addr)], fl[key(nsB, addr, cli.addr)]
	// one send, one GSO packet: a packet no BPF program ran for takes it
	// from a flow whole, or not at all
	whole := func(what string, d, by float64) {
		if (d != n || by != n*g) && !(nobpf > 0 && d == 0 && by == 0) {
			t.Errorf("%s: %v datagrams, %v bytes, want %d datagrams, %d bytes (packets no BPF program ran for: %d)", what, d, by, n, n*g, nobpf)
		}
	}
	var ctx, ctxb, srx, srxb float64
	if c != nil {
		ctx, ctxb = c.tx, c.txb
	}
	if s != nil {
		srx, srxb = s.rx, s.rxb
	}
	whole("client tx", ctx, ctxb)
	whole("server rx", srx, srxb)
	t.Logf("client tx %v datagrams, %v bytes; server rx %v, %v", ctx, ctxb, srx, srxb)
	if in := oracle.Delta(before, after, "UdpInDatagrams"); in != n {
		t.Errorf("UdpInDatagrams %d, want %d", in, n)
	}
	var sent []nwtest.Ev
	for _, e := range r.Events() {
		if e.Str("type") == "udp" && e.Str("src") == cli.addr.String() && e.Num("rx") == 0 {
			sent = append(sent, e)
		}
	}
	if (len(sent) != 1 && !(nobpf > 0 && len(sent) == 0)) || (len(sent) == 1 && (sent[0].Num("len") != n*g || sent[0].Num("dgrams") != n)) {
		t.Errorf("send records %v, want one of %d bytes, %d datagrams (packets no BPF program ran for: %d)", sent, n*g, n, nobpf)
	}
}

// TestUDPWithSeedFlags: -u next to the seed flags (-tixre -a): a TCP
// connection and a UDP session at the same time; the TCP connection has
// its open record and timed packet records, the UDP flows are exact and
// timed, and the run ends cleanly with both. The only allowance: the
// pair's packets the BPF witness shows no BPF program ran for (README,
// "Events no BPF program sees": 0 in most runs), a datagram or a layer
// time each.
func TestUDPWithSeedFlags(t *testing.T) {
	nstest.RequireRoot(t)
	pr := nstest.NewPair(t)
	nsA := pr.A.Inode(t)
	r := nwtest.Start(t, "-u", "-tixre", "-a", "--interval", "200ms")
	wit := witness.StartLinks(t, pr.A, pr.B)
	sp, addr := nwpeer.Serve(t, pr.B, "-l", netip.AddrPortFrom(pr.B4, 0).String(), "--echo")
	cp := nwpeer.Start(t, pr.A, "connect", "-r", addr, "--send", "3000", "--hold", "--stdin-exit")
	local := strings.Fields(cp.Expect("CONNECTED", 10*time.Second))[1]
	const n = 6
	cli, srv := session(t, pr, pr.B4, n, false)
	cp.CloseStdin()
	cp.Expect("CLOSED", 10*time.Second)
	time.Sleep(100 * time.Millisecond) // the close's last segments
	nobpf := int(wit.Missed(t))
	short := func(got float64, want int) bool { return got > float64(want) || got < float64(want-nobpf) }
	r.WaitFor(10*time.Second, "udp_flow of the server", func(e nwtest.Ev) bool {
		return e.Str("type") == "udp_flow" && e.Str("src") == srv.addr.String() && !short(e.Num("rx_dgrams_total"), n)
	})
	r.WaitFor(10*time.Second, "the TCP connection's close", func(e nwtest.Ev) bool {
		return e.Str("type") == "connection" && e.Str("event") == "close" && e.Str("src") == local
	})
	r.Stop()
	_ = sp
	fl := flows(r.Events())
	if c := fl[key(nsA, cli.addr, srv.addr)]; c == nil || short(c.tx, n) || short(c.rx, n) || c.pid != float64(cli.pid) {
		t.Errorf("UDP client flow: %+v, want %d datagrams each way (packets no BPF program ran for: %d)", c, n, nobpf)
	}
	var tcpTimed, udpTimed int
	for _, e := range r.Events() {
		switch {
		case e.Str("type") == "packet" && e.Str("src") == local && e.Num("tcp_time_ns") >= 0 && e.Num("ip_time_ns") >= 0:
			tcpTimed++
		case e.Str("type") == "udp" && e.Str("src") == cli.addr.String() && e.Num("ip_time_ns") >= 0 && e.Num("mac_time_ns") >= 0:
			udpTimed++
		}
	}
	if tcpTimed == 0 || short(float64(udpTimed), 2*n) {
		t.Errorf("timed records: %d TCP packets of %s, %d UDP datagrams of %s (want %d; packets no BPF program ran for: %d)", tcpTimed, local, udpTimed, cli.addr, 2*n, nobpf)
	}
	t.Logf("timed records: %d TCP packets, %d UDP datagrams (of %d)", tcpTimed, udpTimed, 2*n)
}

// TestUDPAddrFilter: with -D (remote address) only the flows whose peer is
// in it are seen: the clients' flows to the IPv4 server, not the server's
// (its peer is the client), nor the IPv6 session's.
func TestUDPAddrFilter(t *testing.T) {
	nstest.RequireRoot(t)
	pr := nstest.NewPair(t)
	nsA := pr.A.Inode(t)
	r := nwtest.Start(t, "-u", "-D", pr.B4.String()+"/32", "--interval", "200ms")
	const n = 4
	cli4, srv4 := session(t, pr, pr.B4, n, true)
	cli6, srv6 := session(t, pr, pr.B6, n, true)
	r.WaitFor(10*time.Second, "udp_flow to the IPv4 server", func(e nwtest.Ev) bool {
		return e.Str("type") == "udp_flow" && e.Str("src") == cli4.addr.String() && e.Num("rx_dgrams_total") == n
	})
	r.Stop()
	for _, e := range r.Events() {
		if e.Str("type") != "udp_flow" {
			continue
		}
		for _, out := range []netip.AddrPort{srv4.addr, cli6.addr, srv6.addr} {
			if e.Str("src") == out.String() {
				t.Errorf("flow left out by -D was recorded: %v", e)
			}
		}
	}
	if c := flows(r.Events())[key(nsA, cli4.addr, srv4.addr)]; c == nil || c.tx != n || c.rx != n {
		t.Errorf("client flow to %s: %+v", srv4.addr, c)
	}
}

// TestUDPTimesWithoutRecvHook: where the recvmsg hook is missing (here
// NW_AVOID=tp_btf: socket storage needs tp_btf), every received datagram
// still has its record, made at UDP entry without the copy time, with the
// socket's owner as last seen in process context (none for the first).
func TestUDPTimesWithoutRecvHook(t *testing.T) {
	nstest.RequireRoot(t)
	pr := nstest.NewPair(t)
	t.Setenv("NW_AVOID", "tp_btf")
	r := nwtest.Start(t, "-u", "-t", "--interval", "200ms")
	const n = 5
	cli, srv := session(t, pr, pr.B4, n, true)
	r.WaitFor(10*time.Second, "udp_flow of the server", func(e nwtest.Ev) bool {
		return e.Str("type") == "udp_flow" && e.Str("src") == srv.addr.String() && e.Num("rx_dgrams_total") == n
	})
	r.Stop()
	var rx []int
	for _, e := range r.Events() {
		if e.Str("type") == "udp" && e.Str("src") == srv.addr.String() && e.Num("rx") == 1 {
			rx = append(rx, int(e.Num("len")))
			// the owner as last seen in process context: none yet for
			// the socket's first datagram
			if e.Num("udp_time_ns") != -1 || (e.Num("pid") != float64(srv.pid) && e.Num("len") != float64(size(0))) {
				t.Errorf("received without the recvmsg hook: %v", e)
			}
		}
	}
	slices.Sort(rx)
	if !slices.Equal(rx, sizes(n)) {
		t.Errorf("server's receive records %v, want %v (client %s)", rx, sizes(n), cli.addr)
	}
}
