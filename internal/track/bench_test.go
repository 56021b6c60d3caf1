package track

import (
	"net/netip"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/testsupport/cpuop"
)

// BenchmarkChurnTable is the table's part of the -a churn path, per record:
// short connections between two local sockets (client and server side on
// socket addresses the kernel reuses), each side opened, four packet
// records named (Find), each side closed, with --max-closed connections
// kept (-a) and recycled entries, as the engine runs it.
func BenchmarkChurnTable(b *testing.B) {
	for _, keep := range []bool{true, false} {
		name := "keep-closed"
		if !keep {
			name = "no-keep"
		}
		b.Run(name, func(b *testing.B) {
			tb := New(keep)
			tb.Recycle = true
			var cli, srv event.Conn
			cli = event.Conn{Netns: 4026532001, Pid: 4242, Dst: netip.MustParseAddrPort("10.78.0.2:7000"), OwnerSrc: event.OwnerSyscall}
			srv = event.Conn{Netns: 4026532002, Pid: 4242, Src: cli.Dst, IsServer: true, OwnerSrc: event.OwnerSyscall}
			st := event.Stats{Cwnd: 10}
			i := 0
			conn := func() {
				est := uint64(1<<30) + uint64(i)*60000
				cli.Sock, cli.EstNs = 0xffff888100000000+uint64(i%11)*0x100, est
				cli.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 78, 0, 1}), uint16(33000+i%28000))
				srv.Sock, srv.EstNs, srv.Dst = 0xffff888200000000+uint64(i%11)*0x100, est+3000, cli.Src
				tb.Open(&cli)
				tb.Open(&srv)
				for range 2 {
					tb.Find(KeyOf(&cli))
					tb.Find(KeyOf(&srv))
				}
				tb.Close(&cli, &st, est+50000)
				tb.Close(&srv, &st, est+52000)
				i++
			}
			for range DefaultMaxClosed + 2*goneLen { // steady state: kept and gone full
				conn()
			}
			var buf []*Entry
			buf = tb.Each(buf, func(*Entry) {}) // as the engine does every second
			b.ReportAllocs()
			defer cpuop.PerOp(b)()
			b.ResetTimer()
			for n := 0; n < b.N; n += 8 { // 8 records a connection
				conn()
				if i%16384 == 0 {
					buf = tb.Each(buf, func(*Entry) {})
				}
			}
		})
	}
}
