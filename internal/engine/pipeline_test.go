package engine

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

func benchPipeline(tb testing.TB, cfg *config.Config) *pipeline {
	files, err := output.OpenFiles(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { files.Close() })
	return newPipeline(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard, files, nil, nil)
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

// A packet record read before its connection's open event waits (parked)
// and is printed with the connection's addresses once the open is handled;
// one whose connection stays unknown is printed with null addresses at the
// latest when the pipeline finishes.
func TestPacketWaitsForItsConnection(t *testing.T) {
	files, err := output.OpenFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	var out strings.Builder
	p := newPipeline(&config.Config{Output: config.JSON, DataDir: "x"}, slog.New(slog.NewTextHandler(io.Discard, nil)), &out, files, nil, nil)
	const sk = 0xffff888100000100
	pkt := event.Event{Type: event.Packet, TS: 100, Conn: event.Conn{Sock: sk}, Packet: event.PacketInfo{Seq: 7, Len: 10, EstLo: 50}}
	p.handle(&pkt)
	p.unpark(false)
	p.flushOut()
	if strings.Contains(out.String(), `"type":"packet"`) {
		t.Fatalf("printed before its connection was known: %s", out.String())
	}
	open := event.Event{Type: event.ConnOpen, TS: 50, Conn: event.Conn{Sock: sk, Netns: 1, EstNs: 50,
		Src: netip.MustParseAddrPort("198.18.1.1:4000"), Dst: netip.MustParseAddrPort("198.18.1.2:80")}}
	p.handle(&open)
	p.unpark(false)
	p.flushOut()
	if !strings.Contains(out.String(), `"seq":7,"ack":0,"len":10,"rx":0,"src":"198.18.1.1:4000","dst":"198.18.1.2:80"`) {
		t.Fatalf("parked packet not printed with its addresses: %s", out.String())
	}
	if strings.Index(out.String(), `"event":"open"`) > strings.Index(out.String(), `"type":"packet"`) {
		t.Error("packet printed before its connection's open line")
	}
	// A record of another connection that had this socket is not its own.
	out.Reset()
	old := event.Event{Type: event.Packet, TS: 10, Conn: event.Conn{Sock: sk}, Packet: event.PacketInfo{Seq: 8, Len: 10, EstLo: 5}}
	p.handle(&old)
	p.unpark(false)
	p.flushOut()
	if out.Len() != 0 {
		t.Fatalf("record from before the connection took its addresses: %s", out.String())
	}
	p.unpark(true)
	p.flushOut()
	if !strings.Contains(out.String(), `"seq":8,"ack":0,"len":10,"rx":0,"src":null,"dst":null`) {
		t.Fatalf("unknown connection: %s", out.String())
	}
	if len(p.parked) != 0 {
		t.Errorf("%d still parked", len(p.parked))
	}
	if p.noAddrs != 1 {
		t.Errorf("packets_without_addrs %d, want 1", p.noAddrs)
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
	p.enrich(&mine)
	if mine.Conn.Pid != 42 {
		t.Errorf("error of the connection: pid %d, want 42", mine.Conn.Pid)
	}
	other := event.Event{Type: event.Error, TS: 60, Conn: event.Conn{Sock: sk, Netns: 1},
		Err: event.ErrorInfo{Src: netip.MustParseAddrPort("198.18.1.2:80"), Dst: netip.MustParseAddrPort("198.18.1.1:3999"), Rx: true}}
	p.enrich(&other)
	if other.Conn.Pid != 0 {
		t.Errorf("error of another connection on the same socket got pid %d", other.Conn.Pid)
	}
	sent := event.Event{Type: event.Error, TS: 60, Conn: event.Conn{Sock: sk, Netns: 1},
		Err: event.ErrorInfo{Src: netip.MustParseAddrPort("198.18.1.1:4000"), Dst: netip.MustParseAddrPort("198.18.1.2:80")}}
	p.enrich(&sent)
	if sent.Conn.Pid != 42 {
		t.Errorf("own sent segment: pid %d, want 42", sent.Conn.Pid)
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
		p.enrich(&ev)
		if ev.Conn.Pid != tc.pid {
			t.Errorf("%s: pid %d, want %d", tc.name, ev.Conn.Pid, tc.pid)
		}
	}
}
