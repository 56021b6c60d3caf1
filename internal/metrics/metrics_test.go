package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/netwatcher/netwatcher/internal/event"
)

func TestPortClasses(t *testing.T) {
	pc := NewPortClasses(3306, 6379, 0, 80)
	for p, want := range map[uint16]string{0: Ephemeral, 22: "22", 1023: "1023", 1024: Ephemeral, 3306: "3306", 6379: "6379", 8080: Ephemeral, 54321: Ephemeral} {
		if got := pc.Class(p); got != want {
			t.Errorf("Class(%d) = %q, want %q", p, got, want)
		}
	}
}

func conn(netns uint32, server bool, local, remote string) *event.Conn {
	return &event.Conn{Netns: netns, IsServer: server, Src: netip.MustParseAddrPort(local), Dst: netip.MustParseAddrPort(remote)}
}

func TestRecordsConnections(t *testing.T) {
	r := NewRecords(NewPortClasses(6379), On{})
	srv := conn(7, true, "10.0.0.1:80", "10.0.0.2:40000")
	cli := conn(7, false, "10.0.0.2:40000", "10.0.0.1:80")
	redis := conn(8, false, "10.0.0.2:40001", "10.0.0.1:6379")
	other := conn(8, true, "10.0.0.1:8080", "10.0.0.2:40002")
	for range 3 {
		r.ConnOpened(srv)
		r.ConnOpened(cli)
	}
	r.ConnClosed(srv)
	r.ConnExisting(redis)
	r.ConnOpened(other)
	want := `
# HELP netwatcher_connections_opened_total TCP connections established (open records), by network namespace, side and port class (server: local port, client: remote port).
# TYPE netwatcher_connections_opened_total counter
netwatcher_connections_opened_total{netns="7",port="80",side="client"} 3
netwatcher_connections_opened_total{netns="7",port="80",side="server"} 3
netwatcher_connections_opened_total{netns="8",port="6379",side="client"} 0
netwatcher_connections_opened_total{netns="8",port="ephemeral",side="server"} 1
`
	if err := testutil.CollectAndCompare(r.opened, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(r.active.WithLabelValues("7", "server", "80")); got != 2 {
		t.Errorf("active server 80 = %v, want 2", got)
	}
	if got := testutil.ToFloat64(r.active.WithLabelValues("8", "client", "6379")); got != 1 {
		t.Errorf("active existing redis = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(r.closed); n != 4 {
		t.Errorf("closed series = %d, want 4 (made with the label set)", n)
	}
}

func TestRecordsNetnsBounded(t *testing.T) {
	r := NewRecords(NewPortClasses(), allOn)
	for i := range MaxNetns + 10 {
		r.ConnOpened(conn(uint32(i+1), true, "10.0.0.1:80", "10.0.0.2:40000"))
	}
	if n := testutil.CollectAndCount(r.opened); n != MaxNetns+1 {
		t.Errorf("series = %d, want %d (the rest as other)", n, MaxNetns+1)
	}
	if got := testutil.ToFloat64(r.opened.WithLabelValues("other", "server", "80")); got != 10 {
		t.Errorf("other = %v, want 10", got)
	}
}

func TestRecordsNilIsOff(t *testing.T) {
	var r *Records
	c := conn(1, true, "10.0.0.1:80", "10.0.0.2:40000")
	r.ConnOpened(c)
	r.ConnClosed(c)
	r.ConnExisting(c)
	r.RetransEpisode("fast")
	r.RetransSegments(1)
	r.Rejected("x")
	r.Drop(&event.DropInfo{})
	r.Rst(&event.RstInfo{})
	r.State(&event.StateInfo{})
	r.Request(HTTP, true, 1)
	r.Rtt(1, &event.RttInfo{})
	if a := testing.AllocsPerRun(100, func() { r.ConnOpened(c); r.Request(DNS, false, 5) }); a != 0 {
		t.Errorf("nil Records allocates %v", a)
	}
}

func TestRecordsOthers(t *testing.T) {
	r := NewRecords(NewPortClasses(), allOn)
	r.RetransEpisode("fast")
	r.RetransEpisode("timeout")
	r.RetransEpisode("timeout")
	r.RetransSegments(3)
	r.RetransSegments(1)
	r.Rejected("Invalid SEQ")
	r.Drop(&event.DropInfo{Name: "NETFILTER_DROP", Family: 2, Proto: event.ProtoTCP})
	r.Drop(&event.DropInfo{Name: "NETFILTER_DROP", Family: 2, Proto: event.ProtoTCP})
	r.Drop(&event.DropInfo{Reason: 99, Family: 0})
	r.Rst(&event.RstInfo{Rx: true, State: event.TCPEstablished})
	r.Rst(&event.RstInfo{State: 0})
	r.State(&event.StateInfo{Old: event.TCPSynSent, New: event.TCPEstablished, InOldNs: 1_500_000})
	r.State(&event.StateInfo{Old: event.TCPSynRecv, New: event.TCPEstablished, InOldNs: 0}) // not measured
	r.Request(HTTP, true, 2_000_000)
	r.Request(HTTP, true, 4_000_000)
	for _, c := range []struct {
		c    prometheus.Collector
		want string
	}{
		{r.episodes, "netwatcher_tcp_retransmit_episodes_total{kind=\"fast\"} 1\nnetwatcher_tcp_retransmit_episodes_total{kind=\"syn\"} 0\nnetwatcher_tcp_retransmit_episodes_total{kind=\"timeout\"} 2\n"},
		{r.segs, "netwatcher_tcp_retransmitted_segments_total 4\n"},
		{r.rejected, "netwatcher_tcp_rejected_segments_total{reason=\"Invalid SEQ\"} 1\n"},
		{r.drops, "netwatcher_packet_drops_total{protocol=\"none\",reason=\"reason 99\"} 1\nnetwatcher_packet_drops_total{protocol=\"tcp\",reason=\"NETFILTER_DROP\"} 2\n"},
		{r.rsts, "netwatcher_tcp_resets_total{direction=\"received\",state=\"ESTABLISHED\"} 1\nnetwatcher_tcp_resets_total{direction=\"sent\",state=\"none\"} 1\n"},
	} {
		got := scrape(t, c.c)
		if !strings.Contains(got, c.want) {
			t.Errorf("got\n%s\nwant\n%s", got, c.want)
		}
	}
	h := scrape(t, r.handshake)
	for _, w := range []string{`netwatcher_tcp_handshake_seconds_count{side="client"} 1`, `netwatcher_tcp_handshake_seconds_count{side="server"} 0`, `netwatcher_tcp_handshake_seconds_sum{side="client"} 0.0015`} {
		if !strings.Contains(h, w) {
			t.Errorf("handshake: no %q in\n%s", w, h)
		}
	}
	q := scrape(t, r.requests)
	for _, w := range []string{`netwatcher_request_duration_seconds_count{protocol="http",side="server"} 2`, `netwatcher_request_duration_seconds_bucket{protocol="http",side="server",le="0.00256"} 1`, `netwatcher_request_duration_seconds_sum{protocol="http",side="server"} 0.006`} {
		if !strings.Contains(q, w) {
			t.Errorf("requests: no %q in\n%s", w, q)
		}
	}
}

// Interval records then the close record (the whole life) of a
// connection: every sample counted once.
func TestRecordsRtt(t *testing.T) {
	r := NewRecords(NewPortClasses(), allOn)
	var a, b, life event.RttInfo
	a.EstLo, b.EstLo, life.EstLo = 5, 5, 5
	a.Buckets[3], a.SumUs = 2, 20 // 2 samples of ~10 µs
	b.Buckets[3], b.Buckets[10], b.SumUs = 1, 1, 1034
	life.Buckets[3], life.Buckets[10], life.Buckets[12] = 3, 1, 1
	life.SumUs, life.Close = 20+1034+5000, true
	r.Rtt(1, &a)
	r.Rtt(1, &b)
	r.Rtt(1, &life)
	got := scrape(t, r.rtt)
	for _, w := range []string{"netwatcher_tcp_rtt_seconds_count 5", `netwatcher_tcp_rtt_seconds_bucket{le="1.6e-05"} 3`, `netwatcher_tcp_rtt_seconds_bucket{le="0.002048"} 4`, `netwatcher_tcp_rtt_seconds_bucket{le="0.008192"} 5`, "netwatcher_tcp_rtt_seconds_sum 0.00605"} {
		if !strings.Contains(got, w) {
			t.Errorf("no %q in\n%s", w, got)
		}
	}
	if len(r.rttSeen) != 0 {
		t.Errorf("rttSeen keeps %d connections after their close", len(r.rttSeen))
	}
}

func scrape(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&sb, mf); err != nil {
			t.Fatal(err)
		}
	}
	return sb.String()
}

func TestServer(t *testing.T) {
	before := runtime.NumGoroutine()
	reg := NewRegistry()
	h := NewHealth(func() uint64 { return 42 }, []ConcernState{{"conn", true}, {"rtt", false}},
		[]Hook{{Concern: "conn", Boundary: "sock_state", Kind: "tp_btf", Attached: true}, {Concern: "rtt", Boundary: "rtt_sample"}})
	h.SetStats(&Stats{Lost: map[string]uint64{"lost_ring_full": 3}, Counters: map[string]uint64{"rst_sent": 2}, Connections: 9})
	reg.MustRegister(h)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, "127.0.0.1:0", reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	get := func(accept string) (string, string) {
		req, _ := http.NewRequest("GET", "http://"+s.Addr().String()+"/metrics", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get("Content-Type")
	}
	body, ct := get("")
	for _, w := range []string{"netwatcher_events_total 42", `netwatcher_lost_events_total{counter="lost_ring_full"} 3`,
		`netwatcher_stats_total{name="rst_sent"} 2`, "netwatcher_tracked_connections 9",
		`netwatcher_hook_attached{boundary="sock_state",concern="conn",kind="tp_btf"} 1`,
		`netwatcher_hook_missing{boundary="rtt_sample",concern="rtt"} 1`, `netwatcher_concern_up{concern="rtt"} 0`,
		"process_resident_memory_bytes ", "netwatcher_bpf_maps "} {
		if !strings.Contains(body, w) {
			t.Errorf("scrape (%s) lacks %q", ct, w)
		}
	}
	om, ct := get("application/openmetrics-text; version=1.0.0")
	if !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.HasSuffix(om, "# EOF\n") {
		t.Errorf("OpenMetrics not negotiated: %s", ct)
	}
	cancel()
	done := make(chan struct{})
	go func() { s.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("server did not shut down")
	}
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after shutdown\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestBPFMapMemoryNoMaps(t *testing.T) {
	if b, n, err := BPFMapMemory(); err != nil || n != 0 || b != 0 {
		t.Errorf("a process without maps: %d bytes, %d maps, %v", b, n, err)
	}
}

var allOn = On{Retrans: true, Rejected: true, Drops: true, Rsts: true, Handshake: true, Rtt: true, Requests: [nProtocols]bool{true, true, true, true}}

func TestRecordsOnlyWhatIsOn(t *testing.T) {
	r := NewRecords(NewPortClasses(), On{Retrans: true, Requests: [nProtocols]bool{DNS: true}})
	if n := len(r.Collectors()); n != 3+2+1 {
		t.Errorf("collectors = %d, want connections (3), retransmits (2), requests (1)", n)
	}
	r.Request(HTTP, true, 5) // off: ignored
	if n := testutil.CollectAndCount(r.requests); n != 2 {
		t.Errorf("request series = %d, want dns client and server", n)
	}
}

func TestHealthHooksOnce(t *testing.T) {
	h := NewHealth(func() uint64 { return 0 }, nil, []Hook{
		{Concern: "c", Boundary: "b", Kind: "tp_btf", Attached: true}, {Concern: "c", Boundary: "b", Kind: "tp_btf", Attached: true},
		{Concern: "c", Boundary: "x"}, {Concern: "c", Boundary: "x", Kind: "raw_tp", Attached: true},
		{Concern: "c", Boundary: "m"}, {Concern: "c", Boundary: "m"}})
	got := scrape(t, h)
	for _, w := range []string{`netwatcher_hook_attached{boundary="b",concern="c",kind="tp_btf"} 1`,
		`netwatcher_hook_attached{boundary="x",concern="c",kind="raw_tp"} 1`, `netwatcher_hook_missing{boundary="m",concern="c"} 1`} {
		if !strings.Contains(got, w) {
			t.Errorf("no %q in\n%s", w, got)
		}
	}
	if strings.Contains(got, `hook_missing{boundary="x"`) {
		t.Errorf("x attached by a retry is still missing:\n%s", got)
	}
}
