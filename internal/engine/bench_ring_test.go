package engine

import (
	"encoding/binary"
	"math"
	"sync/atomic"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/packet"
	"github.com/netwatcher/netwatcher/internal/testsupport/cpuop"
)

// rawPacketRecords returns the packet ring records of synthetic(n)'s packet
// events, laid out like struct nw_pkt_event (internal/packet's rawPkt, the
// four stamps, the payload bytes): timed records, with payload bytes for
// the ones that carry HTTP text.
func rawPacketRecords(evs []event.Event) [][]byte {
	const (
		tOff    = 40
		httpOff = tOff + 4*8
		full    = httpOff + 160
	)
	var out [][]byte
	for i := range evs {
		ev := &evs[i]
		if ev.Type != event.Packet {
			continue
		}
		pk := &ev.Packet
		n := httpOff
		if pk.HTTPLen > 0 {
			n = full
		}
		b := make([]byte, n)
		b[0] = byte(event.Packet)
		if pk.Rx {
			b[1] = 1
		}
		b[2] = pk.HTTPLen
		binary.NativeEndian.PutUint32(b[4:], 4026531833)
		binary.NativeEndian.PutUint64(b[8:], ev.Conn.Sock)
		binary.NativeEndian.PutUint64(b[16:], ev.TS)
		binary.NativeEndian.PutUint32(b[24:], pk.Seq)
		binary.NativeEndian.PutUint32(b[28:], pk.Ack)
		binary.NativeEndian.PutUint32(b[32:], pk.Len)
		binary.NativeEndian.PutUint32(b[36:], pk.EstLo)
		t := [4]uint64{1_000_000, 1_000_000 + pk.MacNs, 1_000_000 + pk.MacNs + pk.IPNs, 1_000_000 + pk.MacNs + pk.IPNs + pk.TCPNs}
		if !pk.Rx {
			t = [4]uint64{1_000_000, 1_000_000 + pk.TCPNs, 1_000_000 + pk.TCPNs + pk.IPNs, 1_000_000 + pk.TCPNs + pk.IPNs + pk.MacNs}
		}
		for j, v := range t {
			binary.NativeEndian.PutUint64(b[tOff+8*j:], v)
		}
		copy(b[httpOff:], pk.HTTP[:pk.HTTPLen])
		out = append(out, b)
	}
	return out
}

// BenchmarkPipelineFromRing measures one packet record from its raw ring
// bytes to the sinks: the reader's batch handling (reader.one, the
// Counters), the packet concern's Decode, the merge and pipeline.handle
// (track + format + write). One goroutine; the lifecycle ring's watermark
// is at +inf, so the merge releases every batch at once.
func BenchmarkPipelineFromRing(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  config.Config
	}{
		{"table", config.Config{Time: true, HTTP: true, Extra: true, Retrans: true, Output: config.Table, DataDir: "x"}},
		{"json", config.Config{Time: true, HTTP: true, Extra: true, Retrans: true, Output: config.JSON, DataDir: "x"}},
		{"quiet", config.Config{Time: true, HTTP: true, Quiet: true, Output: config.JSON, DataDir: "x"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := tc.cfg
			p := benchPipeline(b, &cfg)
			evs := synthetic(4096)
			for i := range evs { // the opens (lifecycle ring); buffers warm
				p.handle(&evs[i])
			}
			raws := rawPacketRecords(evs)
			d, err := newDecoders(packet.New(&cfg))
			if err != nil {
				b.Fatal(err)
			}
			queue := make(chan *batch, 8)
			rd := &reader{src: srcPacket, pool: newPool(4, srcPacket), queue: queue, decode: d.decode,
				ctr: &Counters{}, wm: new(atomic.Uint64), handed: new(atomic.Uint64)}
			p.merge.wm[srcLife].Store(math.MaxUint64)
			handle := func(_ int, bt *batch, i int) { p.handle(&bt.evs[i]) }
			drain := func() {
				for {
					select {
					case bt := <-queue:
						p.merge.push(bt)
					default:
						return
					}
				}
			}
			if !rd.get() {
				b.Fatal("no batch")
			}
			b.ReportAllocs()
			defer cpuop.PerOp(b)()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rd.one(raws[i%len(raws)])
				if len(queue) > 0 {
					p.merge.release(drain, handle)
				}
			}
			rd.send()
			p.merge.release(drain, handle)
			b.StopTimer()
			if n := rd.ctr.Undecodable.Load() + rd.ctr.QueueLost.Load(); n != 0 {
				b.Fatalf("%d records not decoded or lost", n)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkPipelineCPU is BenchmarkPipeline with the thread CPU time per
// event (cpu-ns/op).
func BenchmarkPipelineCPU(b *testing.B) {
	for _, out := range []config.Output{config.Table, config.JSON} {
		name := "table"
		if out == config.JSON {
			name = "json"
		}
		b.Run(name, func(b *testing.B) {
			p := benchPipeline(b, &config.Config{Time: true, HTTP: true, Extra: true, Retrans: true, Output: out, DataDir: "x"})
			evs := synthetic(4096)
			for i := range evs {
				p.handle(&evs[i])
			}
			b.ReportAllocs()
			defer cpuop.PerOp(b)()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev := evs[i%len(evs)]
				p.handle(&ev)
			}
		})
	}
}
