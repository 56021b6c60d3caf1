package metrics_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// scrapeConns reads the connection metrics of one scrape: series (name
// plus its labels as printed) -> value.
func scrapeConns(t *testing.T, target string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "netwatcher_connections_") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape line %q: %v", l, err)
		}
		out[l[:i]] = v
	}
	return out
}

func connSeries(name string, netns uint64, side, port string) string {
	return fmt.Sprintf(`netwatcher_connections_%s{netns="%d",port="%s",side="%s"}`, name, netns, port, side)
}

// TestConnAggQuiet: -q --metrics-addr keeps the kernel quiet (no open or
// close record: the exit stats count 0 records) and the connection
// metrics still equal the workload exactly: 2,000 short connections from
// namespace A to three servers in B (port 80: a well-known class; 7379,
// given as --redis-port: a service class above 1023; 45678: no class,
// "ephemeral"), opened and closed per side and port class, the kernel's
// TcpActiveOpens/TcpPassiveOpens agreeing; a connection open before the
// start counts as active, then, once closed, as closed, and active
// returns to 0. Per namespace the opened counts add up to the BPF
// witness's connections established there exactly (the closed ones to its
// closes, less the closes of connections whose opening no BPF program
// saw); the kernel's counts less the witness's (what no BPF program ran
// for, README, "Events no BPF program sees": 0 in most runs) are the only
// allowance of each class's count.
func TestConnAggQuiet(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	subnet := netip.PrefixFrom(p.A4, 24).Masked()
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t))

	type server struct {
		port  uint16
		class string
		n     int
	}
	servers := []server{{80, "80", 1000}, {7379, "7379", 600}, {45678, "ephemeral", 400}}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the listeners close (cleanups run last first)
	for _, s := range servers {
		var ln net.Listener
		if err := p.B.Do(func() (err error) {
			ln, err = net.Listen("tcp", netip.AddrPortFrom(p.B4, s.port).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		wg.Add(1)
		go func() { // read to EOF, close: the server side closes too
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					io.Copy(io.Discard, c)
					c.Close()
				}()
			}
		}()
	}
	dial := func(port uint16) (net.Conn, error) {
		var c net.Conn
		err := p.A.Do(func() (err error) {
			c, err = net.DialTimeout("tcp", netip.AddrPortFrom(p.B4, port).String(), 5*time.Second)
			return err
		})
		return c, err
	}
	// open before the start: adopted, active at once
	old, err := dial(80)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	r := nwtest.Start(t, "-q", "--no-packets", "-S", subnet.String(), "--redis-port", "7379", "--metrics-addr", target)
	inoA, inoB := p.A.Inode(t), p.B.Inode(t)
	// want: series -> [lo, hi]; waits until every one holds (up to 20 s)
	type rng struct{ lo, hi float64 }
	waitConns := func(what string, want map[string]rng) map[string]float64 {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := scrapeConns(t, target)
			var bad []string
			for k, v := range want {
				if g, ok := got[k]; !ok || g < v.lo || g > v.hi {
					bad = append(bad, fmt.Sprintf("%s = %v (present %v), want %v", k, g, ok, v))
				}
			}
			if len(bad) == 0 {
				t.Logf("%s: %d series as expected", what, len(want))
				return got
			}
			if time.Now().After(deadline) {
				for k, v := range got {
					t.Logf("scrape: %s %v", k, v)
				}
				t.Fatalf("%s, after 20 s:\n%s", what, strings.Join(bad, "\n"))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitConns("existing connection", map[string]rng{
		connSeries("active", inoA, "client", "80"): {1, 1}, connSeries("active", inoB, "server", "80"): {1, 1},
		connSeries("opened_total", inoA, "client", "80"): {0, 0}, connSeries("closed_total", inoA, "client", "80"): {0, 0},
	})

	// what the kernel handed to BPF programs of the connections' state
	// changes, per namespace (side)
	witA := witness.Start(t, witness.States, uint32(inoA))
	witB := witness.Start(t, witness.States, uint32(inoB))
	beforeA, beforeB := oracle.Nstat(t, p.A), oracle.Nstat(t, p.B)
	total := 0
	if err := p.A.Do(func() error { // one thread in A for the whole loop
		for _, s := range servers {
			for range s.n {
				c, err := net.DialTimeout("tcp", netip.AddrPortFrom(p.B4, s.port).String(), 5*time.Second)
				if err != nil {
					return err
				}
				if _, err := c.Write([]byte("x")); err != nil {
					return errors.Join(err, c.Close())
				}
				if err := c.Close(); err != nil {
					return err
				}
				total++
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	afterA, afterB := oracle.Nstat(t, p.A), oracle.Nstat(t, p.B)
	if a, b := oracle.Delta(beforeA, afterA, "TcpActiveOpens"), oracle.Delta(beforeB, afterB, "TcpPassiveOpens"); a != uint64(total) || b != uint64(total) {
		t.Fatalf("kernel: TcpActiveOpens +%d TcpPassiveOpens +%d, want %d", a, b, total)
	}
	type side struct {
		ino  uint64
		side string
		wit  *witness.Witness
		c    witness.Counts
		// opens, closes no BPF program ran for
		noOpen, noClose float64
	}
	sides := []*side{{ino: inoA, side: "client", wit: witA}, {ino: inoB, side: "server", wit: witB}}
	// the witness's counts once the closes are done (the servers close
	// after reading the clients' EOF), or stopped growing
	witnessed := func(closes int) {
		for _, x := range sides {
			var last witness.Counts
			for deadline, still := time.Now().Add(10*time.Second), 0; time.Now().Before(deadline) && still < 5; {
				x.c = x.wit.Counts(t)
				if x.c.Closed >= uint64(closes) {
					break
				}
				if x.c.Opened == last.Opened && x.c.Closed == last.Closed {
					still++
				} else {
					still = 0
				}
				last = x.c
				time.Sleep(100 * time.Millisecond)
			}
			x.c.Usable(t)
			x.noOpen = float64(witness.Shortfall(t, x.side+" connections established", uint64(total), x.c.Opened))
			x.noClose = float64(witness.Shortfall(t, x.side+" connections closed", uint64(closes), x.c.Closed))
			witness.Note(t, uint64(x.noOpen+x.noClose), x.side+" connection state changes")
			t.Logf("BPF witness, %s side: %d established, %d closed", x.side, x.c.Opened, x.c.Closed)
		}
	}
	witnessed(total)
	// each class: exact, less what no BPF program ran for
	ranges := func(oldClosed float64) map[string]rng {
		want := map[string]rng{}
		for _, s := range servers {
			for _, x := range sides {
				extra, closed := 0.0, 0.0
				if s.port == 80 {
					extra, closed = 1-oldClosed, oldClosed // the existing connection
				}
				n := float64(s.n)
				want[connSeries("opened_total", x.ino, x.side, s.class)] = rng{n - x.noOpen, n}
				want[connSeries("closed_total", x.ino, x.side, s.class)] = rng{n + closed - x.noOpen - x.noClose, n + closed}
				want[connSeries("active", x.ino, x.side, s.class)] = rng{max(0, extra-x.noClose), extra + x.noClose}
			}
		}
		return want
	}
	// per namespace: the opens add up to the witness's exactly, the
	// closes to its closes less those of connections opened unseen
	sums := func(got map[string]float64, oldClosed float64) {
		for _, x := range sides {
			var opened, closed float64
			for _, s := range servers {
				opened += got[connSeries("opened_total", x.ino, x.side, s.class)]
				closed += got[connSeries("closed_total", x.ino, x.side, s.class)]
			}
			if opened != float64(x.c.Opened) || closed > float64(x.c.Closed) || closed+x.noOpen < float64(x.c.Closed) {
				t.Errorf("%s side: %v opened, %v closed; the BPF witness %d established, %d closed (%v opens no BPF program ran for)",
					x.side, opened, closed, x.c.Opened, x.c.Closed, x.noOpen)
			}
		}
	}
	sums(waitConns(fmt.Sprintf("%d connections", total), ranges(0)), 0)

	// the connection older than netwatcher closes: closed, active 0
	old.Close()
	witnessed(total + 1)
	sums(waitConns("existing connection closed", ranges(1)), 1)

	r.Stop()
	stats := r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "stats" })
	if len(stats) != 1 {
		t.Fatalf("%d stats records", len(stats))
	}
	s := stats[0]
	t.Logf("exit stats: events %v conn_agg_full %v connections %v", s.Num("events"), s.Num("conn_agg_full"), s.Num("connections"))
	// the kernel stayed quiet: not one record for 2 x 2,001 opens and closes
	if s.Num("events") != 0 {
		t.Errorf("netwatcher handled %v records, want 0 (-q --metrics-addr: the kernel counts the connections)", s.Num("events"))
	}
	if s.Num("conn_agg_full") != 0 {
		t.Errorf("conn_agg_full %v", s.Num("conn_agg_full"))
	}
}
