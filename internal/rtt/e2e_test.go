package rtt_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
)

const wait = 10 * time.Second

func rttOf(evs []nwtest.Ev, netns float64, kind string, pred func(nwtest.Ev) bool) []nwtest.Ev {
	var out []nwtest.Ev
	for _, e := range evs {
		if e.Str("type") == "rtt" && e.Num("netns") == netns && e.Str("event") == kind && (pred == nil || pred(e)) {
			out = append(out, e)
		}
	}
	return out
}

// bucketOf is the log2 bucket of us µs (bucket i: [2^i, 2^(i+1))).
func bucketOf(us float64) int {
	i := 0
	for v := uint64(us); v > 1; v >>= 1 {
		i++
	}
	return i
}

// TestRttAgainstSS: a bulk flow through a tbf qdisc (rate-limited: the
// queue it builds is the RTT, several ms, steady). For the sender's socket,
// the interval record closest to the moment ss is read must agree with the
// kernel's srtt that ss prints (rtt:): the srtt is a moving average (gain
// 1/8) of these very samples, so the exact mean of one interval's samples
// must be within 25% of it, and the p50 estimate, which the log2 buckets
// only place within a factor of 2, must lie in the bucket that holds the
// srtt or a neighbouring one.
func TestRttAgainstSS(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	p.TBF(t, true, "8mbit", "16kb", "20ms")
	r := nwtest.Start(t, "--rtt", "--no-packets", "--interval", "500ms")
	_, addr := peer.Serve(t, p.B, "-l", netip.AddrPortFrom(p.B4, 0).String(), "-sink", "-duration", "20s")
	server := netip.MustParseAddrPort(addr)
	bulk := peer.Start(t, p.A, "bulk", "-r", addr, "-bytes", "100000000", "-duration", "4s")

	time.Sleep(2500 * time.Millisecond) // past slow start: the queue is built
	infos := oracle.SS(t, p.A)
	var ss oracle.TCPInfo
	for _, in := range infos {
		if in.Peer == server {
			ss = in
		}
	}
	ssAt := time.Now()
	if ss.RTT == 0 {
		t.Fatalf("no sender socket to %s in ss: %+v", server, infos)
	}
	netnsA := float64(p.A.Inode(t))
	client := ss.Local.String()
	// the interval record that ends right after the ss read
	ev := r.WaitFor(wait, "rtt interval after ss", func(e nwtest.Ev) bool {
		if e.Str("type") != "rtt" || e.Num("netns") != netnsA || e.Str("src") != client || e.Str("event") != "interval" {
			return false
		}
		at, err := time.Parse(time.RFC3339Nano, e.Str("time"))
		return err == nil && at.After(ssAt)
	})
	bulk.Wait(wait)
	srtt := float64(ss.RTT)
	mean, p50, n := ev.Num("mean_us"), ev.Num("p50_us"), ev.Num("count")
	t.Logf("ss rtt %.0f us; netwatcher interval: %v samples, mean %.1f us, p50 %.1f us, p99 %v us, min/max %v/%v",
		srtt, n, mean, p50, ev.Num("p99_us"), ev.Num("min_us"), ev.Num("max_us"))
	if srtt < 2000 {
		t.Fatalf("ss rtt %.0f us: the tbf queue did not build (test setup)", srtt)
	}
	if n <= 0 || mean < srtt*0.75 || mean > srtt*1.25 {
		t.Errorf("interval mean %.1f us (%v samples), ss srtt %.0f us: not within 25%%", mean, n, srtt)
	}
	if d := bucketOf(p50) - bucketOf(srtt); d < -1 || d > 1 {
		t.Errorf("p50 %.1f us in bucket %d, ss srtt %.0f us in bucket %d", p50, bucketOf(p50), srtt, bucketOf(srtt))
	}
	// the buckets add up to the count, and p50/p99 lie within min/max
	sum := 0.0
	for _, b := range ev["buckets"].([]any) {
		sum += b.(float64)
	}
	if sum != n || p50 < ev.Num("min_us") || ev.Num("p99_us") > ev.Num("max_us") || p50 > ev.Num("p99_us") {
		t.Errorf("inconsistent record: buckets sum %v count %v, p50 %v p99 %v min %v max %v", sum, n, p50, ev.Num("p99_us"), ev.Num("min_us"), ev.Num("max_us"))
	}
	r.Stop()
}

// TestRttEveryConnectionHasSamples: short request/response connections;
// every one, on both sides, gets a close record with samples (one per
// round trip: the connecting side has at least one per exchange).
// With -s only the server's sockets are traced.
func TestRttEveryConnectionHasSamples(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	_, addr := peer.Serve(t, p.B, "-l", netip.AddrPortFrom(p.B4, 0).String(), "-echo", "-duration", "20s")
	server := netip.MustParseAddrPort(addr)
	for _, filtered := range []bool{false, true} {
		t.Run(fmt.Sprintf("sport_filter=%v", filtered), func(t *testing.T) {
			args := []string{"--rtt", "--no-packets", "-a"}
			if filtered {
				args = append(args, "-s", strconv.Itoa(int(server.Port())))
			}
			r := nwtest.Start(t, args...)
			out := peer.Run(t, p.A, 20*time.Second, "rr", "-r", addr, "-c", "4", "-duration", "500ms")
			var ops float64
			for _, l := range out {
				fmt.Sscanf(l, "rr ops=%v", &ops)
			}
			netnsA, netnsB := float64(p.A.Inode(t)), float64(p.B.Inode(t))
			// wait for the server side's closes (the last records)
			r.WaitFor(wait, "server close records", func(e nwtest.Ev) bool {
				return len(rttOf(r.Events(), netnsB, "close", nil)) >= 4
			})
			time.Sleep(300 * time.Millisecond)
			r.Stop()
			evs := r.Events()
			clients := rttOf(evs, netnsA, "close", nil)
			servers := rttOf(evs, netnsB, "close", nil)
			conns := 0
			for _, e := range evs {
				if e.Str("type") == "connection" && e.Str("event") == "open" && (e.Num("netns") == netnsA || e.Num("netns") == netnsB) {
					conns++
				}
			}
			t.Logf("%d connections opened; close records: %d client, %d server", conns, len(clients), len(servers))
			if len(servers) != 4 {
				t.Errorf("%d server-side close records, want 4", len(servers))
			}
			for _, e := range append(clients, servers...) {
				if e.Num("count") <= 0 || e.Num("conn_id") <= 0 || e.Str("source") != "mrtt" {
					t.Errorf("close record without samples or connection: %v", e)
				}
			}
			if filtered {
				if len(clients) != 0 || len(rttOf(evs, netnsA, "interval", nil)) != 0 {
					t.Errorf("-s %d: %d client-side records, want none", server.Port(), len(clients))
				}
				for _, e := range rttOf(evs, netnsB, "close", nil) {
					if e.Str("src") != addr {
						t.Errorf("-s %d: record of %s", server.Port(), e.Str("src"))
					}
				}
				return
			}
			if len(clients) != 4 {
				t.Errorf("%d client-side close records, want 4", len(clients))
			}
			// one sample per round trip: each exchange is one, the SYN one more
			var samples float64
			for _, e := range clients {
				samples += e.Num("count")
			}
			if ops <= 0 || samples < ops {
				t.Errorf("client samples %v, exchanges %v: want at least one sample per exchange", samples, ops)
			}
			t.Logf("client samples %v for %v exchanges", samples, ops)
		})
	}
}
