package packet_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// sumServer is a server in namespace B of a pair: a request is 8 bytes
// (the request's own length A, the response length B, both big-endian
// u32) followed by A-8 bytes; the server reads it whole and answers B
// bytes, request after request, until the client closes (EOF or reset),
// then closes too. A request of length 0 (just the 8 bytes) makes a
// "pipe": the server then reads and discards everything and counts it.
type sumServer struct {
	ln   *net.TCPListener
	mu   sync.Mutex
	read map[string]int64 // pipe connections: bytes read, by client address
	open []*net.TCPConn   // every connection accepted (closed at cleanup)
	wg   sync.WaitGroup
}

func startSumServer(t *testing.T, p *nstest.Pair) *sumServer {
	s := &sumServer{read: map[string]int64{}}
	if err := p.B.Do(func() (err error) {
		s.ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.B4, 0)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.ln.Close()
		s.mu.Lock()
		for _, c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	go func() {
		for {
			c, err := s.ln.AcceptTCP()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go s.serve(c)
		}
	}()
	return s
}

func (s *sumServer) serve(c *net.TCPConn) {
	defer s.wg.Done()
	defer c.Close()
	for {
		var h [8]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return // the client closed
		}
		a, b := binary.BigEndian.Uint32(h[:4]), binary.BigEndian.Uint32(h[4:])
		if a == 0 {
			s.pipe(c)
			return
		}
		if _, err := io.CopyN(io.Discard, c, int64(a)-8); err != nil {
			return
		}
		if _, err := c.Write(make([]byte, b)); err != nil {
			return
		}
	}
}

func (s *sumServer) pipe(c *net.TCPConn) {
	{
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			s.mu.Lock()
			s.read[c.RemoteAddr().String()] += int64(n)
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

func (s *sumServer) readFrom(addr string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read[addr]
}

// dialA connects from namespace A to the server.
func dialA(t *testing.T, p *nstest.Pair, s *sumServer) *net.TCPConn {
	t.Helper()
	var c *net.TCPConn
	if err := p.A.Do(func() error {
		cc, err := net.DialTCP("tcp", nil, s.ln.Addr().(*net.TCPAddr))
		c = cc
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

// request sends a request of a bytes (a >= 8) on c and reads its b-byte
// answer.
func request(t *testing.T, c *net.TCPConn, a, b uint32) {
	t.Helper()
	req := make([]byte, a)
	binary.BigEndian.PutUint32(req[:4], a)
	binary.BigEndian.PutUint32(req[4:], b)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, c, int64(b)); err != nil {
		t.Fatal(err)
	}
}

// exchange is one request/response connection: A bytes up, B down, then
// closed by the client, with a reset if rst.
func exchange(t *testing.T, p *nstest.Pair, s *sumServer, a, b uint32, rst bool) {
	if err := exchangeErr(p, s, a, b, rst); err != nil {
		t.Fatal(err)
	}
}

// exchangeErr is exchange for goroutines other than the test's.
func exchangeErr(p *nstest.Pair, s *sumServer, a, b uint32, rst bool) error {
	var c *net.TCPConn
	if err := p.A.Do(func() error {
		cc, err := net.DialTCP("tcp", nil, s.ln.Addr().(*net.TCPAddr))
		c = cc
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	req := make([]byte, a)
	binary.BigEndian.PutUint32(req[:4], a)
	binary.BigEndian.PutUint32(req[4:], b)
	if _, err := c.Write(req); err != nil {
		return err
	}
	if _, err := io.CopyN(io.Discard, c, int64(b)); err != nil {
		return err
	}
	if rst {
		c.SetLinger(0)
	}
	return nil
}

// pipe opens a connection whose bytes the server only counts.
func pipe(t *testing.T, p *nstest.Pair, s *sumServer) *net.TCPConn {
	c := dialA(t, p, s)
	if _, err := c.Write(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	return c
}

// send writes n bytes on c and waits until the server has read them all
// (want: the server's total for this connection by then).
func send(t *testing.T, s *sumServer, c *net.TCPConn, n int, want int64) {
	t.Helper()
	if _, err := c.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.readFrom(c.LocalAddr().String()) < want {
		if time.Now().After(deadline) {
			t.Fatalf("server read %d of %d bytes", s.readFrom(c.LocalAddr().String()), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// segs is ss's data_segs_in and data_segs_out of the sockets of ns that
// belong to the connections of the client addresses of cs, by local and
// peer address.
func segs(t *testing.T, ns *nstest.NS, cs ...*net.TCPConn) map[[2]netip.AddrPort][2]uint64 {
	want := map[netip.AddrPort]bool{}
	for _, c := range cs {
		want[c.LocalAddr().(*net.TCPAddr).AddrPort()] = true
	}
	out := map[[2]netip.AddrPort][2]uint64{}
	for _, in := range oracle.SS(t, ns) {
		if !want[in.Local] && !want[in.Peer] {
			continue
		}
		var v [2]uint64
		for i, k := range []string{"data_segs_in", "data_segs_out"} {
			if s := in.Fields[k]; s != "" {
				n, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					t.Fatalf("ss %s:%q: %v", k, s, err)
				}
				v[i] = n
			}
		}
		out[[2]netip.AddrPort{in.Local, in.Peer}] = v
	}
	return out
}

// TestSummarySocketCounts: --summary (no -t) takes its counts from the
// sockets' own counters, and loads no program per packet. Oracles: the
// application's bytes (exact), the segments ss reports for the open
// connections plus one per message of the short ones (exact), no
// retransmission in either namespace (else the counts include it).
//
// Traffic, both ends traced (a byte sent by one end is received by the
// other: each direction's total counts every byte once per end):
//   - a connection older than netwatcher: 1 MiB up and 256 KiB down before
//     the start (not counted), 2 MiB up and 512 KiB down after;
//   - 40 short connections (each < 1 s, between two walks), A_i bytes up,
//     B_i down (one segment each way), every 5th closed by a reset;
//   - one connection made after the start, 5 MiB up, left open: the exit
//     summary counts it by the last walk.
func TestSummarySocketCounts(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	s := startSumServer(t, p)

	// the older connections, before the start: a pipe (up) and a
	// request/response connection (down)
	old := pipe(t, p, s)
	send(t, s, old, 1<<20, 1<<20)
	oldRR := dialA(t, p, s)
	request(t, oldRR, 8, 256<<10)
	// their counters at the start (idle now)
	time.Sleep(100 * time.Millisecond)
	startA, startB := segs(t, p.A, old, oldRR), segs(t, p.B, old, oldRR)
	nsA0, nsB0 := oracle.Nstat(t, p.A), oracle.Nstat(t, p.B)

	// both ends: the pair's /30
	net30 := netip.PrefixFrom(p.A4, 30).Masked().String()
	wit := witness.StartLinks(t, p.A, p.B)
	nw := nwtest.Start(t, "--summary", "-S", net30, "--interval", "300ms")

	var appBytes uint64 // every byte an application wrote after the start
	var shortSegs uint64
	var fins uint64 // FINs received (bytes_received counts each FIN's sequence number)
	send(t, s, old, 2<<20, 3<<20)
	request(t, oldRR, 100, 512<<10)
	appBytes += 2<<20 + 100 + 512<<10
	const n = 40
	for i := range n {
		a, b := uint32(100+i), uint32(1000+i)
		exchange(t, p, s, a, b, i%5 == 0)
		appBytes += uint64(a + b)
		shortSegs += 2
		if i%5 != 0 {
			fins += 2
		}
	}
	long := pipe(t, p, s)
	appBytes += 8
	send(t, s, long, 5<<20, 5<<20)
	appBytes += 5 << 20
	time.Sleep(100 * time.Millisecond) // the last ACKs
	endA, endB := segs(t, p.A, old, oldRR, long), segs(t, p.B, old, oldRR, long)
	// the older request/response connection ends now (a connection
	// adopted at the start, closed): the client's FIN makes the server
	// close; no data segment more
	oldRR.Close()
	fins += 2
	time.Sleep(200 * time.Millisecond)
	nsA1, nsB1 := oracle.Nstat(t, p.A), oracle.Nstat(t, p.B)
	// packets of the pair no BPF program ran for (README, "Events no BPF
	// program sees"): each may be an skb the counts miss (at most 64 KiB,
	// so at most 64 segments of this pair's MSS); 0 in most runs
	nobpf := wit.Missed(t)
	near := func(got float64, want uint64, per uint64) bool {
		return uint64(got) <= want && uint64(got)+nobpf*per >= want
	}
	nw.Stop()
	old.Close()
	long.Close()

	retrans := oracle.Delta(nsA0, nsA1, "TcpRetransSegs") + oracle.Delta(nsB0, nsB1, "TcpRetransSegs")
	// segments of the open connections: now minus at the start
	var openIn, openOut uint64
	for _, x := range []struct {
		start, end map[[2]netip.AddrPort][2]uint64
	}{{startA, endA}, {startB, endB}} {
		for addr, v := range x.end {
			b := x.start[addr]
			openIn += v[0] - b[0]
			openOut += v[1] - b[1]
		}
	}

	got := map[string]nwtest.Ev{}
	for _, e := range nw.Events() {
		switch e.Str("type") {
		case "packet":
			t.Fatalf("--summary made a packet record: %v", e)
		case "layer_summary":
			if e.Str("event") == "exit" {
				if e["layer"] != nil {
					t.Errorf("layer summary without -t has a layer: %v", e)
				}
				got[e.Str("direction")] = e
			}
		}
	}
	rx, tx := got["rx"], got["tx"]
	if rx == nil || tx == nil {
		t.Fatalf("exit summaries: %v", got)
	}
	wantTx, wantRx := appBytes, appBytes+fins
	wantSegs := shortSegs + openOut
	t.Logf("app bytes %d, FINs %d, short-connection segments %d, open connections' segments in %d out %d, retransmissions %d",
		appBytes, fins, shortSegs, openIn, openOut, retrans)
	t.Logf("summary: rx %v segments %v bytes, tx %v segments %v bytes", rx.Num("segments"), rx.Num("bytes"), tx.Num("segments"), tx.Num("bytes"))
	if retrans != 0 {
		// the counts include retransmitted segments (and tx bytes their bytes)
		if uint64(tx.Num("bytes"))+nobpf<<16 < wantTx || !near(rx.Num("bytes"), wantRx, 1<<16) {
			t.Errorf("with %d retransmissions: tx bytes %v (want >= %d), rx bytes %v (want %d)", retrans, tx.Num("bytes"), wantTx, rx.Num("bytes"), wantRx)
		}
		return
	}
	if !near(tx.Num("bytes"), wantTx, 1<<16) {
		t.Errorf("tx bytes %v, the applications wrote %d (packets no BPF program ran for %d)", tx.Num("bytes"), wantTx, nobpf)
	}
	if !near(rx.Num("bytes"), wantRx, 1<<16) {
		t.Errorf("rx bytes %v, want the applications' %d + %d FINs (packets no BPF program ran for %d)", rx.Num("bytes"), appBytes, fins, nobpf)
	}
	if !near(tx.Num("segments"), wantSegs, 64) {
		t.Errorf("tx segments %v, want %d (short) + %d (ss, open connections) (packets no BPF program ran for %d)", tx.Num("segments"), shortSegs, openOut, nobpf)
	}
	if !near(rx.Num("segments"), shortSegs+openIn, 64) {
		t.Errorf("rx segments %v, want %d (short) + %d (ss, open connections) (packets no BPF program ran for %d)", rx.Num("segments"), shortSegs, openIn, nobpf)
	}
	log := nw.File("summary.log")
	if want := fmt.Sprintf(`layer_summary{event="exit",direction="tx",layer="-",segments="%d",bytes="%d"`, wantSegs, wantTx); !strings.Contains(log, want) {
		t.Errorf("summary.log without %s:\n%s", want, log)
	}
}

// pidOf finds the netwatcher of run r (its --data-dir is on its command line).
func pidOf(t *testing.T, r *nwtest.Run) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(b), r.DataDir+"\x00") {
			return pid
		}
	}
	t.Fatal("netwatcher's process not found")
	return 0
}

// TestSummarySigtermUnderLoad: SIGTERM while short connections come and
// go (4 clients, request/response, closed at once) and a long one
// streams: the exit totals count every byte of the connections that ended
// before the signal, and no byte that was never written. Both ends are
// traced, so each byte counts once in tx (sent by one end); connections
// that close after the hooks are gone (shutdown) are counted by the last
// walk, from their final counters. The lower bounds' only allowance: the
// pair's packets the BPF witness shows no BPF program ran for (README,
// "Events no BPF program sees": 0 in most runs), up to 64 KiB each.
func TestSummarySigtermUnderLoad(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	s := startSumServer(t, p)
	net30 := netip.PrefixFrom(p.A4, 30).Masked().String()
	nw := nwtest.Start(t, "--summary", "-S", net30)
	wit := witness.StartLinks(t, p.A, p.B)

	var mu sync.Mutex
	var before, started uint64 // tx bytes: of connections done before the signal; of every connection begun
	var conns uint64           // connections begun
	signalled := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a, b := uint32(200+w), uint32(3000+i%5000)
				mu.Lock()
				started += uint64(a + b)
				conns++
				mu.Unlock()
				if err := exchangeErr(p, s, a, b, false); err != nil {
					t.Error(err)
					return
				}
				select {
				case <-signalled:
				default:
					mu.Lock()
					before += uint64(a + b)
					mu.Unlock()
				}
			}
		}()
	}
	long := pipe(t, p, s)
	var longBefore uint64
	for range 20 { // 20 MiB, MiB by MiB, while the others churn
		send(t, s, long, 1<<20, int64(longBefore)+1<<20)
		longBefore += 1 << 20
	}
	pid := pidOf(t, nw)
	mu.Lock()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	close(signalled)
	mu.Unlock()
	longDuring := uint64(0)
	// the stream goes on during the shutdown
	for i := 0; i < 50; i++ {
		if _, err := long.Write(make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		longDuring += 64 << 10
	}
	// gone (a second signal during the shutdown would kill it)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("netwatcher still running 20 s after SIGTERM")
		}
	}
	mu.Lock()
	startedByExit, connsByExit := started, conns
	mu.Unlock()
	nw.Stop() // exited: no signal; its exit code must be 0
	close(stop)
	wg.Wait()
	long.Close()
	time.Sleep(100 * time.Millisecond)
	nobpf := wit.Missed(t)

	var tx, rx nwtest.Ev
	for _, e := range nw.Events() {
		if e.Str("type") == "layer_summary" && e.Str("event") == "exit" {
			if e.Str("direction") == "tx" {
				tx = e
			} else {
				rx = e
			}
		}
	}
	if tx == nil || rx == nil {
		t.Fatal("no exit summaries")
	}
	lo, hi := before+8+longBefore, startedByExit+8+longBefore+longDuring
	got := uint64(tx.Num("bytes"))
	t.Logf("tx bytes %d: connections done before SIGTERM %d, every byte written %d; rx bytes %v; tx segments %v", got, lo, hi, rx.Num("bytes"), tx.Num("segments"))
	if got+nobpf<<16 < lo || got > hi {
		t.Errorf("tx bytes %d outside [%d, %d] (packets no BPF program ran for: %d)", got, lo, hi, nobpf)
	}
	// received: the same bytes (all of them read before the signal), and
	// at most two FINs per connection
	if r := uint64(rx.Num("bytes")); r+nobpf<<16 < lo || r > hi+2*(connsByExit+1) {
		t.Errorf("rx bytes %d outside [%d, %d + 2 FINs x %d connections] (packets no BPF program ran for: %d)", r, lo, hi, connsByExit+1, nobpf)
	}
}

// TestSummaryOlderConnection: a connection older than netwatcher counts
// only what it carries after the start: 1 MiB up and 256 KiB down before,
// 2 MiB up and 512 KiB down (+ the 100-byte request) after; the summary
// says exactly the bytes after, short only by the packets the BPF witness
// shows no BPF program ran for (README, "Events no BPF program sees": 0 in
// most runs), up to 64 KiB each. Both table variants (the hash one adopts
// from user space).
func TestSummaryOlderConnection(t *testing.T) {
	nstest.RequireRoot(t)
	for _, table := range []string{"sets", "hash"} {
		t.Run(table, func(t *testing.T) {
			t.Setenv(conn.TableEnv, table)
			p := nstest.NewPair(t)
			s := startSumServer(t, p)
			up := pipe(t, p, s)
			send(t, s, up, 1<<20, 1<<20)
			down := dialA(t, p, s)
			request(t, down, 8, 256<<10)
			time.Sleep(50 * time.Millisecond)
			nw := nwtest.Start(t, "--summary", "-S", netip.PrefixFrom(p.A4, 30).Masked().String())
			wit := witness.StartLinks(t, p.A, p.B)
			send(t, s, up, 2<<20, 3<<20)
			request(t, down, 100, 512<<10)
			time.Sleep(50 * time.Millisecond)
			nobpf := wit.Missed(t)
			nw.Stop()
			up.Close()
			down.Close()
			want := uint64(2<<20 + 100 + 512<<10)
			n := 0
			for _, e := range nw.Events() {
				if e.Str("type") != "layer_summary" || e.Str("event") != "exit" {
					continue
				}
				n++
				if got := uint64(e.Num("bytes")); got > want || got+nobpf<<16 < want {
					t.Errorf("%s bytes %d, want %d (after the start only; packets no BPF program ran for: %d)", e.Str("direction"), got, want, nobpf)
				}
			}
			if n != 2 {
				t.Fatalf("%d exit summaries", n)
			}
		})
	}
}
