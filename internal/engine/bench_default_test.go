package engine

import (
	"encoding/binary"
	"math"
	"net/netip"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/packet"
	"github.com/netwatcher/netwatcher/internal/testsupport/cpuop"
)

// defaultMix builds the packet ring records of the default mode (-q: no
// -t, no -i, so every record is the short form, struct nw_pkt_event up to
// t) for conns local connections of a request/response load (both sides
// of each connection on this host, as progstats.sh runs them): per
// exchange the request sent and received, the response sent and received.
// rr: 8 connections, 1024-byte messages; http: one keep-alive connection,
// a ~80-byte request and a ~150-byte response. The connections are in the
// table, as the walk of the kernel table puts them there under -q.
func defaultMix(p *pipeline, conns, req, resp int) [][]byte {
	type side struct {
		c        event.Conn
		seq, ack uint32
	}
	var sides []side
	for i := 0; i < conns; i++ {
		est := uint64(1<<30) + uint64(i)*1000
		cli := event.Conn{Sock: 0xffff888104d9dc80 + uint64(i)*0x940, Netns: 4026532001, Pid: 4242,
			Src: netip.AddrPortFrom(netip.MustParseAddr("10.77.0.1"), uint16(41000+i)), Dst: netip.MustParseAddrPort("10.77.0.2:7000"),
			EstNs: est, OwnerSrc: event.OwnerSyscall}
		copy(cli.Comm[:], "nwpeer")
		srv := cli
		srv.Sock, srv.Netns, srv.Src, srv.Dst, srv.IsServer, srv.EstNs = 0xffff888117a31200+uint64(i)*0x940, 4026532002, cli.Dst, cli.Src, true, est+3000
		p.table.Open(&cli)
		p.table.Open(&srv)
		isn1, isn2 := uint32(3889652109+i*7919), uint32(1048233276+i*104729)
		sides = append(sides, side{cli, isn1, isn2}, side{srv, isn2, isn1})
	}
	rec := func(c *event.Conn, ts uint64, seq, ack uint32, n int, rx bool) []byte {
		b := make([]byte, 40)
		b[0] = byte(event.Packet)
		if rx {
			b[1] = 1
		}
		binary.NativeEndian.PutUint32(b[4:], c.Netns)
		binary.NativeEndian.PutUint64(b[8:], c.Sock)
		binary.NativeEndian.PutUint64(b[16:], ts)
		binary.NativeEndian.PutUint32(b[24:], seq)
		binary.NativeEndian.PutUint32(b[28:], ack)
		binary.NativeEndian.PutUint32(b[32:], uint32(n))
		binary.NativeEndian.PutUint32(b[36:], uint32(c.EstNs))
		return b
	}
	var out [][]byte
	ts := uint64(1 << 31)
	for round := 0; len(out) < 4096; round++ {
		for i := 0; i < conns; i++ {
			cli, srv := &sides[2*i], &sides[2*i+1]
			out = append(out, rec(&cli.c, ts, cli.seq, cli.ack, req, false), rec(&srv.c, ts+9000, cli.seq, cli.ack, req, true))
			cli.seq += uint32(req)
			srv.ack = cli.seq
			out = append(out, rec(&srv.c, ts+20000, srv.seq, srv.ack, resp, false), rec(&cli.c, ts+29000, srv.seq, srv.ack, resp, true))
			srv.seq += uint32(resp)
			cli.ack = srv.seq
			ts += 31000
		}
	}
	return out
}

// BenchmarkDefaultMode measures one packet record of the default mode
// (-q) from its raw ring bytes to packets.log, for the rr and http record
// mixes of progstats.sh: reader.one (batch, decode), the merge,
// pipeline.handle (connection lookup, packets.log line) and the log's
// writes, with the packet reader's pool of a run (packetBatches). "1g":
// one goroutine, cpu-ns/op the thread's CPU time (pwrite included); "2g":
// the reader and the pipeline on goroutines of their own as in a run
// (batches handed over by channel, their records read on another CPU),
// cpu-ns/op the process's CPU time. user-ns/op is the user-space part
// (without the log's pwrite).
func BenchmarkDefaultMode(b *testing.B) {
	for _, mix := range []struct {
		name             string
		conns, req, resp int
	}{{"rr", 8, 1024, 1024}, {"http", 1, 80, 150}} {
		for _, two := range []bool{false, true} {
			name := mix.name + "/1g"
			if two {
				name = mix.name + "/2g"
			}
			b.Run(name, func(b *testing.B) {
				cfg := config.Config{Quiet: true, Output: config.Table, DataDir: "x"}
				p := benchPipeline(b, &cfg)
				raws := defaultMix(p, mix.conns, mix.req, mix.resp)
				d, err := newDecoders(packet.New(&cfg))
				if err != nil {
					b.Fatal(err)
				}
				queue := make(chan *batch, packetBatches)
				rd := &reader{src: srcPacket, pool: newPool(packetBatches, srcPacket), queue: queue, decode: d.decode,
					ctr: &Counters{}, wm: new(atomic.Uint64), handed: new(atomic.Uint64), lossless: true, pipeDone: make(chan struct{})}
				p.merge.wm[srcLife].Store(math.MaxUint64)
				handle := func(_ int, bt *batch, i int) { p.handle(&bt.evs[i]) }
				drain := func() {
					for {
						select {
						case bt, ok := <-queue:
							if !ok {
								return
							}
							p.merge.push(bt)
						default:
							return
						}
					}
				}
				if !rd.get() {
					b.Fatal("no batch")
				}
				for range 4 * packetBatches * batchLen / len(raws) { // warm: buffers, the lookup cache, every batch
					for _, r := range raws {
						rd.one(r)
						if len(queue) > 0 {
							p.merge.release(drain, handle)
						}
					}
				}
				rd.send()
				p.merge.release(drain, handle)
				rd.get()
				b.ReportAllocs()
				if !two {
					defer cpuop.PerOp(b)()
					u0 := userCPU(unix.RUSAGE_THREAD)
					defer func() { b.ReportMetric(float64(userCPU(unix.RUSAGE_THREAD)-u0)/float64(b.N), "user-ns/op") }()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						rd.one(raws[i%len(raws)])
						if len(queue) > 0 {
							p.merge.release(drain, handle)
						}
					}
					rd.send()
					p.merge.release(drain, handle)
				} else {
					done := make(chan struct{})
					go func() {
						defer close(done)
						for bt := range queue {
							p.merge.push(bt)
							p.merge.release(drain, handle)
						}
					}()
					t0, u0 := processCPU(), userCPU(unix.RUSAGE_SELF)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						rd.one(raws[i%len(raws)])
					}
					rd.send()
					close(queue)
					<-done
					b.StopTimer()
					b.ReportMetric(float64(processCPU()-t0)/float64(b.N), "cpu-ns/op")
					b.ReportMetric(float64(userCPU(unix.RUSAGE_SELF)-u0)/float64(b.N), "user-ns/op")
				}
				b.StopTimer()
				if n := rd.ctr.Undecodable.Load() + rd.ctr.QueueLost.Load() + p.noAddrs; n != 0 {
					b.Fatalf("%d records not decoded, lost or not named", n)
				}
			})
		}
	}
}

// userCPU is the user-space CPU time (ns) of the calling thread
// (RUSAGE_THREAD) or the process: without the kernel's share (the log's
// pwrite), the part this code controls.
func userCPU(who int) int64 {
	var ru unix.Rusage
	unix.Getrusage(who, &ru)
	return ru.Utime.Nano()
}

func processCPU() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts)
	return ts.Nano()
}
