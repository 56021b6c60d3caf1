package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// freePort is a loopback TCP port nobody listens on (now).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// promServer is a real Prometheus scraping target every second.
type promServer struct {
	base string // http://127.0.0.1:port
}

func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: netwatcher
    static_configs:
      - targets: ['%s']
`, target)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var log bytes.Buffer
	cmd := exec.Command("prometheus", "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	})
	s := &promServer{base: "http://" + addr}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case <-done:
			t.Fatalf("prometheus exited: %s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 20 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// query runs an instant PromQL query; ok is false when the result is
// empty. It expects at most one series (use sum()).
func (s *promServer) query(t *testing.T, q string) (v float64, ok bool) {
	t.Helper()
	resp, err := http.Get(s.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v %s %s", q, err, r.Status, r.Error)
	}
	if len(r.Data.Result) == 0 {
		return 0, false
	}
	if len(r.Data.Result) > 1 {
		t.Fatalf("query %s: %d series", q, len(r.Data.Result))
	}
	f, err := strconv.ParseFloat(r.Data.Result[0].Value[1].(string), 64)
	if err != nil {
		t.Fatal(err)
	}
	return f, true
}

// check is one query and the number it must return.
type check struct {
	what, q string
	want    float64
}

// waitEqual polls Prometheus until every check holds (up to 20 s: the
// scrape is every second), then reports each.
func (s *promServer) waitEqual(t *testing.T, checks func() []check) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cs := checks()
		bad := 0
		var lines []string
		for _, c := range cs {
			v, ok := s.query(t, c.q)
			if !ok || v != c.want {
				bad++
			}
			lines = append(lines, fmt.Sprintf("%s: %s = %v (present %v), oracle %v", c.what, c.q, v, ok, c.want))
		}
		if bad == 0 || time.Now().After(deadline) {
			for _, l := range lines {
				t.Log(l)
			}
			if bad > 0 {
				t.Errorf("%d of %d metrics differ from their oracle after 20 s", bad, len(cs))
			}
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestPrometheusOracle: netwatcher -r -k -P --metrics-addr scraped by a
// real Prometheus every second while a pair of namespaces makes N short
// connections to port 80 and one bulk transfer with 1 in 5 packets
// dropped by nft at the receiver. Prometheus' answers must equal: the
// kernel's own counters (TcpActiveOpens/TcpPassiveOpens: connections per
// side; TcpRetransSegs: retransmitted segments), netwatcher's records of
// the same run (drops by reason, handshakes, retransmission episodes)
// and nft's drop count. Retransmitted segments and NETFILTER_DROP drops
// are the kernel's counts less the events its tracepoint handed to no BPF
// program (measured by a witness program of the test's own, bpfWitness).
// promtool check metrics passes on a scrape.
func TestPrometheusOracle(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "nft", "prometheus", "promtool")
	p := nstest.NewPair(t)
	p.NoSegmentOffload(t, true) // losses repaired by fast retransmits
	subnet := netip.PrefixFrom(p.A4, 24).Masked()
	mport := freePort(t)
	target := fmt.Sprintf("127.0.0.1:%d", mport)
	// -S: the pair's traffic only (the host's other tests run meanwhile).
	r := nwtest.Start(t, "-S", subnet.String(), "--no-packets", "-r", "-k", "-P", "--metrics-addr", target)
	prom := startPrometheus(t, target)
	inoA, inoB := p.A.Inode(t), p.B.Inode(t)
	wit := startWitness(t, uint32(inoA), uint32(inoB))
	beforeA, beforeB := oracle.Nstat(t, p.A), oracle.Nstat(t, p.B)

	const n = 20
	for i := range n {
		c := lab.Dial(t, p, false, 80, 0)
		if err := c.RoundTrip(1000, byte(i)); err != nil {
			t.Fatal(err)
		}
		c.Client.Close()
		c.Server.Close()
	}
	c := lab.Dial(t, p, false, 80, 0)
	finish := c.Bulk(t)
	time.Sleep(200 * time.Millisecond)
	// The transfer ends while the rule is still there: nft's counter,
	// read just before the rule goes, then has every drop of the flow.
	type dropped struct {
		res *fault.DropResult
		err error
	}
	dc := make(chan dropped, 1)
	ctx, stopDrop := context.WithCancel(lab.Ctx(t))
	defer stopDrop()
	go func() {
		res, err := fault.Drop(ctx, fault.DropOptions{Netns: p.B.Name, Flow: c.Flow(), Every: 5, Out: lab.Log(t)})
		dc <- dropped{res, err}
	}()
	time.Sleep(800 * time.Millisecond)
	sent := finish() // every byte delivered: nothing more on the flow
	stopDrop()
	dr := <-dc
	if dr.err != nil {
		t.Fatal(dr.err)
	}
	res := dr.res
	c.Client.Close()
	c.Server.Close()
	conns := n + 1
	// Both sockets closed: wait for the close records of the last one.
	r.WaitFor(lab.Wait, "close of the bulk connection", func(e nwtest.Ev) bool {
		return e.Str("type") == "connection" && e.Str("event") == "close" && e.Str("src") == c.ServerAddr.String()
	})
	afterA, afterB := oracle.Nstat(t, p.A), oracle.Nstat(t, p.B)
	d := func(key string) float64 {
		return float64(oracle.Delta(beforeA, afterA, key) + oracle.Delta(beforeB, afterB, key))
	}
	t.Logf("%d connections, bulk sent %d bytes, nft dropped %d; kernel: TcpActiveOpens +%d (A) TcpPassiveOpens +%d (B) TcpRetransSegs +%v TCPSackRecovery+TCPRenoRecovery +%v TCPTimeouts +%v",
		conns, sent, res.Dropped, oracle.Delta(beforeA, afterA, "TcpActiveOpens"), oracle.Delta(beforeB, afterB, "TcpPassiveOpens"),
		d("TcpRetransSegs"), d("TcpExtTCPSackRecovery")+d("TcpExtTCPRenoRecovery"), d("TcpExtTCPTimeouts"))
	if res.Dropped == 0 || d("TcpRetransSegs") == 0 {
		t.Fatalf("no loss induced (nft dropped %d, TcpRetransSegs +%v)", res.Dropped, d("TcpRetransSegs"))
	}
	if a, b := oracle.Delta(beforeA, afterA, "TcpActiveOpens"), oracle.Delta(beforeB, afterB, "TcpPassiveOpens"); a != uint64(conns) || b != uint64(conns) {
		t.Fatalf("workload: TcpActiveOpens +%d TcpPassiveOpens +%d, want %d", a, b, conns)
	}
	// What the kernel ran BPF programs for (see bpfWitness): the kernel
	// counts some events whose tracepoint runs no BPF program (bursts of a
	// few ms under load, in no program's recursion_misses); netwatcher
	// must report every other one.
	witDrops, witRtx, witSegs, witUnsure := wit.counts(t)
	t.Logf("BPF witness: NETFILTER_DROP %d (nft %d: %d never reached a BPF program), retransmits %d, segments %d (TcpRetransSegs %v: %v never reached a BPF program), unsure %d",
		witDrops, res.Dropped, int64(res.Dropped)-int64(witDrops), witRtx, witSegs, d("TcpRetransSegs"), d("TcpRetransSegs")-float64(witSegs), witUnsure)
	if witUnsure != 0 || witDrops > res.Dropped || float64(witSegs) > d("TcpRetransSegs") {
		t.Fatalf("BPF witness not usable: %d runs uncounted, NETFILTER_DROP %d (nft %d), segments %d (kernel %v)", witUnsure, witDrops, res.Dropped, witSegs, d("TcpRetransSegs"))
	}

	// The records of the same run (counted when asked: the checks are
	// polled until the metrics have caught up with them).
	records := func() (drops map[string]float64, handshakes, fast, timeout float64) {
		drops = map[string]float64{}
		for _, e := range r.Events() {
			switch e.Str("type") {
			case "drop":
				drops[e.Str("reason")]++
			case "tcpstate":
				if e.Num("handshake") == 1 && e.Has("duration_ns") && e.Num("duration_ns") > 0 && e.Str("old") == "SYN_SENT" {
					handshakes++
				}
			case "retrans":
				switch e.Str("kind") {
				case "fast":
					fast++
				case "timeout":
					timeout++
				}
			}
		}
		return
	}
	prom.waitEqual(t, func() []check {
		drops, hs, fast, timeout := records()
		cs := []check{
			{"client connections opened (kernel TcpActiveOpens)", fmt.Sprintf(`sum(netwatcher_connections_opened_total{netns="%d",side="client",port="80"})`, inoA), float64(conns)},
			{"server connections opened (kernel TcpPassiveOpens)", fmt.Sprintf(`sum(netwatcher_connections_opened_total{netns="%d",side="server",port="80"})`, inoB), float64(conns)},
			{"connections closed (workload)", `sum(netwatcher_connections_closed_total{port="80"})`, float64(2 * conns)},
			{"connections active (workload: none)", `sum(netwatcher_connections_active{port="80"})`, 0},
			{"connections of other port classes (none)", `sum(netwatcher_connections_opened_total{port!="80"}) or vector(0)`, 0},
			// what the kernel counted (TcpRetransSegs, nft's counter)
			// less what it never handed to a BPF program (the witness's
			// shortfall): exactly, but for the runs the kernel skipped
			// of netwatcher's own programs (recursion misses, counted)
			{"retransmitted segments (kernel TcpRetransSegs, as BPF saw them): not more", fmt.Sprintf(`clamp_min(netwatcher_tcp_retransmitted_segments_total, %d)`, witSegs), float64(witSegs)},
			{"retransmitted segments (kernel TcpRetransSegs, as BPF saw them): not fewer, but for recursion misses", fmt.Sprintf(`clamp_max(netwatcher_tcp_retransmitted_segments_total + scalar(sum(netwatcher_lost_events_total{counter="bpf_recursion_misses"})), %d)`, witSegs), float64(witSegs)},
			{"fast retransmit episodes (retrans records)", `netwatcher_tcp_retransmit_episodes_total{kind="fast"}`, fast},
			{"timeout retransmit episodes (retrans records)", `netwatcher_tcp_retransmit_episodes_total{kind="timeout"}`, timeout},
			{"client handshakes (tcpstate records)", `netwatcher_tcp_handshake_seconds_count{side="client"}`, hs},
			{"client handshakes (workload)", `netwatcher_tcp_handshake_seconds_count{side="client"}`, float64(conns)},
			{"server handshakes (workload)", `netwatcher_tcp_handshake_seconds_count{side="server"}`, float64(conns)},
			{"handshakes under 1 s (le bucket)", `netwatcher_tcp_handshake_seconds_bucket{side="client",le="1.31072"}`, float64(conns)},
			{"NETFILTER_DROP drops (nft's counter, as BPF saw them): not more", fmt.Sprintf(`clamp_min(sum(netwatcher_packet_drops_total{reason="NETFILTER_DROP"}), %d)`, witDrops), float64(witDrops)},
			{"NETFILTER_DROP drops (nft's counter, as BPF saw them): not fewer, but for recursion misses", fmt.Sprintf(`clamp_max(sum(netwatcher_packet_drops_total{reason="NETFILTER_DROP"}) + scalar(sum(netwatcher_lost_events_total{counter="bpf_recursion_misses"})), %d)`, witDrops), float64(witDrops)},
			{"drop reasons (drop records)", `count(netwatcher_packet_drops_total) or vector(0)`, float64(len(drops))},
		}
		for reason, k := range drops {
			cs = append(cs, check{"drops " + reason + " (drop records)", fmt.Sprintf(`sum(netwatcher_packet_drops_total{reason=%q})`, reason), k})
		}
		return cs
	})

	// promtool check metrics on a scrape: it prints what it finds wrong.
	resp, err := http.Get("http://" + target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(scrape), "\n") {
		if strings.HasPrefix(l, "netwatcher_connections_opened_total") || strings.HasPrefix(l, "netwatcher_tcp_retransmit") ||
			strings.HasPrefix(l, "netwatcher_packet_drops_total") || strings.HasPrefix(l, "netwatcher_tcp_handshake_seconds_count") ||
			strings.HasPrefix(l, "netwatcher_lost_events_total") || strings.HasPrefix(l, "netwatcher_bpf_map_memory_bytes") {
			t.Logf("scrape: %s", l)
		}
	}
	for _, q := range []string{`sum by (side) (netwatcher_connections_opened_total{port="80"})`,
		`histogram_quantile(0.99, sum by (le) (rate(netwatcher_tcp_handshake_seconds_bucket[1m])))`} {
		resp, err := http.Get(prom.base + "/api/v1/query?query=" + url.QueryEscape(q))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("PromQL %s -> %s", q, body)
		}
	}
	r.Stop()
	lab.CheckNoLoss(t, r)
}

// TestPrometheusRequests: netwatcher -i --rst --rtt --metrics-addr scraped
// by Prometheus while namespace A makes 30 HTTP requests (one connection
// each) to a server in B, aborts 3 connections (SO_LINGER 0: a reset each
// way) and connects twice to a closed port (reset from B). The request
// latency histograms count 30 at each side (= the http records), resets =
// the rst records by direction and the BPF witness's resets exactly (sent:
// the kernel's TcpOutRsts, received: the workload's, less what no BPF
// program ran for, README "Events no BPF program sees": 0 in most runs);
// the RTT histogram's count = the samples of the rtt records at close.
func TestPrometheusRequests(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "prometheus", "promtool", "dnsmasq", "dig", "redis-server", "redis-cli")
	p := nstest.NewPair(t)
	subnet := netip.PrefixFrom(p.A4, 24).Masked()
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dnsServer(t, p) // before the run: the readiness queries are not counted
	redisServer(t, p)
	r := nwtest.Start(t, "-S", subnet.String(), "-i", "-N", "-R", "--rst", "--rtt", "--metrics-addr", target)
	prom := startPrometheus(t, target)
	wit := witness.Start(t, witness.Resets, uint32(p.A.Inode(t)), uint32(p.B.Inode(t)))
	beforeA, beforeB := oracle.Nstat(t, p.A), oracle.Nstat(t, p.B)

	var ln net.Listener
	if err := p.B.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(p.B4, 80).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		io.WriteString(w, "ok\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = p.A.Do(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
	const requests = 30
	for i := range requests {
		resp, err := client.Get(fmt.Sprintf("http://%s/%d", netip.AddrPortFrom(p.B4, 80), i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	const queries = 6 // 5 over UDP, 1 over TCP
	for i := range queries {
		args := []string{"+tries=1", "+time=5", "+short", "@" + p.B4.String(), "h.nwtest", "A"}
		if i == queries-1 {
			args = append(args, "+tcp")
		}
		if out, err := p.A.Cmd("dig", args...).Output(); err != nil || strings.TrimSpace(string(out)) != "10.1.2.3" {
			t.Fatalf("dig %v: %v %s", args, err, out)
		}
	}
	const pings = 10 // one redis-cli connection
	if out, err := p.A.Cmd("redis-cli", "-h", p.B4.String(), "-r", strconv.Itoa(pings), "PING").Output(); err != nil || strings.Count(string(out), "PONG") != pings {
		t.Fatalf("redis-cli: %v %s", err, out)
	}
	const aborts, refused = 3, 2
	for range aborts {
		c := lab.Dial(t, p, false, 81, 0)
		if err := c.RoundTrip(100, 1); err != nil {
			t.Fatal(err)
		}
		c.Client.SetLinger(0)
		c.Client.Close() // RST A -> B
		c.Server.Close()
	}
	for range refused {
		err := p.A.Do(func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(p.B4, 9).String(), 2*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("connect to a closed port: %v", err)
		}
	}
	time.Sleep(500 * time.Millisecond) // the last closes' records
	afterA, afterB := oracle.Nstat(t, p.A), oracle.Nstat(t, p.B)
	outRsts := float64(oracle.Delta(beforeA, afterA, "TcpOutRsts") + oracle.Delta(beforeB, afterB, "TcpOutRsts"))
	wc := wit.Counts(t)
	wc.Usable(t)
	t.Logf("%d requests served, %d aborted and %d refused connections; kernel: TcpOutRsts +%v; BPF witness: %d resets sent, %d received", served.Load(), aborts, refused, outRsts, wc.RstSent, wc.RstRecv)
	missed := witness.Shortfall(t, "resets sent", uint64(outRsts), wc.RstSent) + witness.Shortfall(t, "resets received", aborts+refused, wc.RstRecv)
	witness.Note(t, missed, "resets")
	if served.Load() != requests {
		t.Fatalf("server answered %d requests, want %d", served.Load(), requests)
	}

	records := func() (http, dns, redis, sent, received, rtt float64) {
		for _, e := range r.Events() {
			switch e.Str("type") {
			case "redis":
				if e.Str("event") == "answer" {
					redis++
				}
			case "dns":
				if e.Str("event") == "answer" {
					dns++
				}
			case "http":
				if !e.Has("interim") || e["interim"] == false {
					http++
				}
			case "rst":
				if e.Str("dir") == "sent" {
					sent++
				} else {
					received++
				}
			case "rtt":
				if e.Str("event") == "close" {
					rtt += e.Num("count")
				}
			}
		}
		return
	}
	prom.waitEqual(t, func() []check {
		http, dns, redis, sent, received, rtt := records()
		cs := []check{
			{"Redis commands, client side (workload)", `netwatcher_request_duration_seconds_count{protocol="redis",side="client"}`, pings},
			{"Redis commands, server side (workload)", `netwatcher_request_duration_seconds_count{protocol="redis",side="server"}`, pings},
			{"Redis commands (redis answer records)", `sum(netwatcher_request_duration_seconds_count{protocol="redis"})`, redis},
			{"DNS queries, client side (workload)", `netwatcher_request_duration_seconds_count{protocol="dns",side="client"}`, queries},
			{"DNS queries, server side (workload)", `netwatcher_request_duration_seconds_count{protocol="dns",side="server"}`, queries},
			{"DNS queries (dns answer records)", `sum(netwatcher_request_duration_seconds_count{protocol="dns"})`, dns},
			{"HTTP requests, client side (workload)", `netwatcher_request_duration_seconds_count{protocol="http",side="client"}`, requests},
			{"HTTP requests, server side (workload)", `netwatcher_request_duration_seconds_count{protocol="http",side="server"}`, requests},
			{"HTTP requests (http records)", `sum(netwatcher_request_duration_seconds_count{protocol="http"})`, http},
			{"HTTP requests under 5 s (le bucket)", `sum(netwatcher_request_duration_seconds_bucket{protocol="http",le="5.24288"})`, 2 * requests},
			{"resets sent (BPF witness: kernel TcpOutRsts less what no BPF program ran for)", `sum(netwatcher_tcp_resets_total{direction="sent"})`, float64(wc.RstSent)},
			{"resets sent (rst records)", `sum(netwatcher_tcp_resets_total{direction="sent"})`, sent},
			{"resets received (rst records)", `sum(netwatcher_tcp_resets_total{direction="received"})`, received},
			{"resets received (BPF witness: workload less what no BPF program ran for)", `sum(netwatcher_tcp_resets_total{direction="received"})`, float64(wc.RstRecv)},
			{"RTT samples (rtt records at close)", `netwatcher_tcp_rtt_seconds_count`, rtt},
		}
		if missed == 0 { // else one of them may be the one missed
			cs = append(cs, check{"resets sent for no socket (workload: refused)", `sum(netwatcher_tcp_resets_total{direction="sent",state="none"})`, refused})
		}
		return cs
	})
	if v, ok := prom.query(t, `netwatcher_tcp_rtt_seconds_count`); !ok || v == 0 {
		t.Errorf("no RTT samples (%v %v)", v, ok)
	}
	r.Stop()
	lab.CheckNoLoss(t, r)
}

// dnsServer runs dnsmasq in p.B on B4, port 53, answering h.nwtest (as
// internal/dns's test does); killed at cleanup.
func dnsServer(t *testing.T, p *nstest.Pair) {
	t.Helper()
	cmd := p.B.Cmd("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--user=root", "--group=root", "--pid-file=", "--bind-interfaces", "--listen-address="+p.B4.String(), "--port=53",
		"--local=/nwtest/", "--host-record=h.nwtest,10.1.2.3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		out, err := p.A.Cmd("dig", "+short", "+tries=1", "+time=1", "@"+p.B4.String(), "h.nwtest", "A").Output()
		if err == nil && strings.TrimSpace(string(out)) == "10.1.2.3" {
			return
		}
		if i == 50 {
			t.Fatalf("dnsmasq does not answer: %v %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// redisServer runs redis-server in p.B on B4:6379 (as internal/redis's
// test does); killed at cleanup.
func redisServer(t *testing.T, p *nstest.Pair) {
	t.Helper()
	cmd := p.B.Cmd("redis-server", "--port", "6379", "--bind", p.B4.String(), "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--protected-mode", "no", "--dir", t.TempDir(), "--logfile", "")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		out, err := p.A.Cmd("redis-cli", "-h", p.B4.String(), "ping").Output()
		if err == nil && strings.TrimSpace(string(out)) == "PONG" {
			return
		}
		if i == 100 {
			t.Fatalf("redis-server does not answer: %v %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMetricsAddrRefused: a non-loopback --metrics-addr without
// --metrics-allow-remote is a usage error (one stderr line, exit 2); a
// port in use stops the run at start (exit 1), saying so.
func TestMetricsAddrRefused(t *testing.T) {
	bin := nwtest.Binary(t)
	run := func(args ...string) (string, int) {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, append([]string{"--data-dir", t.TempDir(), "--duration", "5s"}, args...)...)
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return stderr.String(), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return stderr.String(), 0
	}
	for _, addr := range []string{"0.0.0.0:9433", ":9433", "[::]:9433", "198.18.0.1:9433", "127.0.0.1:port"} {
		errOut, code := run("--metrics-addr", addr)
		if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--metrics-addr") {
			t.Errorf("--metrics-addr %s: exit %d, stderr %q (want 2 and one line)", addr, code, errOut)
		}
	}
	nstest.RequireRoot(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errOut, code := run("-q", "--metrics-addr", ln.Addr().String())
	if code != 1 || !strings.Contains(errOut, "address already in use") {
		t.Errorf("port in use: exit %d, stderr %q (want 1)", code, errOut)
	}
}
