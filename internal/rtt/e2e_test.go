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
// queue it builds is the RTT, 15-35 ms, moving with the congestion
// window). For the sender's socket, ss's rtt: (the kernel's srtt, a moving
// average with gain 1/8 of these very samples) is read every 50 ms; for
// each --interval record of that time, the exact mean of its samples must
// be within 35% of the average of the ss readings in the same interval
// (the srtt lags the samples by ~8 of them, and an interval holds ~20: one
// per round trip), over all those intervals within 15%; the p50 estimate,
// which the log2 buckets only place within a factor of 2, must lie in the
// bucket of that srtt or a neighbouring one.
func TestRttAgainstSS(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	p.TBF(t, true, "8mbit", "16kb", "20ms")
	r := nwtest.Start(t, "--rtt", "--no-packets", "--interval", "500ms")
	_, addr := peer.Serve(t, p.B, "-l", netip.AddrPortFrom(p.B4, 0).String(), "-sink", "-duration", "20s")
	server := netip.MustParseAddrPort(addr)
	bulk := peer.Start(t, p.A, "bulk", "-r", addr, "-bytes", "100000000", "-duration", "5s")

	time.Sleep(1500 * time.Millisecond) // past slow start: the queue is built
	type reading struct {
		at  time.Time
		rtt float64
	}
	var ss []reading
	var client string
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, in := range oracle.SS(t, p.A) {
			if in.Peer == server && in.RTT > 0 {
				ss = append(ss, reading{time.Now(), float64(in.RTT)})
				client = in.Local.String()
			}
		}
	}
	bulk.Wait(wait)
	if len(ss) < 10 {
		t.Fatalf("%d ss readings of the sender socket to %s", len(ss), server)
	}
	netnsA := float64(p.A.Inode(t))
	compared := 0
	var ssAll, nwAll, nwCount, coveredSS float64
	for _, ev := range rttOf(r.Events(), netnsA, "interval", func(e nwtest.Ev) bool { return e.Str("src") == client }) {
		endAt, err := time.Parse(time.RFC3339Nano, ev.Str("time"))
		if err != nil {
			t.Fatal(err)
		}
		var sum, n float64
		for _, x := range ss {
			if x.at.After(endAt.Add(-500*time.Millisecond)) && !x.at.After(endAt) {
				sum, n = sum+x.rtt, n+1
			}
		}
		if n < 5 {
			continue // an interval the readings do not cover
		}
		compared++
		srtt := sum / n
		mean, p50, count := ev.Num("mean_us"), ev.Num("p50_us"), ev.Num("count")
		t.Logf("ss rtt %.0f us (%v readings); netwatcher: %v samples, mean %.1f us, p50 %.1f us, p99 %v us, min/max %v/%v",
			srtt, n, count, mean, p50, ev.Num("p99_us"), ev.Num("min_us"), ev.Num("max_us"))
		if srtt < 2000 {
			t.Fatalf("ss rtt %.0f us: the tbf queue did not build (test setup)", srtt)
		}
		if count <= 0 || mean < srtt*0.65 || mean > srtt*1.35 {
			t.Errorf("interval mean %.1f us (%v samples), ss srtt %.0f us: not within 35%%", mean, count, srtt)
		}
		ssAll, nwAll, nwCount = ssAll+sum, nwAll+mean*count, nwCount+count
		coveredSS += n
		if d := bucketOf(p50) - bucketOf(srtt); d < -1 || d > 1 {
			t.Errorf("p50 %.1f us in bucket %d, ss srtt %.0f us in bucket %d", p50, bucketOf(p50), srtt, bucketOf(srtt))
		}
		// the buckets add up to the count, and p50/p99 lie within min/max
		sumB := 0.0
		for _, b := range ev["buckets"].([]any) {
			sumB += b.(float64)
		}
		if sumB != count || p50 < ev.Num("min_us") || ev.Num("p99_us") > ev.Num("max_us") || p50 > ev.Num("p99_us") {
			t.Errorf("inconsistent record: buckets sum %v count %v, p50 %v p99 %v min %v max %v", sumB, count, p50, ev.Num("p99_us"), ev.Num("min_us"), ev.Num("max_us"))
		}
	}
	if compared < 3 {
		t.Fatalf("%d interval records compared with ss, want at least 3", compared)
	}
	ssMean, nwMean := ssAll/coveredSS, nwAll/nwCount
	t.Logf("over %d intervals: ss rtt %.0f us, netwatcher mean %.0f us (%v samples)", compared, ssMean, nwMean, nwCount)
	if nwMean < ssMean*0.85 || nwMean > ssMean*1.15 {
		t.Errorf("mean of the samples %.0f us, mean ss rtt %.0f us: not within 15%%", nwMean, ssMean)
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
