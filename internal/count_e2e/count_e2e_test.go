// Package count_e2e tests -C (protocol counters) end to end: its lines
// against the records of the same run, and against the traffic a test
// makes between two namespaces.
package count_e2e

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

type dir struct{ n, bytes uint64 }

type row struct {
	rx, tx   dir
	requests uint64
}

// num is a count field (0 when null or absent).
func num(ev nwtest.Ev, k string) uint64 {
	if v, ok := ev[k].(float64); ok {
		return uint64(v)
	}
	return 0
}

func (r *row) add(ev nwtest.Ev) {
	r.rx.n += num(ev, "rx")
	r.rx.bytes += num(ev, "rx_bytes")
	r.tx.n += num(ev, "tx")
	r.tx.bytes += num(ev, "tx_bytes")
	r.requests += num(ev, "requests")
}

func (r *row) count(rx bool, bytes uint64) {
	d := &r.tx
	if rx {
		d = &r.rx
	}
	d.n++
	d.bytes += bytes
}

// -C 1 with TCP/HTTP, UDP (DNS), ICMP and DNS traffic between two
// namespaces: every row's total is the sum of its interval lines, and the
// sums of that protocol's records over the whole run (host-wide: other
// traffic counts on both sides alike); the test's own traffic is a lower
// bound of each row.
func TestCountsEqualRecords(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	wit := witness.StartLinks(t, p.A, p.B)
	run := nwtest.Start(t, "-C", "1", "-u", "-I", "-N", "-i", "-a")

	_, web := peer.Serve(t, p.B, "-l", netip.AddrPortFrom(p.B4, 8080).String(), "--http")
	dnsSrv := peer.Start(t, p.B, "dns-serve", "-l", netip.AddrPortFrom(p.B4, 53).String())
	dnsSrv.Expect("READY", 10*time.Second)
	peer.Run(t, p.A, 30*time.Second, "http-get", "-r", web, "-n", "5")
	peer.Run(t, p.A, 30*time.Second, "dns-query", "-r", netip.AddrPortFrom(p.B4, 53).String(), "-n", "6")
	p.A.Run(t, "ping", "-n", "-c", "4", "-i", "0.2", p.B4.String())
	// a full -C interval with the traffic in it, then stop: the totals come
	// after the last records (the flows' exit records included)
	time.Sleep(1500 * time.Millisecond)
	run.Stop()
	// packets of the pair no BPF program ran for (README, "Events no BPF
	// program sees"): each may be one the lower bounds below miss; 0 in
	// most runs
	nobpf := wit.Missed(t)

	var intervals, totals, recs [5]row // tcp udp icmp http dns
	idx := map[string]int{"tcp": 0, "udp": 1, "icmp": 2, "http": 3, "dns": 4}
	seen := map[string]bool{}
	for _, ev := range run.Events() {
		switch ev.Str("type") {
		case "count":
			i, ok := idx[ev.Str("proto")]
			if !ok {
				t.Errorf("row of a protocol that is off: %v", ev)
				continue
			}
			seen[ev.Str("proto")] = true
			if ev.Str("event") == "total" {
				totals[i].add(ev)
			} else {
				intervals[i].add(ev)
			}
		case "packet":
			rx := ev.Num("rx") == 1
			recs[0].count(rx, num(ev, "len"))
			if h := ev.Str("http_info"); h != "" {
				recs[3].count(rx, 0)
				if !strings.HasPrefix(h, "HTTP/") {
					recs[3].requests++
				}
			}
		case "udp_flow":
			recs[1].rx.n += num(ev, "rx_dgrams")
			recs[1].rx.bytes += num(ev, "rx_bytes")
			recs[1].tx.n += num(ev, "tx_dgrams")
			recs[1].tx.bytes += num(ev, "tx_bytes")
		case "icmp":
			recs[2].count(ev.Num("rx") == 1, num(ev, "len"))
		case "dns":
			if ev.Str("event") != "unmatched" {
				recs[4].requests++
			}
		}
	}
	names := []string{"tcp", "udp", "icmp", "http", "dns"}
	for i, name := range names {
		if !seen[name] {
			t.Errorf("%s: no count lines", name)
			continue
		}
		if intervals[i] != totals[i] {
			t.Errorf("%s: total %+v, sum of intervals %+v", name, totals[i], intervals[i])
		}
	}
	// rows against the records (DNS: its records are pairs, not packets)
	for i := 0; i < 4; i++ {
		got, want := totals[i], recs[i]
		if i == 3 {
			got.rx.bytes, got.tx.bytes = 0, 0
		}
		if i < 3 {
			got.requests = 0
		}
		if got != want {
			t.Errorf("%s: counted %+v, records say %+v", names[i], got, want)
		}
	}
	if totals[4].requests != recs[4].requests {
		t.Errorf("dns: %d requests counted, %d query records", totals[4].requests, recs[4].requests)
	}
	// the test's own traffic, seen at both ends (both namespaces are local)
	atLeast := func(what string, got, want uint64) {
		if got+nobpf < want {
			t.Errorf("%s: %d, want at least %d (packets no BPF program ran for %d)", what, got, want, nobpf)
		}
	}
	atLeast("http requests", totals[3].requests, 10) // 5 GETs, client and server
	atLeast("http messages rx", totals[3].rx.n, 10)  // 5 requests in, 5 responses in
	atLeast("icmp rx", totals[2].rx.n, 8)            // 4 requests + 4 replies
	atLeast("icmp tx", totals[2].tx.n, 8)
	atLeast("dns requests", totals[4].requests, 12) // 6 queries, client and server
	atLeast("dns packets rx", totals[4].rx.n, 12)   // 6 queries in, 6 responses in
	atLeast("dns packets tx", totals[4].tx.n, 12)
	atLeast("udp datagrams rx", totals[1].rx.n, 12)
	atLeast("tcp segments rx", totals[0].rx.n, 10)
	// count.log has the same totals
	var logTotals int
	for _, l := range strings.Split(run.File("count.log"), "\n") {
		if strings.Contains(l, `event="total"`) {
			logTotals++
			if strings.Contains(l, `proto="dns"`) && !strings.Contains(l, `requests="`+strconv.FormatUint(totals[4].requests, 10)+`"`) {
				t.Errorf("count.log dns total %q, want requests=%d", l, totals[4].requests)
			}
		}
	}
	if logTotals != 5 {
		t.Errorf("count.log: %d total lines, want 5:\n%s", logTotals, run.File("count.log"))
	}
}
