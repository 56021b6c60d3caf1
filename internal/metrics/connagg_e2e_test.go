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
// returns to 0.
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
	// want: series -> value; waits until every one holds (up to 20 s)
	waitConns := func(what string, want map[string]float64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := scrapeConns(t, target)
			var bad []string
			for k, v := range want {
				if g, ok := got[k]; !ok || g != v {
					bad = append(bad, fmt.Sprintf("%s = %v (present %v), want %v", k, g, ok, v))
				}
			}
			if len(bad) == 0 {
				t.Logf("%s: %d series as expected", what, len(want))
				return
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
	waitConns("existing connection", map[string]float64{
		connSeries("active", inoA, "client", "80"): 1, connSeries("active", inoB, "server", "80"): 1,
		connSeries("opened_total", inoA, "client", "80"): 0, connSeries("closed_total", inoA, "client", "80"): 0,
	})

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
	want := map[string]float64{}
	for _, s := range servers {
		for _, x := range []struct {
			ino  uint64
			side string
		}{{inoA, "client"}, {inoB, "server"}} {
			extra := 0.0
			if s.port == 80 {
				extra = 1 // the existing connection, open throughout
			}
			want[connSeries("opened_total", x.ino, x.side, s.class)] = float64(s.n)
			want[connSeries("closed_total", x.ino, x.side, s.class)] = float64(s.n)
			want[connSeries("active", x.ino, x.side, s.class)] = extra
		}
	}
	waitConns(fmt.Sprintf("%d connections", total), want)
	afterA, afterB := oracle.Nstat(t, p.A), oracle.Nstat(t, p.B)
	if a, b := oracle.Delta(beforeA, afterA, "TcpActiveOpens"), oracle.Delta(beforeB, afterB, "TcpPassiveOpens"); a != uint64(total) || b != uint64(total) {
		t.Fatalf("kernel: TcpActiveOpens +%d TcpPassiveOpens +%d, want %d", a, b, total)
	}

	// the connection older than netwatcher closes: closed, active 0
	old.Close()
	for _, x := range []struct {
		ino  uint64
		side string
	}{{inoA, "client"}, {inoB, "server"}} {
		want[connSeries("closed_total", x.ino, x.side, "80")] = float64(servers[0].n + 1)
		want[connSeries("active", x.ino, x.side, "80")] = 0
	}
	waitConns("existing connection closed", want)

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
