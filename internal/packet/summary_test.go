package packet_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
)

// TestSummaryCountsEqualRecords: --summary -t makes no packet record, and
// its exit histograms count exactly what a run without --summary records
// of the same traffic (a second netwatcher, -t, beside it): per layer the
// timed and missing ones; and its segment and byte counts (the sockets'
// own counters) are the records' too: messages of 100 bytes are one
// segment (one skb) each, so the wire segments and the records agree,
// and the bytes received count the client's FIN once more (its sequence
// number; none if the client reset the connection). The segments are the workload's round trips (one segment
// each way per round trip, seen at the server end).
func TestSummaryCountsEqualRecords(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	_, saddr := peer.Serve(t, p.B, "-l", addr(p.B4), "--echo")
	sport := fmt.Sprint(netip.MustParseAddrPort(saddr).Port())
	// -s: the server's end only (other tests on the host make traffic too)
	sum := nwtest.Start(t, "--summary", "-t", "-s", sport, "--interval", "200ms")
	rec := nwtest.Start(t, "-t", "-s", sport)
	out := peer.Run(t, p.A, 30*time.Second, "rr", "-r", saddr, "-c", "1", "--size", "100", "--duration", "300ms")
	ops := -1
	for _, l := range out {
		if _, after, ok := strings.Cut(l, "ops="); ok {
			ops, _ = strconv.Atoi(strings.Fields(after)[0])
		}
	}
	if ops <= 0 {
		t.Fatalf("no round trips: %q", out)
	}
	time.Sleep(500 * time.Millisecond) // the connection's close and last copies
	sum.Stop()
	rec.Stop()

	// what the recording run saw, per direction: segments, bytes, per layer timed
	type dirCount struct {
		segs, bytes int
		timed       map[string]int
	}
	want := map[string]*dirCount{"rx": {timed: map[string]int{}}, "tx": {timed: map[string]int{}}}
	for _, e := range rec.Events() {
		switch e.Str("type") {
		case "packet":
			d := want["tx"]
			if e.Num("rx") == 1 {
				d = want["rx"]
			}
			d.segs++
			d.bytes += int(e.Num("len"))
			for _, l := range []string{"mac", "ip", "tcp"} {
				if e[l+"_time_ns"] != nil {
					d.timed[l]++
				}
			}
		case "stats":
			if n := lost(e); n != 0 {
				t.Fatalf("the recording run lost %d records: no oracle", n)
			}
		}
	}
	// the workload: every request (and its echo) is one data segment at
	// the server; the client may have written one more request when its
	// time ran out (its echo unread, not counted in ops)
	for _, d := range []string{"rx", "tx"} {
		if n := want[d].segs; n < ops || n > ops+1 {
			t.Errorf("recording run: %d %s segments for %d round trips", n, d, ops)
		}
	}

	seen := map[string]bool{}
	intervals := 0
	for _, e := range sum.Events() {
		switch e.Str("type") {
		case "packet":
			t.Fatalf("--summary made a packet record: %v", e)
		case "stats":
			if n := lost(e); n != 0 {
				t.Errorf("summary run lost %d records", n)
			}
		case "layer_summary":
			if e.Str("event") != "exit" {
				intervals++
				continue
			}
			dir, layer := e.Str("direction"), e.Str("layer")
			seen[dir+" "+layer] = true
			w := want[dir]
			if w == nil {
				t.Fatalf("direction %q: %v", dir, e)
			}
			fin := 0
			if dir == "rx" && int(e.Num("bytes")) == w.bytes+1 {
				fin = 1 // the client's FIN (a reset instead when it closed with an echo unread)
			}
			if int(e.Num("segments")) != w.segs || int(e.Num("bytes")) != w.bytes+fin {
				t.Errorf("%s %s: segments %v bytes %v, the records: %d segments, %d bytes (+%d FIN)", dir, layer, e.Num("segments"), e.Num("bytes"), w.segs, w.bytes, fin)
			}
			if c, m := int(e.Num("count")), int(e.Num("missing")); c != w.timed[layer] || c+m != w.segs {
				t.Errorf("%s %s: count %d missing %d, the records: %d timed of %d", dir, layer, c, m, w.timed[layer], w.segs)
			}
			if layer == "tcp" && e.Num("count") < float64(ops) {
				t.Errorf("%s tcp: %v timed of %d round trips", dir, e.Num("count"), ops)
			}
			if e.Num("count") > 0 && !(e.Num("p50_us") > 0 && e.Num("p50_us") <= e.Num("p99_us") && e.Num("p99_us") <= e.Num("max_us")) {
				t.Errorf("%s %s: p50 %v p99 %v max %v out of order", dir, layer, e.Num("p50_us"), e.Num("p99_us"), e.Num("max_us"))
			}
		}
	}
	if len(seen) != 6 {
		t.Errorf("exit summaries for %v, want rx/tx x mac/ip/tcp", seen)
	}
	if intervals == 0 {
		t.Error("no interval summary during a 300 ms workload at --interval 200ms")
	}
	if log := sum.File("summary.log"); !strings.Contains(log, `layer_summary{event="exit",direction="rx",layer="mac",segments="`+fmt.Sprint(want["rx"].segs)+`"`) {
		t.Errorf("summary.log without the rx exit line:\n%s", log)
	}
	if pk := sum.File("packets.log"); pk != "" {
		t.Errorf("packets.log written in summary mode: %.200s", pk)
	}
	t.Logf("%d round trips; rx %d segments, tx %d; %d interval records", ops, want["rx"].segs, want["tx"].segs, intervals)
}
