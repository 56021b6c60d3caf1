package engine

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/testsupport/cpuop"
)

// churnMix says which records of a short connection a mode gets.
type churnMix struct {
	opens bool // open records (not under -q without -a: conn.Options.Quiet)
	http  bool // request and response text in the packet records (-i)
	times bool // layer times in the packet records (-t)
	state bool // TCP state records (-P)
}

// churnTemplate: churnConns short connections between two local sockets
// each (client and server side, on a few reused socket addresses as the
// kernel reuses them), with the records the mix says: open of each side,
// the request sent and received, the response sent and received, the
// state changes, the close of each side (with its -x values). Run with
// churnRound to make round r's connections new ones.
const churnConns = 64

func churnTemplate(mix churnMix) []event.Event {
	var evs []event.Event
	ts := uint64(1 << 30)
	for i := 0; i < churnConns; i++ {
		est := ts + 1
		cli := event.Conn{Sock: 0xffff888100000000 + uint64(i%11)*0x100, Netns: 4026532001, Pid: 4242,
			Src: netip.AddrPortFrom(netip.MustParseAddr("10.78.0.1"), uint16(33000+i)), Dst: netip.MustParseAddrPort("10.78.0.2:7000"),
			EstNs: est, OwnerSrc: event.OwnerSyscall}
		copy(cli.Comm[:], "nwpeer")
		srv := cli
		srv.Sock, srv.Netns, srv.Src, srv.Dst, srv.IsServer, srv.EstNs = 0xffff888200000000+uint64(i%11)*0x100, 4026532002, cli.Dst, cli.Src, true, est+3000
		if mix.opens {
			evs = append(evs, event.Event{Type: event.ConnOpen, TS: est, Conn: cli}, event.Event{Type: event.ConnOpen, TS: est + 3000, Conn: srv})
		}
		pkt := func(c *event.Conn, at uint64, seq uint32, rx bool, text string) {
			ev := event.Event{Type: event.Packet, TS: at, Conn: event.Conn{Sock: c.Sock, Netns: c.Netns},
				Packet: event.PacketInfo{Seq: seq, Ack: 77, Len: uint32(len(text)) + 60, EstLo: uint32(c.EstNs), Rx: rx}}
			if mix.times {
				ev.Packet.MacNs, ev.Packet.IPNs, ev.Packet.TCPNs = 1800, 4100+uint64(i), 21000
			}
			if mix.http {
				ev.Packet.HTTPLen = uint8(copy(ev.Packet.HTTP[:], text))
			}
			evs = append(evs, ev)
		}
		state := func(c *event.Conn, at uint64, old, new uint8) {
			if !mix.state {
				return
			}
			evs = append(evs, event.Event{Type: event.State, TS: at, Conn: *c, Ext: &event.Ext{State: event.StateInfo{Old: old, New: new, InOldNs: 5000, Src: c.Src, Dst: c.Dst, EstLo: uint32(c.EstNs), Pid: c.Pid}}})
		}
		state(&srv, est+2900, tcpSynRecv, tcpEstablished)
		pkt(&cli, est+5000, 1, false, "GET / HTTP/1.1\r\nHost: 10.78.0.2\r\n\r\n")
		pkt(&srv, est+9000, 1, true, "GET / HTTP/1.1\r\nHost: 10.78.0.2\r\n\r\n")
		pkt(&srv, est+30000, 1, false, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		pkt(&cli, est+34000, 1, true, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		state(&cli, est+40000, tcpEstablished, tcpFinWait1)
		state(&srv, est+44000, tcpEstablished, tcpCloseWait)
		st := event.Stats{SrttUs8: 8 * 60, Cwnd: 10, Ssthresh: 1<<31 - 1, RcvWnd: 65483, SndWnd: 65483, Sndbuf: 16384,
			BytesReceived: 64, BytesAcked: 40, State: tcpClose}
		evs = append(evs, event.Event{Type: event.ConnClose, TS: est + 50000, Conn: cli, Stats: st, HasStats: true},
			event.Event{Type: event.ConnClose, TS: est + 52000, Conn: srv, Stats: st, HasStats: true})
		ts += 60000
	}
	return evs
}

// TCP states as the kernel numbers them (enum tcp_state).
const (
	tcpEstablished = 1
	tcpFinWait1    = 4
	tcpSynRecv     = 3
	tcpClose       = 7
	tcpCloseWait   = 8
)

// churnRound makes ev (a copy of a template record) a record of round r:
// the same records of newer connections on the same socket addresses.
func churnRound(ev *event.Event, r uint64) {
	d := r * churnConns * 60000
	ev.TS += d
	switch ev.Type {
	case event.Packet:
		ev.Packet.EstLo += uint32(d)
	case event.State:
		ev.Conn.EstNs += d
		x := *ev.Ext
		x.State.EstLo += uint32(d)
		*ev.Ext = x
	default:
		ev.Conn.EstNs += d
	}
}

// BenchmarkPipelineChurn measures pipeline.handle per record of short
// connections (the churn workload's record mix), per mode: connection
// records (open/close with -x values, the table's open/close/eviction),
// packet records with layer times and HTTP text (pairing, per-connection
// summaries), TCP state records.
func BenchmarkPipelineChurn(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  config.Config
		mix  churnMix
	}{
		{"q-tixre", config.Config{Quiet: true, Time: true, HTTP: true, Extra: true, Retrans: true, Err: true, Output: config.Table},
			churnMix{http: true, times: true}},
		{"q-ax", config.Config{Quiet: true, All: true, Extra: true, Output: config.Table}, churnMix{opens: true}},
		{"q-atixreP", config.Config{Quiet: true, All: true, Time: true, HTTP: true, Extra: true, Retrans: true, Err: true, State: true, Output: config.Table},
			churnMix{opens: true, http: true, times: true, state: true}},
		{"json-tixre", config.Config{Time: true, HTTP: true, Extra: true, Retrans: true, Err: true, Output: config.JSON},
			churnMix{opens: true, http: true, times: true}},
		{"table-tixre", config.Config{Time: true, HTTP: true, Extra: true, Retrans: true, Err: true, Output: config.Table},
			churnMix{opens: true, http: true, times: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := tc.cfg
			cfg.DataDir, cfg.MaxClosed = "x", config.DefaultMaxClosed
			p := benchPipeline(b, &cfg)
			tmpl := churnTemplate(tc.mix)
			var ext event.Ext
			round := uint64(0)
			run := func(i int) {
				ev := tmpl[i%len(tmpl)]
				if ev.Ext != nil {
					ext = *ev.Ext
					ev.Ext = &ext
				}
				churnRound(&ev, round)
				if i%len(tmpl) == len(tmpl)-1 {
					round++
				}
				p.handle(&ev)
			}
			for i := 0; i < 300*len(tmpl); i++ { // warm: the table's maps and rings at their steady size
				run(i)
			}
			p.flushOut()
			b.ReportAllocs()
			defer cpuop.PerOp(b)()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run(i)
				if i%256 == 255 {
					p.flushOut() // a batch
				}
			}
		})
	}
}

// BenchmarkRefreshKeptClosed measures the once-a-second connects.log
// rewrite with -a -x after connection churn: the table full of kept closed
// connections (--max-closed, 16,384) and a few open ones. One op is one
// rewrite.
func BenchmarkRefreshKeptClosed(b *testing.B) {
	cfg := config.Config{Quiet: true, All: true, Extra: true, Output: config.Table, DataDir: "x", MaxClosed: config.DefaultMaxClosed}
	p := benchPipeline(b, &cfg)
	tmpl := churnTemplate(churnMix{opens: true})
	n := 0
	for r := uint64(0); p.table.Len() < config.DefaultMaxClosed; r++ {
		for i := range tmpl {
			ev := tmpl[i]
			churnRound(&ev, r)
			p.handle(&ev)
			n++
		}
	}
	for i := 0; i < 2*churnConns; i++ { // some open ones
		ev := tmpl[i%len(tmpl)]
		if ev.Type == event.ConnOpen {
			churnRound(&ev, 1<<20)
			p.handle(&ev)
		}
	}
	p.refresh()
	b.ReportAllocs()
	defer cpuop.PerOp(b)()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.dirty = true
		p.refresh()
	}
}

// BenchmarkRefreshKeptClosedChurn is BenchmarkRefreshKeptClosed with the
// churn going on between rewrites: ~3,500 connections (both sides of
// 1,728 short connections, as the churn workload closes in a second)
// handled before each rewrite, so that a fifth of the kept closed
// connections are new at each one. refresh-cpu-ns/op is the rewrite's
// thread CPU alone.
func BenchmarkRefreshKeptClosedChurn(b *testing.B) {
	cfg := config.Config{Quiet: true, All: true, Extra: true, Output: config.Table, DataDir: "x", MaxClosed: config.DefaultMaxClosed}
	p := benchPipeline(b, &cfg)
	tmpl := churnTemplate(churnMix{opens: true})
	r := uint64(0)
	second := func() {
		for range 27 {
			for i := range tmpl {
				ev := tmpl[i]
				churnRound(&ev, r)
				p.handle(&ev)
			}
			r++
		}
	}
	for p.table.Len() < config.DefaultMaxClosed {
		second()
	}
	for range 8 { // steady state: every entry (kept, remembered, recycled) has had a line
		second()
		p.refresh()
	}
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var cpu int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		second()
		p.dirty = true
		t0 := cpuop.ThreadNs()
		p.refresh()
		cpu += cpuop.ThreadNs() - t0
	}
	b.ReportMetric(float64(cpu)/float64(b.N), "refresh-cpu-ns/op")
}
