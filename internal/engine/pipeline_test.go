package engine

import (
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/metrics"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/prometheus/client_golang/prometheus"
)

func benchPipeline(tb testing.TB, cfg *config.Config) *pipeline {
	files, err := output.OpenFiles(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { files.Close() })
	return newPipeline(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard, files, nil, nil)
}

func testPipeline(tb testing.TB, cfg *config.Config, out io.Writer) *pipeline {
	files, err := output.OpenFiles(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { files.Close() })
	return newPipeline(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), out, files, nil, nil)
}

func synthetic(n int) []event.Event {
	evs := make([]event.Event, 0, n)
	for i := 0; i < n; i++ {
		sk := uint64(0xffff888100000000) + uint64(i%64)*0x100
		c := event.Conn{Sock: sk, Netns: 4026531833, Pid: 1234,
			Src: netip.AddrPortFrom(netip.MustParseAddr("198.18.1.1"), uint16(40000+i%64)),
			Dst: netip.MustParseAddrPort("198.18.1.2:80"), EstNs: 1}
		copy(c.Comm[:], "nginx")
		switch {
		case i < 64:
			evs = append(evs, event.Event{Type: event.ConnOpen, TS: uint64(i), Conn: c})
		default:
			ev := event.Event{Type: event.Packet, TS: uint64(i), Conn: event.Conn{Sock: sk},
				Packet: event.PacketInfo{Seq: uint32(i * 1000), Ack: 7, Len: 1000, EstLo: 1, Rx: i%2 == 0, MacNs: 1200, IPNs: 3400, TCPNs: 15000}}
			if i%8 == 1 {
				n := copy(ev.Packet.HTTP[:], "GET /index.html HTTP/1.1\r\nHost: x\r\n")
				ev.Packet.HTTPLen = uint8(n)
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

// BenchmarkPipeline measures the user-space path of one event after the
// ring buffer: track + format + write (console JSON and packets.log).
// Run: go test -bench Pipeline -benchmem ./internal/engine/
func BenchmarkPipeline(b *testing.B) {
	for _, out := range []config.Output{config.Table, config.JSON} {
		name := "table"
		if out == config.JSON {
			name = "json"
		}
		b.Run(name, func(b *testing.B) {
			p := benchPipeline(b, &config.Config{Time: true, HTTP: true, Extra: true, Retrans: true, Output: out, DataDir: "x"})
			evs := synthetic(4096)
			for i := range evs { // warm up: table entries, buffers
				p.handle(&evs[i])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev := evs[i%len(evs)]
				p.handle(&ev)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func TestPipelineNoAllocPerEvent(t *testing.T) {
	p := benchPipeline(t, &config.Config{Time: true, HTTP: true, Output: config.JSON, DataDir: "x"})
	evs := synthetic(1024)
	for i := range evs {
		p.handle(&evs[i])
	}
	i := 0
	n := testing.AllocsPerRun(2000, func() {
		ev := evs[1+i%1023]
		if ev.Type == event.ConnOpen {
			ev = evs[1]
		}
		p.handle(&ev)
		i++
	})
	if n != 0 {
		t.Errorf("%v allocations per packet event", n)
	}
}

// Records of the two rings come out in time order: a connection's open
// before its packets, its packets before its close, whatever order the
// readers handed them over in; a ring's records wait for the other ring's
// watermark.
func TestMergeOrdersAcrossRings(t *testing.T) {
	var out strings.Builder
	p := testPipeline(t, &config.Config{Output: config.JSON, All: true, DataDir: "x"}, &out)
	const sk = 0xffff888100000100
	c := event.Conn{Sock: sk, Netns: 1, EstNs: 50, Pid: 9,
		Src: netip.MustParseAddrPort("198.18.1.1:4000"), Dst: netip.MustParseAddrPort("198.18.1.2:80")}
	pkts := &batch{src: srcPacket, pool: &batchPool{}, evs: []event.Event{
		{Type: event.Packet, TS: 60, Conn: event.Conn{Sock: sk}, Packet: event.PacketInfo{Seq: 7, Len: 10, EstLo: 50}},
		{Type: event.Packet, TS: 70, Conn: event.Conn{Sock: sk}, Packet: event.PacketInfo{Seq: 17, Len: 10, EstLo: 50}},
	}}
	life := &batch{src: srcLife, pool: &batchPool{}, evs: []event.Event{
		{Type: event.ConnOpen, TS: 50, Conn: c},
		{Type: event.ConnClose, TS: 80, Conn: c},
	}}
	handle := func(_ int, b *batch, i int) { p.handle(&b.evs[i]) }
	var pokes [nSources]int
	for i := range p.merge.poke {
		p.merge.poke[i] = func() { pokes[i]++ }
	}
	// Packets first (their reader was faster), lifecycle reader silent.
	p.merge.push(pkts)
	p.merge.release(func() {}, handle)
	if p.merge.pending() != 2 || out.Len() != 0 {
		t.Fatalf("released before the other ring caught up: %s", out.String())
	}
	// Held for the lifecycle ring: its (maybe idle) reader is poked, at
	// most once per pokeEvery.
	const now = 1 << 40
	if !p.merge.holding(now) || !p.merge.holding(now+pokeEvery-1) || pokes != [nSources]int{srcLife: 1} {
		t.Fatalf("holding for the lifecycle ring: pokes %v, want one of the lifecycle reader", pokes)
	}
	if p.merge.holding(now + pokeEvery); pokes[srcLife] != 2 {
		t.Errorf("no second poke after pokeEvery: %v", pokes)
	}
	p.merge.push(life)
	p.merge.release(func() {}, handle)
	// 50, 60, 70 out; the close (80) waits for the packet ring's watermark.
	if p.merge.pending() != 1 {
		t.Fatalf("pending %d, want the close only", p.merge.pending())
	}
	if !p.merge.holding(2*now) || pokes[srcPacket] != 1 {
		t.Errorf("holding the close: pokes %v, want one of the packet reader", pokes)
	}
	p.merge.wm[srcPacket].Store(80 + mergeSlack)
	p.merge.release(func() {}, handle)
	if p.merge.holding(3 * now) {
		t.Errorf("holding with nothing held")
	}
	p.flushOut()
	got := out.String()
	order := []string{`"event":"open"`, `"seq":7`, `"seq":17`, `"event":"close"`}
	last := -1
	for _, w := range order {
		i := strings.Index(got, w)
		if i < last {
			t.Fatalf("%s out of order:\n%s", w, got)
		}
		last = i
	}
	if !strings.Contains(got, `"conn_id":1,"src":"198.18.1.1:4000","dst":"198.18.1.2:80","pid":9`) {
		t.Errorf("packet lines lack their connection: %s", got)
	}
	if p.merge.Late != 0 || p.noAddrs != 0 {
		t.Errorf("late %d, without addresses %d", p.merge.Late, p.noAddrs)
	}
	// A source over its limit is released without the other's watermark
	// (a starved reader must not make the other one drop records).
	p.merge.limit[srcPacket] = 1
	for i := 0; i < 2; i++ {
		p.merge.push(&batch{src: srcPacket, pool: &batchPool{}, evs: []event.Event{
			{Type: event.Packet, TS: uint64(1000 + i), Conn: event.Conn{Sock: sk}, Packet: event.PacketInfo{Seq: 99, EstLo: 50}}}})
	}
	p.merge.release(func() {}, handle)
	if p.merge.pending() != 1 {
		t.Errorf("pending %d, want 1 (the limit)", p.merge.pending())
	}
}

// An idle ring needs no watermark from its reader: while its producer
// position is where the reader said it handed everything over, records of
// the other ring stamped before now (less mergeSlack) go out without a
// poke. With -q the merge pokes late: after quietPokeAfter, or at once when
// the held batches reach a quarter of their limit.
func TestMergeIdleRingAndQuietPoke(t *testing.T) {
	var out strings.Builder
	p := testPipeline(t, &config.Config{Output: config.JSON, DataDir: "x"}, &out)
	m := p.merge
	prod := uint64(200)
	m.produced[srcLife] = func() uint64 { return prod }
	m.handed[srcLife].Store(100)
	var pokes [nSources]int
	for i := range m.poke {
		m.poke[i] = func() { pokes[i]++ }
	}
	handle := func(_ int, b *batch, i int) { p.handle(&b.evs[i]) }
	pkt := func(ts uint64) *batch {
		return &batch{src: srcPacket, pool: &batchPool{}, evs: []event.Event{
			{Type: event.Packet, TS: ts, Conn: event.Conn{Sock: 1}, Packet: event.PacketInfo{Seq: 7}}}}
	}
	now := output.MonoNow()
	m.push(pkt(now - 10*mergeSlack))
	m.release(func() {}, handle)
	if m.pending() != 1 {
		t.Fatalf("released while the lifecycle ring holds unread records (pending %d)", m.pending())
	}
	prod = 100 // the reader has handed over everything the ring got
	m.release(func() {}, handle)
	if m.pending() != 0 {
		t.Fatalf("held for an idle ring (pending %d)", m.pending())
	}
	m.push(pkt(output.MonoNow() + uint64(time.Hour))) // stamped after now: the idle mark is now
	m.release(func() {}, handle)
	if m.pending() != 1 {
		t.Fatalf("released a record stamped after the idle mark")
	}
	if pokes != [nSources]int{} {
		t.Errorf("pokes %v without holding()", pokes)
	}

	m.quiet()
	m.limit[srcPacket] = 8
	t0 := uint64(1 << 40)
	if !m.holding(t0) || !m.holding(t0+quietPokeAfter-1) || pokes[srcLife] != 0 {
		t.Fatalf("quiet: poked before quietPokeAfter: %v", pokes)
	}
	if m.holding(t0 + quietPokeAfter); pokes[srcLife] != 1 {
		t.Fatalf("quiet: no poke after quietPokeAfter: %v", pokes)
	}
	m.holdSince = 0 // a new hold with two batches held: a quarter of 8
	m.push(pkt(output.MonoNow() + uint64(time.Hour)))
	if m.holding(2 * t0); pokes[srcLife] != 2 {
		t.Errorf("quiet: no poke with a quarter of the limit held: %v", pokes)
	}
	if m.recheck != quietRecheck {
		t.Errorf("quiet: recheck %v", m.recheck)
	}
}

// Three short connections one after another on one socket address, their
// records read only after all three closed: each record names its own
// connection, and -a keeps all three.
func TestShortConnectionsOnOneSocket(t *testing.T) {
	var out strings.Builder
	p := testPipeline(t, &config.Config{Output: config.JSON, All: true, HTTP: true, DataDir: "x"}, &out)
	const sk = 0xffff888100000100
	var evs []event.Event
	for i := 0; i < 3; i++ {
		est := uint64(100 * (i + 1))
		c := event.Conn{Sock: sk, Netns: 1, EstNs: est, Pid: uint32(10 + i),
			Src: netip.AddrPortFrom(netip.MustParseAddr("198.18.1.1"), uint16(4000+i)), Dst: netip.MustParseAddrPort("198.18.1.2:80")}
		req := event.Event{Type: event.Packet, TS: est + 10, Conn: event.Conn{Sock: sk}, Packet: event.PacketInfo{Seq: 1, Len: 20, EstLo: uint32(est)}}
		req.Packet.HTTPLen = uint8(copy(req.Packet.HTTP[:], "GET / HTTP/1.0\r\n\r\n"))
		resp := event.Event{Type: event.Packet, TS: est + 20 + uint64(i), Conn: event.Conn{Sock: sk}, Packet: event.PacketInfo{Seq: 1, Len: 20, EstLo: uint32(est), Rx: true}}
		resp.Packet.HTTPLen = uint8(copy(resp.Packet.HTTP[:], "HTTP/1.0 200 OK\r\n\r\n"))
		evs = append(evs, event.Event{Type: event.ConnOpen, TS: est, Conn: c}, req, resp, event.Event{Type: event.ConnClose, TS: est + 50, Conn: c})
	}
	for i := range evs {
		p.handle(&evs[i])
	}
	p.flushOut()
	got := out.String()
	if n := strings.Count(got, `"type":"http","time"`); n != 3 {
		t.Errorf("%d http pairs, want 3:\n%s", n, got)
	}
	for i := 0; i < 3; i++ {
		want := `"conn_id":` + strconv.Itoa(i+1) + `,"src":"198.18.1.1:` + strconv.Itoa(4000+i) + `"`
		if n := strings.Count(got, want); n != 6 { // open, 2 packets, http, close, summary
			t.Errorf("connection %d named %d times, want 6", i+1, n)
		}
		if !strings.Contains(got, `"latency_ns":`+strconv.Itoa(10+i)) {
			t.Errorf("connection %d: latency %d not reported", i+1, 10+i)
		}
	}
	if strings.Contains(got, `"unmatched":1`) || p.table.Len() != 3 {
		t.Errorf("pairing across connections or entries lost (%d):\n%s", p.table.Len(), got)
	}
}

// An error record of a closed connection whose socket memory already holds
// the next connection must not take that connection's owner.
func TestErrorOwnerNeedsItsFlow(t *testing.T) {
	p := benchPipeline(t, &config.Config{Output: config.JSON, DataDir: "x"})
	const sk = 0xffff888100000200
	open := event.Event{Type: event.ConnOpen, TS: 50, Conn: event.Conn{Sock: sk, Netns: 1, EstNs: 50, Pid: 42,
		Src: netip.MustParseAddrPort("198.18.1.1:4000"), Dst: netip.MustParseAddrPort("198.18.1.2:80")}}
	p.handle(&open)
	mine := event.Event{Type: event.Error, TS: 60, Conn: event.Conn{Sock: sk, Netns: 1},
		Err: event.ErrorInfo{Src: netip.MustParseAddrPort("198.18.1.2:80"), Dst: netip.MustParseAddrPort("198.18.1.1:4000"), Rx: true}}
	p.errorEvent(&mine)
	if mine.Conn.Pid != 42 {
		t.Errorf("error of the connection: pid %d, want 42", mine.Conn.Pid)
	}
	other := event.Event{Type: event.Error, TS: 60, Conn: event.Conn{Sock: sk, Netns: 1},
		Err: event.ErrorInfo{Src: netip.MustParseAddrPort("198.18.1.2:80"), Dst: netip.MustParseAddrPort("198.18.1.1:3999"), Rx: true}}
	p.errorEvent(&other)
	if other.Conn.Pid != 0 {
		t.Errorf("error of another connection on the same socket got pid %d", other.Conn.Pid)
	}
	sent := event.Event{Type: event.Error, TS: 60, Conn: event.Conn{Sock: sk, Netns: 1},
		Err: event.ErrorInfo{Src: netip.MustParseAddrPort("198.18.1.1:4000"), Dst: netip.MustParseAddrPort("198.18.1.2:80")}}
	p.errorEvent(&sent)
	if sent.Conn.Pid != 42 {
		t.Errorf("own sent segment: pid %d, want 42", sent.Conn.Pid)
	}
}

// TestSocketlessRecordsByAddresses: an error (-e) or drop (-k) record of a
// segment rejected before the socket lookup (bad checksum, netfilter)
// carries no socket: the connection is found by its addresses
// (track.Table.Lookup), received or sent. The table keeps that map only
// for those flags (track.Table.NoLookup).
func TestSocketlessRecordsByAddresses(t *testing.T) {
	cli, srv := netip.MustParseAddrPort("198.18.1.1:4000"), netip.MustParseAddrPort("198.18.1.2:80")
	for _, cfg := range []config.Config{{Err: true}, {DropReason: true}, {Err: true, DropReason: true}, {All: true, Extra: true}} {
		cfg.Output, cfg.DataDir = config.JSON, "x"
		p := benchPipeline(t, &cfg)
		if want := !cfg.Err && !cfg.DropReason; p.table.NoLookup != want {
			t.Errorf("-e %v -k %v: NoLookup %v, want %v", cfg.Err, cfg.DropReason, p.table.NoLookup, want)
		}
		if p.table.NoLookup {
			continue
		}
		open := event.Event{Type: event.ConnOpen, TS: 50, Conn: event.Conn{Sock: 0xffff888100000400, Netns: 1, EstNs: 50, Pid: 42, Src: cli, Dst: srv}}
		p.handle(&open)
		for _, rx := range []bool{true, false} {
			from, to := cli, srv
			if rx {
				from, to = srv, cli
			}
			if cfg.Err {
				ev := event.Event{Type: event.Error, TS: 60, Conn: event.Conn{Netns: 1}, Err: event.ErrorInfo{Src: from, Dst: to, Rx: rx}}
				if e := p.errConn(&ev); e == nil || e.Conn.Pid != 42 {
					t.Errorf("-e, rx %v: socketless error record not attributed (%v)", rx, e)
				}
			}
			if cfg.DropReason {
				ev := event.Event{Type: event.Drop, TS: 60, Conn: event.Conn{Netns: 1}, Ext: &event.Ext{Drop: event.DropInfo{Proto: event.ProtoTCP, Src: from, Dst: to}}}
				if e := p.dropConn(&ev); e == nil || e.Conn.Pid != 42 {
					t.Errorf("-k, rx %v: socketless drop record not attributed (%v)", rx, e)
				}
			}
		}
	}
}

// TestRetransOwnerNeedsItsFlow: a retransmit record names its connection's
// addresses; on a socket whose memory the table still knows from an older
// connection it must not take that connection's owner.
func TestRetransOwnerNeedsItsFlow(t *testing.T) {
	p := benchPipeline(t, &config.Config{Output: config.JSON, Retrans: true, DataDir: "x"})
	const sk = 0xffff888100000300
	src, dst := netip.MustParseAddrPort("198.18.1.1:4000"), netip.MustParseAddrPort("198.18.1.2:80")
	open := event.Event{Type: event.ConnOpen, TS: 50, Conn: event.Conn{Sock: sk, Netns: 1, EstNs: 50, Pid: 42, Src: src, Dst: dst}}
	p.handle(&open)
	for _, tc := range []struct {
		name string
		typ  event.Type
		src  netip.AddrPort
		pid  uint32
	}{
		{"retransmit of the connection", event.Retrans, src, 42},
		{"congestion state of the connection", event.Cong, src, 42},
		{"retransmit of a newer connection on the socket", event.Retrans, netip.MustParseAddrPort("198.18.1.1:4001"), 0},
		{"congestion state of a newer connection", event.Cong, netip.MustParseAddrPort("198.18.1.1:4001"), 0},
	} {
		ev := event.Event{Type: tc.typ, TS: 60, Conn: event.Conn{Sock: sk, Netns: 1, Src: tc.src, Dst: dst}}
		ev.Conn.Pid = 0
		p.retransConn(&ev)
		if ev.Conn.Pid != tc.pid {
			t.Errorf("%s: pid %d, want %d", tc.name, ev.Conn.Pid, tc.pid)
		}
	}
}

// With -q a packet record keeps its own (bare) connection: the HTTP
// latency metric takes the side from the table's entry, not the record.
func TestQuietHTTPMetricSide(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		p := benchPipeline(t, &config.Config{Output: config.JSON, Quiet: quiet, All: true, HTTP: true, DataDir: "x"})
		on := metrics.On{KernelConns: true}
		on.Requests[metrics.HTTP] = true
		p.met = metrics.NewRecords(metrics.NewPortClasses(), on)
		const sk = 0xffff888100000100
		c := event.Conn{Sock: sk, Netns: 1, EstNs: 100, Pid: 9, IsServer: true,
			Src: netip.MustParseAddrPort("198.18.1.2:80"), Dst: netip.MustParseAddrPort("198.18.1.1:4000")}
		req := event.Event{Type: event.Packet, TS: 110, Conn: event.Conn{Sock: sk}, Packet: event.PacketInfo{Seq: 1, Len: 20, EstLo: 100, Rx: true}}
		req.Packet.HTTPLen = uint8(copy(req.Packet.HTTP[:], "GET / HTTP/1.1\r\n\r\n"))
		resp := event.Event{Type: event.Packet, TS: 130, Conn: event.Conn{Sock: sk}, Packet: event.PacketInfo{Seq: 1, Len: 20, EstLo: 100}}
		resp.Packet.HTTPLen = uint8(copy(resp.Packet.HTTP[:], "HTTP/1.1 200 OK\r\n\r\n"))
		for _, ev := range []event.Event{{Type: event.ConnOpen, TS: 100, Conn: c}, req, resp} {
			p.handle(&ev)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(p.met.Collectors()...)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]uint64{}
		for _, mf := range mfs {
			if mf.GetName() != metrics.Namespace+"_request_duration_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "side" {
						got[l.GetValue()] = m.GetHistogram().GetSampleCount()
					}
				}
			}
		}
		if got["server"] != 1 || got["client"] != 0 {
			t.Errorf("quiet=%v: requests by side %v, want one on the server side", quiet, got)
		}
	}
}
