package httptest_e2e

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

const wait = 10 * time.Second

// capture is tcpdump writing whole packets (-s 0: tshark needs the HTTP
// headers, which oracle.StartTcpdump's 128-byte snap length cuts).
type capture struct {
	path string
	cmd  *exec.Cmd
	done chan struct{}
}

func startCapture(t *testing.T, ns *nstest.NS, iface, filter string) *capture {
	t.Helper()
	c := &capture{path: filepath.Join(t.TempDir(), "http.pcap"), done: make(chan struct{})}
	c.cmd = ns.Cmd("tcpdump", "-i", iface, "-w", c.path, "-U", "-s", "0", "-n", "--immediate-mode", "-Z", "root", filter)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	var once sync.Once
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(listening) })
			}
		}
		c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
	})
	select {
	case <-listening:
	case <-c.done:
		t.Fatalf("tcpdump exited: %s", log.String())
	case <-time.After(wait):
		t.Fatal("tcpdump not capturing after 10s")
	}
	return c
}

func (c *capture) stop(t *testing.T) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // let -U flush the last packets
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		t.Fatal("tcpdump did not stop")
	}
}

// message is one HTTP request or status line on the wire.
type message struct {
	from netip.AddrPort // sender
	seq  uint32         // TCP sequence number of the segment that starts it
	line string         // "GET / HTTP/1.1", "HTTP/1.1 200 OK"
}

func (m message) String() string { return fmt.Sprintf("%s seq=%d %q", m.from, m.seq, m.line) }

// tsharkMessages decodes the capture with tshark: the request and status
// lines, who sent them and the raw sequence number of their segment.
func tsharkMessages(t *testing.T, path string) []message {
	t.Helper()
	out, err := exec.Command("tshark", "-r", path, "-Y", "http", "-T", "fields", "-E", "separator=|",
		"-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "tcp.seq_raw",
		"-e", "http.request.method", "-e", "http.request.uri", "-e", "http.request.version",
		"-e", "http.response.version", "-e", "http.response.code", "-e", "http.response.phrase").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var msgs []message
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, "|")
		if len(f) != 10 {
			t.Fatalf("tshark line %q", l)
		}
		ip := f[0]
		if ip == "" {
			ip = f[1]
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			t.Fatalf("tshark line %q: %v", l, err)
		}
		port, _ := strconv.Atoi(f[2])
		seq, _ := strconv.ParseUint(f[3], 10, 32)
		m := message{from: netip.AddrPortFrom(a, uint16(port)), seq: uint32(seq)}
		switch {
		case f[4] != "":
			m.line = f[4] + " " + f[5] + " " + f[6]
		case f[7] != "":
			m.line = f[7] + " " + f[8] + " " + f[9]
		default:
			continue
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// TestHTTPInfo: GET / (200) three times on one keep-alive connection and
// GET /missing (404) on another, between two namespaces; every request and
// status line tshark finds in the capture must appear on netwatcher's
// packet records of both sockets (sent by one with rx=0, received by the
// other with rx=1) with the same sequence number, and netwatcher must
// report no HTTP line tshark does not see.
func TestHTTPInfo(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "tcpdump", "tshark")
	p := nstest.NewPair(t)
	port := 20000 + rand.IntN(20000)
	wit := witness.StartLinks(t, p.A, p.B)
	r := nwtest.Start(t, "-i")
	capt := startCapture(t, p.B, p.IfB, fmt.Sprintf("tcp port %d", port))
	_, addr := peer.Serve(t, p.B, "-l", netip.AddrPortFrom(p.B4, uint16(port)).String(), "--http")

	out := peer.Run(t, p.A, wait, "http-get", "-r", addr, "-n", "3", "--path", "/")
	out = append(out, peer.Run(t, p.A, wait, "http-get", "-r", addr, "--path", "/missing")...)
	t.Logf("client: %q", out)

	// Each message is seen on both sockets: 2 records per message.
	isHTTP := func(e nwtest.Ev) bool {
		if e.Str("type") != "packet" || e.Str("http_info") == "" || e.Str("http_info") == "-" {
			return false
		}
		for _, k := range []string{"src", "dst"} {
			if ap, err := netip.ParseAddrPort(e.Str(k)); err == nil && int(ap.Port()) == port && ap.Addr() == p.B4 {
				return true
			}
		}
		return false
	}
	const want = 2 * (4 + 4)
	deadline := time.Now().Add(wait)
	for len(r.Find(isHTTP)) < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	capt.stop(t)
	r.Stop()
	// packets of the pair no BPF program ran for (README, "Events no BPF
	// program sees"): each may cost a record; 0 in most runs
	nobpf := int(wit.Missed(t))

	msgs := tsharkMessages(t, capt.path)
	if len(msgs) != 8 {
		t.Fatalf("tshark decoded %d HTTP messages, want 8 (4 requests, 4 responses): %v", len(msgs), msgs)
	}
	type key struct {
		sender netip.AddrPort
		seq    uint32
		line   string
		rx     bool
	}
	got := map[key]int{}
	for _, e := range r.Find(isHTTP) {
		src, _ := netip.ParseAddrPort(e.Str("src"))
		dst, _ := netip.ParseAddrPort(e.Str("dst"))
		rx := e.Num("rx") == 1
		sender := src
		if rx {
			sender = dst
		}
		got[key{sender, uint32(e.Num("seq")), e.Str("http_info"), rx}]++
	}
	var lines []string
	var missing int
	for _, m := range msgs {
		lines = append(lines, m.line)
		for _, rx := range []bool{false, true} {
			k := key{m.from, m.seq, m.line, rx}
			switch {
			case got[k] == 0 && missing < nobpf:
				missing++
				t.Logf("NOTE: tshark: %v; no netwatcher record with rx=%v: no BPF program ran for %d packets", m, rx, nobpf)
			case got[k] != 1:
				t.Errorf("tshark: %v; netwatcher: %d records with rx=%v, want 1 (packets no BPF program ran for %d)", m, got[k], rx, nobpf)
			}
			delete(got, k)
		}
	}
	for k, n := range got {
		t.Errorf("netwatcher reported %d× %q from %s seq=%d rx=%v, not in the capture", n, k.line, k.sender, k.seq, k.rx)
	}
	if t.Failed() {
		for _, e := range r.Find(func(e nwtest.Ev) bool {
			return (e.Str("type") == "packet" && e.Str("http_info") != "-") || e.Str("type") == "connection"
		}) {
			t.Logf("record: %v", e)
		}
	}
	sort.Strings(lines)
	t.Logf("tshark and netwatcher agree on %d messages: %q", len(msgs), lines)
	for _, l := range []string{"GET / HTTP/1.1", "HTTP/1.1 200 OK", "GET /missing HTTP/1.1", "HTTP/1.1 404 Not Found"} {
		if !strings.Contains(strings.Join(lines, "\n"), l) {
			t.Errorf("no %q in the flow", l)
		}
	}
}
