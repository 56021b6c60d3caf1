package mysql

import (
	"bytes"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// FuzzStream: any bytes in both directions, cut anywhere and partly not
// captured, never panic, never keep more than the bounds, and leave every
// request accounted for (paired, unanswered at the flush, or evicted).
// Seeds: the recorded sessions.
func FuzzStream(f *testing.F) {
	for _, name := range []string{"script.txt", "stmt.txt", "stmt_depr.txt", "multi.txt", "tls.txt", "compress.txt"} {
		var cli, srv []byte
		for _, s := range loadSegs(f, name) {
			if s.client {
				cli = append(cli, s.data...)
			} else {
				srv = append(srv, s.data...)
			}
		}
		f.Add(cli, srv, uint8(200), uint8(0))
		f.Add(cli, srv, uint8(7), uint8(40))
	}
	f.Fuzz(func(t *testing.T, cli, srv []byte, cut, capb uint8) {
		fd := newFeeder(int(capb))
		var cs, ss uint32 = 1, 1
		step := int(cut) + 1
		results := 0
		emit := func(r *event.MySQLResult) {
			results++
			if len(r.Query) > event.MySQLQueryMax || len(r.Version) > 48 || uint32(len(r.Query)) > max(r.QueryLen, uint32(len(r.Query))) {
				t.Fatalf("bounds: %d %d", len(r.Query), len(r.Version))
			}
		}
		// alternate: a client piece, then a server piece
		for len(cli) > 0 || len(srv) > 0 {
			for _, d := range []struct {
				b      *[]byte
				seq    *uint32
				client bool
			}{{&cli, &cs, true}, {&srv, &ss, false}} {
				n := min(len(*d.b), step)
				if n == 0 {
					continue
				}
				s := seg{client: d.client, ts: uint64(results + 1), seq: *d.seq, data: bytes.Clone((*d.b)[:n])}
				fd.record(s, 0, n, d.client)
				fd.record(s, 0, n, !d.client)
				*d.b = (*d.b)[n:]
				*d.seq += uint32(n)
			}
		}
		fd.t.Flush(emit)
		for i := range fd.out {
			emit(&fd.out[i])
		}
		for _, c := range fd.t.conns {
			if c.pn > maxPend {
				t.Fatalf("%d pending", c.pn)
			}
		}
		if fd.t.Pending() != 0 {
			for _, c := range fd.t.conns {
				if c.pn != 0 && !c.quit {
					t.Fatalf("%d pending after the flush", fd.t.Pending())
				}
			}
		}
	})
}
