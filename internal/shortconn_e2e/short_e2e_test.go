package shortconn_e2e

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// perConn bounds the records of one connection side in these workloads
// (open, close, a few packets, an HTTP pair and summary): a packet no BPF
// program ran for (README, "Events no BPF program sees") can spoil at most
// one connection, so at most this many of its records.
const perConn = 8

var connLine = regexp.MustCompile(`^connection\{pid="(\d+)",sock="0x[0-9a-f]+",src="([^"]+)",dst="([^"]+)",is_server="([01])".*,conn_id="(\d+)"\}$`)

// TestShortConnections: N connections one after another (connect, send,
// receive, close; or an HTTP GET with Connection: close). Socket memory is
// reused at once, so the same few socket addresses carry all of them.
// Checked for each mode:
//   - -a keeps every closed connection: connects.log holds N client sides
//     with the client's pid and N server sides with the server's, each with
//     its own conn_id;
//   - every packet record names its connection (conn_id, addresses, owner),
//     none without addresses;
//   - per connection, the console order is open, its records, close;
//   - -i: every request is paired with its response on both sides, with a
//     latency no larger than the client's own measurement, and every
//     connection's summary says 1 request, 1 response, 1 matched.
func TestShortConnections(t *testing.T) {
	nstest.RequireRoot(t)
	for _, tc := range []struct {
		name string
		args []string
		http bool
		n    int
	}{
		{"a", []string{"-a"}, false, 3000},
		{"a-q", []string{"-a", "-q"}, false, 3000},
		{"a-t", []string{"-a", "-t"}, false, 3000},
		{"a-i-connection-close", []string{"-a", "-i"}, true, 1000},
		{"a-i-http10", []string{"-a", "-i"}, true, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := nstest.NewPair(t)
			mode := "--echo"
			if tc.http {
				mode = "--http"
			}
			srv, addr := peer.Serve(t, p.B, "-l", netip.AddrPortFrom(p.B4, 0).String(), mode)
			srvAP := netip.MustParseAddrPort(addr)
			cliNS, srvNS := p.A.Inode(t), p.B.Inode(t)
			capture := oracle.StartTcpdump(t, p.A, p.IfA, fmt.Sprintf("tcp port %d", srvAP.Port()))
			wit := witness.StartLinks(t, p.A, p.B)
			r := nwtest.Start(t, tc.args...)

			var cli *peer.Proc
			if tc.http {
				how := "--close"
				if strings.HasSuffix(tc.name, "http10") {
					how = "--http10"
				}
				cli = peer.Start(t, p.A, "http-get", "-r", addr, "-n", strconv.Itoa(tc.n), how)
			} else {
				cli = peer.Start(t, p.A, "churn", "-r", addr, "-n", strconv.Itoa(tc.n), "-c", "1")
			}
			lines, err := cli.Wait(2 * time.Minute)
			if err != nil {
				t.Fatalf("client: %v: %s", err, cli.Stderr())
			}
			var clientMax int64
			if tc.http {
				got := 0
				for _, l := range lines {
					if strings.HasPrefix(l, "HTTP ") {
						got++
						f := strings.Fields(l)
						ns, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
						clientMax = max(clientMax, ns)
					}
				}
				if got != tc.n {
					t.Fatalf("client made %d requests, want %d", got, tc.n)
				}
			} else if len(lines) != 1 || !strings.Contains(lines[0], fmt.Sprintf("conns=%d ", tc.n)) || !strings.Contains(lines[0], "errors=0") {
				t.Fatalf("churn: %q", lines)
			}
			time.Sleep(300 * time.Millisecond) // the last closes reach the rings
			r.Stop()
			wire := capture.Stop()
			// packets of the pair no BPF program ran for: 0 in most runs;
			// each may cost one connection its records
			nobpf := int(wit.Missed(t))
			cliPid, srvPid := strconv.Itoa(cli.Cmd.Process.Pid), strconv.Itoa(srv.Cmd.Process.Pid)

			// connects.log: every connection, both sides, right owners.
			ids := map[string]bool{}
			var clients, servers, wrongPid int
			for _, l := range strings.Split(strings.TrimSpace(r.File("connects.log")), "\n") {
				m := connLine.FindStringSubmatch(l)
				if m == nil {
					if strings.Contains(l, addr) {
						t.Errorf("malformed connects.log line: %s", l)
					}
					continue
				}
				switch {
				case m[4] == "0" && m[3] == addr:
					clients++
					if m[1] != cliPid {
						wrongPid++
					}
				case m[4] == "1" && m[2] == addr:
					servers++
					if m[1] != srvPid {
						wrongPid++
					}
				default:
					continue
				}
				if ids[m[5]] {
					t.Errorf("conn_id %s twice", m[5])
				}
				ids[m[5]] = true
			}
			if clients > tc.n || servers > tc.n || clients+servers < 2*tc.n-nobpf || wrongPid != 0 {
				t.Errorf("connects.log: %d client sides, %d server sides (want %d each; packets no BPF program ran for %d), %d with a wrong pid", clients, servers, tc.n, nobpf, wrongPid)
			}

			stats := r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "stats" })
			if len(stats) != 1 {
				t.Fatalf("%d stats records", len(stats))
			}
			st := stats[0]
			for _, k := range []string{"lost_ring_full", "lost_queue_full", "conn_table_full", "packets_without_addrs", "closed_evicted"} {
				allowed := 0.0
				if k == "packets_without_addrs" {
					allowed = float64(nobpf * perConn) // a connection whose open no program saw
				}
				if st.Num(k) > allowed {
					t.Errorf("stats %s = %v (packets no BPF program ran for %d)", k, st.Num(k), nobpf)
				}
			}
			if slices := strings.Count(r.File("packets.log"), "\n"); slices < 2*tc.n {
				t.Errorf("packets.log holds %d lines, want at least %d", slices, 2*tc.n)
			}
			if strings.Contains(r.File("packets.log"), `conn_id="-"`) {
				t.Error("packets.log has records without their connection")
			}
			if strings.Contains(strings.Join(tc.args, " "), "-q") {
				return
			}
			checkConsole(t, r, tc.n, srvAP, cliNS, srvNS, tc.http, clientMax, nobpf)
			checkOnWire(t, r, wire, srvAP, cliNS, srvNS)
		})
	}
}

// TestStopUnderChurn: SIGTERM while thousands of short connections run
// (-tixre): netwatcher stops within seconds, and every packet record it
// printed is a segment tcpdump saw on the wire with the addresses and
// sequence number the record names (the hooks detach in an order that
// never lets the records of a new connection on reused socket memory be
// named after the old one).
func TestStopUnderChurn(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	_, addr := peer.Serve(t, p.B, "-l", netip.AddrPortFrom(p.B4, 0).String(), "--echo")
	srvAP := netip.MustParseAddrPort(addr)
	capture := oracle.StartTcpdump(t, p.A, p.IfA, fmt.Sprintf("tcp port %d", srvAP.Port()))
	r := nwtest.Start(t, "-tixre")
	cli := peer.Start(t, p.A, "churn", "-r", addr, "-n", "1000000", "-c", "2", "--duration", "20s")
	time.Sleep(600 * time.Millisecond)
	start := time.Now()
	r.Stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stopping under load took %v", d)
	}
	cli.Signal(syscall.SIGTERM)
	cli.Wait(10 * time.Second)
	wire := capture.Stop()
	n := checkOnWire(t, r, wire, srvAP, p.A.Inode(t), p.B.Inode(t))
	if n < 100 {
		t.Errorf("only %d packet records under churn", n)
	}
}

// checkOnWire: every packet record of the test's flows is a data segment
// tcpdump saw with the same addresses and sequence number. It returns how
// many records it checked.
func checkOnWire(t *testing.T, r *nwtest.Run, wire []oracle.Segment, srv netip.AddrPort, cliNS, srvNS uint64) int {
	t.Helper()
	type key struct {
		src, dst netip.AddrPort
		seq      uint32
	}
	seen := map[key]bool{}
	for _, s := range wire {
		if s.PayloadLen > 0 {
			seen[key{s.Src, s.Dst, s.Seq}] = true
		}
	}
	n, missing := 0, 0
	for _, e := range r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "packet" }) {
		ns := uint64(e.Num("netns"))
		if ns != cliNS && ns != srvNS {
			continue
		}
		src, err1 := netip.ParseAddrPort(e.Str("src"))
		dst, err2 := netip.ParseAddrPort(e.Str("dst"))
		if err1 != nil || err2 != nil {
			t.Errorf("packet record without addresses: %v", e)
			continue
		}
		if src != srv && dst != srv {
			continue
		}
		n++
		k := key{src, dst, uint32(e.Num("seq"))}
		if e.Num("rx") == 1 {
			k.src, k.dst = dst, src
		}
		if !seen[k] {
			if missing < 5 {
				t.Errorf("packet record not on the wire (wrong connection?): %v", e)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d packet records name a segment tcpdump did not see", missing, n)
	}
	return n
}

type connSeen struct {
	opened, closed bool
	packets        int
	outOfOrder     bool
	http           int
	summary        nwtest.Ev
}

// checkConsole checks the console records of the n connections to srv;
// nobpf packets of the pair reached no BPF program (each may spoil one
// connection side).
func checkConsole(t *testing.T, r *nwtest.Run, n int, srv netip.AddrPort, cliNS, srvNS uint64, http bool, clientMax int64, nobpf int) {
	t.Helper()
	ours := func(e nwtest.Ev) bool {
		ns := uint64(e.Num("netns"))
		return (ns == cliNS && e.Str("dst") == srv.String()) || (ns == srvNS && e.Str("src") == srv.String())
	}
	conns := map[float64]*connSeen{}
	var noConn, packets int
	for _, e := range r.Events() {
		typ := e.Str("type")
		if typ == "stats" || typ == "" {
			continue
		}
		if !ours(e) {
			if typ == "packet" && (uint64(e.Num("netns")) == cliNS || uint64(e.Num("netns")) == srvNS) {
				noConn++ // a packet of our namespaces not named
			}
			continue
		}
		id, ok := e["conn_id"].(float64)
		if !ok {
			noConn++
			continue
		}
		c := conns[id]
		if c == nil {
			c = &connSeen{}
			conns[id] = c
		}
		if !e.Has("time") || !e.Has("pid") || e["pid"] == nil {
			t.Fatalf("record without time or owner: %v", e)
		}
		switch typ {
		case "connection":
			switch e.Str("event") {
			case "open":
				if c.opened || c.packets > 0 || c.closed {
					c.outOfOrder = true
				}
				c.opened = true
			case "close":
				c.closed = true
			}
		case "packet":
			packets++
			if !c.opened || c.closed {
				c.outOfOrder = true
			}
			c.packets++
		case "http":
			c.http++
			if !c.opened || c.closed {
				c.outOfOrder = true
			}
			if lat := int64(e.Num("latency_ns")); clientMax > 0 && lat > clientMax {
				t.Errorf("http latency %d ns > the client's slowest request %d ns", lat, clientMax)
			}
		case "http_summary":
			c.summary = e
			if !c.closed {
				c.outOfOrder = true
			}
		}
	}
	if noConn > nobpf*perConn {
		t.Errorf("%d records of the test's connections without conn_id/addresses (packets no BPF program ran for %d)", noConn, nobpf)
	}
	if len(conns) > 2*n || len(conns) < 2*n-nobpf {
		t.Errorf("%d connections on the console, want %d (packets no BPF program ran for %d)", len(conns), 2*n, nobpf)
	}
	bad := 0
	for id, c := range conns {
		if !c.opened || !c.closed || c.outOfOrder || c.packets < 2 {
			if bad < 5 {
				t.Errorf("connection %v: open %v close %v packets %d out of order %v", id, c.opened, c.closed, c.packets, c.outOfOrder)
			}
			bad++
		}
		if http {
			s := c.summary
			if c.http != 1 || s == nil || s.Num("requests") != 1 || s.Num("responses") != 1 || s.Num("matched") != 1 {
				if bad < 5 {
					t.Errorf("connection %v: %d http pairs, summary %v", id, c.http, s)
				}
				bad++
			}
		}
	}
	if bad > nobpf {
		t.Errorf("%d of %d connections wrong (packets no BPF program ran for %d)", bad, len(conns), nobpf)
	} else if bad > 0 {
		t.Logf("NOTE: %d of %d connections incomplete: no BPF program ran for %d of their packets", bad, len(conns), nobpf)
	}
	t.Logf("%d connections, %d packet records", len(conns), packets)
}
