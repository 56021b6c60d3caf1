package mysql

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
)

func summaries(rs []event.MySQLResult) []string {
	var s []string
	for i := range rs {
		s = append(s, summary(&rs[i]))
	}
	return s
}

func run(t *testing.T, name string, atServer bool, capBytes int) *feeder {
	t.Helper()
	f := newFeeder(capBytes)
	f.all(loadSegs(t, name), atServer)
	f.t.Flush(f.emit)
	return f
}

// The mariadb client running the script (testdata/script.txt): every
// statement paired with its response, the error's code and state, the
// rows, at the client's socket and at the server's alike.
func TestScriptBothSides(t *testing.T) {
	want := []string{
		`handshake ok affected=0`,
		`COM_QUERY ok "CREATE DATABASE nw" affected=1`,
		`COM_QUERY rows "SELECT DATABASE()" rows=1 cols=1`,
		`COM_INIT_DB ok "nw" affected=0`,
		`COM_QUERY ok "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))" affected=0`,
		`COM_QUERY ok "INSERT INTO t VALUES (1,'a'),(2,'b'),(3,'c')" affected=3`,
		`COM_QUERY rows "SELECT * FROM t" rows=3 cols=2`,
		`COM_QUERY rows "SELECT * FROM t WHERE id > 5" rows=0 cols=2`,
		`COM_QUERY error "SELECT * FROM missing_table" err=1146/42S02`,
		`COM_QUERY ok "PREPARE s FROM 'SELECT name FROM t WHERE id = ?'" affected=0`,
		`COM_QUERY ok "SET @x = 2" affected=0`,
		`COM_QUERY rows "EXECUTE s USING @x" rows=1 cols=1`,
		`COM_QUERY ok "DEALLOCATE PREPARE s" affected=0`,
		`COM_QUERY ok "UPDATE t SET name='z' WHERE id < 3" affected=2`,
		`COM_QUIT none`,
	}
	segs := loadSegs(t, "script.txt")
	// the latency oracle: each request is one client segment, its
	// response the next server segment
	var lat []uint64
	for i, s := range segs {
		if s.client && s.data[3] == 0 && s.data[4] != ComQuit {
			for _, r := range segs[i+1:] {
				if !r.client {
					lat = append(lat, r.ts-s.ts)
					break
				}
			}
		}
	}
	for _, atServer := range []bool{false, true} {
		f := run(t, "script.txt", atServer, 0)
		side := "client "
		if atServer {
			side = "server "
		}
		var w []string
		for _, s := range want {
			w = append(w, side+s)
		}
		if got := summaries(f.out); !slices.Equal(got, w) {
			t.Fatalf("at %s:\ngot  %q\nwant %q", side, got, w)
		}
		var got []uint64
		for _, r := range f.out[1 : len(f.out)-1] {
			got = append(got, r.LatencyNs)
		}
		if !slices.Equal(got, lat) {
			t.Errorf("latencies %v, want %v", got, lat)
		}
		if r := f.out[0]; r.ThreadID != 11 || string(r.Version) != "5.5.5-10.11.19-MariaDB-0+deb12u1" || r.LatencyNs == 0 {
			t.Errorf("handshake %+v", r)
		}
		for _, r := range f.out {
			if r.ThreadID != 11 || r.Conn.Netns != 7 || (r.Side == event.MySQLServer) != atServer ||
				r.Conn.Src != map[bool]any{false: cliAP, true: srvAP}[atServer] {
				t.Errorf("identity %+v", r)
			}
		}
		f.t.Expire(segs[len(segs)-1].ts+2e9, f.emit)
		if n := f.t.Pending(); n != 0 || len(f.t.conns) != 0 || len(f.out) != len(want) {
			t.Errorf("pending %d conns %d after COM_QUIT and a second, %d results", n, len(f.t.conns), len(f.out))
		}
	}
}

// The binary protocol (testdata/stmt*.txt, internal/testsupport/myclient):
// COM_STMT_PREPARE/EXECUTE/RESET/CLOSE, COM_PING, a failing prepare, a
// multi-statement COM_QUERY; with and without CLIENT_DEPRECATE_EOF.
func TestPreparedStatements(t *testing.T) {
	for _, tc := range []struct {
		name   string
		s1, s2 string
	}{{"stmt.txt", "9", "10"}, {"stmt_depr.txt", "12", "13"}} {
		want := []string{
			`client handshake ok affected=0`,
			`client COM_INIT_DB ok "nw" affected=0`,
			`client COM_PING ok affected=0`,
			`client COM_STMT_PREPARE prepared "SELECT id, name FROM t WHERE id >= ?" stmt=S1 params=1`,
			`client COM_STMT_EXECUTE rows rows=2 cols=2 stmt=S1`,
			`client COM_STMT_RESET ok affected=0 stmt=S1`,
			`client COM_STMT_EXECUTE rows rows=3 cols=2 stmt=S1`,
			`client COM_STMT_CLOSE none stmt=S1`,
			`client COM_STMT_PREPARE prepared "UPDATE t SET name = 'q' WHERE id = ?" stmt=S2 params=1`,
			`client COM_STMT_EXECUTE ok affected=0 stmt=S2`,
			`client COM_STMT_PREPARE error "SELECT * FROM nope" err=1146/42S02`,
			`client COM_QUERY rows "select 1; select 2; update t set name='w' where id=1" rows=2 cols=1 results=3`,
			`client COM_STMT_CLOSE none stmt=S2`,
			`client COM_QUIT none`,
		}
		for i := range want {
			want[i] = strings.NewReplacer("S1", tc.s1, "S2", tc.s2).Replace(want[i])
		}
		f := run(t, tc.name, false, 0)
		if got := summaries(f.out); !slices.Equal(got, want) {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, want)
		}
	}
}

// TLS and the compressed protocol: the handshake says so, nothing after
// it is read (counted).
func TestUnreadable(t *testing.T) {
	f := run(t, "tls.txt", false, 0)
	if got := summaries(f.out); !slices.Equal(got, []string{"client handshake tls"}) || f.t.TLS != 1 {
		t.Errorf("tls: %q %d", got, f.t.TLS)
	}
	f = run(t, "compress.txt", true, 0)
	if got := summaries(f.out); !slices.Equal(got, []string{"server handshake ok affected=0"}) || f.t.Compressed != 1 || !f.out[0].Compress {
		t.Errorf("compress: %q %d", got, f.t.Compressed)
	}
	if f.t.Commands != 0 {
		t.Errorf("commands read in a compressed stream: %d", f.t.Commands)
	}
}

// resplit cuts the byte streams of segs into segments of random sizes
// (1 byte to whole coalesced runs), keeping each direction's order and
// the order of requests and responses.
func resplit(segs []seg, rng *rand.Rand, maxLen int) []seg {
	// each direction's first segment stays whole: a direction is read
	// from a segment that starts with a whole packet header (the
	// greeting, the handshake response)
	out := []seg{segs[0], segs[1]}
	for i := 2; i < len(segs); {
		// coalesce a run of same-direction segments, then cut anew
		j := i
		var b []byte
		for j < len(segs) && segs[j].client == segs[i].client && (j == i || rng.IntN(2) == 0) {
			b = append(b, segs[j].data...)
			j++
		}
		seq := segs[i].seq
		for off := 0; off < len(b); {
			n := min(len(b)-off, 1+rng.IntN(maxLen))
			out = append(out, seg{client: segs[i].client, ts: segs[j-1].ts, seq: seq + uint32(off), data: b[off : off+n]})
			off += n
		}
		i = j
	}
	return out
}

// Any segmentation (a packet split over segments, several packets in one,
// one byte a segment) reads the same requests and responses.
func TestAnySegmentation(t *testing.T) {
	for _, name := range []string{"script.txt", "stmt.txt", "stmt_depr.txt", "multi.txt"} {
		segs := loadSegs(t, name)
		want := summaries(run(t, name, false, 0).out)
		rng := rand.New(rand.NewPCG(1, uint64(len(name))))
		for i := 0; i < 200; i++ {
			maxLen := []int{1, 3, 7, 40, 500}[i%5]
			f := newFeeder(0)
			f.all(resplit(segs, rng, maxLen), i%2 == 0)
			f.t.Flush(f.emit)
			got := summaries(f.out)
			for k := range got { // the side word differs
				got[k] = strings.Replace(got[k], "server ", "client ", 1)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s split %d (max %d):\ngot  %q\nwant %q", name, i, maxLen, got, want)
			}
		}
	}
}

// Retransmitted segments are read once.
func TestRetransmissions(t *testing.T) {
	segs := loadSegs(t, "script.txt")
	var dup []seg
	for _, s := range segs {
		dup = append(dup, s, s)
	}
	f := newFeeder(0)
	f.all(dup, false)
	f.t.Flush(f.emit)
	if got, want := summaries(f.out), summaries(run(t, "script.txt", false, 0).out); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	// (the copy of COM_QUIT: after it nothing is read)
	if f.t.Retransmits != uint64(len(segs)-1) {
		t.Errorf("retransmits %d, want %d", f.t.Retransmits, len(segs)-1)
	}
}

// pkt is a MySQL packet: header (length, sequence id) and payload.
func pkt(seq byte, payload ...[]byte) []byte {
	var p []byte
	for _, x := range payload {
		p = append(p, x...)
	}
	return append([]byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), seq}, p...)
}

// A capture bound: a query longer than MySQLQueryMax is kept cut, its
// whole length said; one longer than the bytes captured is cut there;
// the response is paired all the same. A big result set (3000 rows in
// 16 KiB segments, 2 KiB captured of each) is counted as a lower bound
// and marked truncated, and the connection goes on (COM_QUIT paired).
func TestCaptureBound(t *testing.T) {
	long := []byte("SELECT '" + strings.Repeat("x", 1000) + "'")
	ok := pkt(1, []byte{0, 0, 0, 2, 0, 0, 0})
	for _, tc := range []struct{ capBytes, want int }{{0, event.MySQLQueryMax}, {100, 95}} {
		f := newFeeder(tc.capBytes)
		segs := []seg{
			{client: true, ts: 10, seq: 1, data: pkt(0, []byte{ComQuery}, long)},
			{client: false, ts: 25, seq: 1, data: ok},
			{client: true, ts: 30, seq: 1 + 5 + uint32(len(long)), data: pkt(0, []byte{ComPing})},
			{client: false, ts: 32, seq: 1 + uint32(len(ok)), data: ok},
		}
		f.all(segs, false)
		if len(f.out) != 2 {
			t.Fatalf("cap %d: %d results", tc.capBytes, len(f.out))
		}
		r := f.out[0]
		if len(r.Query) != tc.want || string(r.Query) != string(long[:tc.want]) || r.QueryLen != uint32(len(long)) ||
			r.Resp != event.MySQLOK || r.LatencyNs != 15 {
			t.Errorf("cap %d: %s len %d/%d", tc.capBytes, summary(&r), len(r.Query), r.QueryLen)
		}
		if r := f.out[1]; r.Command != ComPing || r.Resp != event.MySQLOK || r.LatencyNs != 2 {
			t.Errorf("cap %d: then %s", tc.capBytes, summary(&r))
		}
	}
	b := run(t, "big.txt", false, event.AppMax)
	got := summaries(b.out)
	if len(got) != 3 || !strings.HasSuffix(got[1], "truncated") || b.out[1].Rows < 100 || b.out[1].Rows >= 3000 ||
		got[2] != "client COM_QUIT none" || b.t.Uncaptured != 1 {
		t.Errorf("big: %q uncaptured %d", got, b.t.Uncaptured)
	}
	// the same bytes in 2 KiB segments: all captured, every row counted
	b = newFeeder(0)
	for _, s := range loadSegs(t, "big.txt") {
		for off := 0; off < len(s.data); off += event.AppMax {
			b.record(s, off, min(event.AppMax, len(s.data)-off), false)
		}
	}
	if r := b.out[1]; r.Rows != 3000 || r.Truncated || r.Columns != 2 {
		t.Errorf("big, all bytes: %s", summary(&r))
	}
}

// A lost server segment: that response is reported cut short, the next
// requests pair again. A lost client segment: its response is unmatched
// (counted), the next ones pair.
func TestLostSegments(t *testing.T) {
	segs := loadSegs(t, "script.txt")
	full := summaries(run(t, "script.txt", false, 0).out)
	// the response to SELECT * FROM t
	var i int
	for i = range segs {
		if strings.Contains(string(segs[i].data), "SELECT * FROM t") {
			break
		}
	}
	lost := slices.Delete(slices.Clone(segs), i+1, i+2)
	f := newFeeder(0)
	f.all(lost, true)
	f.t.Flush(f.emit)
	got := summaries(f.out)
	if len(got) != len(full) || got[6] != `server COM_QUERY unknown "SELECT * FROM t" truncated` || f.t.Gaps != 1 {
		t.Fatalf("server loss: %q gaps %d", got, f.t.Gaps)
	}
	for k := 7; k < len(got); k++ {
		if strings.Replace(got[k], "server", "client", 1) != full[k] {
			t.Errorf("after the loss: %q, want %q", got[k], full[k])
		}
	}
	lost = slices.Delete(slices.Clone(segs), i, i+1) // the request
	f = newFeeder(0)
	f.all(lost, false)
	f.t.Flush(f.emit)
	got = summaries(f.out)
	if len(got) != len(full)-1 || f.t.Unmatched != 1 || !slices.Equal(got[6:], full[7:]) {
		t.Errorf("client loss: %q unmatched %d", got, f.t.Unmatched)
	}
}

// Joining a connection in its middle (netwatcher started after it):
// reading starts at the first request at a segment's start.
// (stmt_depr.txt: without the handshake, CLIENT_DEPRECATE_EOF is not
// known: a prepare's end is found at the next packet.)
func TestJoinMidConnection(t *testing.T) {
	for _, name := range []string{"script.txt", "stmt.txt", "stmt_depr.txt"} {
		segs := loadSegs(t, name)
		full := summaries(run(t, name, false, 0).out)
		for k := 1; k < len(segs); k++ {
			f := newFeeder(0)
			f.all(segs[k:], false)
			f.t.Flush(f.emit)
			got := summaries(f.out)
			if len(got) == 0 {
				t.Fatalf("%s from segment %d: nothing", name, k)
			}
			if !slices.Equal(got, full[len(full)-len(got):]) {
				t.Errorf("%s from segment %d: %q", name, k, got)
			}
		}
	}
}

// The hot path allocates nothing once a connection's state exists (and
// is recycled after COM_QUIT).
func TestNoAllocs(t *testing.T) {
	segs := loadSegs(t, "stmt.txt")
	f := newFeeder(0)
	emit := func(*event.MySQLResult) {}
	feed := func() {
		for _, s := range segs {
			f.record(s, 0, len(s.data), true)
		}
	}
	f.t.Packet(&f.ev, emit)
	feed()
	f.out = nil
	old := f.emit
	_ = old
	n := testing.AllocsPerRun(20, func() {
		for _, s := range segs {
			a := &f.x.App
			*a = event.AppInfo{TCP: true, Rx: s.client, Src: srvAP, Dst: cliAP, Seq: s.seq, PayLen: uint16(len(s.data))}
			if s.client {
				a.Src, a.Dst = cliAP, srvAP
			}
			a.Len = uint16(copy(a.Data[:], s.data))
			f.ev.TS, f.ev.Conn = s.ts, event.Conn{Sock: 2, Netns: 7}
			f.t.Packet(&f.ev, emit)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per session", n)
	}
}

// --mysql-port: the capture's port, and the side (the socket whose local
// port it is: the server's).
func TestServicePort(t *testing.T) {
	p := New(&config.Config{MySQLPort: 3307})
	if got := p.Ports(); len(got) != 1 || got[0] != 3307 || p.Type() != event.MySQL || p.CapLen() != event.AppMax {
		t.Fatalf("ports %v type %v caplen %d", got, p.Type(), p.CapLen())
	}
	if got := New(&config.Config{}).Ports(); got[0] != DefaultPort {
		t.Fatalf("default port %v", got)
	}
	f := newFeeder(0)
	f.t = p.Tracker()
	srv := netip.AddrPortFrom(srvAP.Addr(), 3307)
	for _, s := range loadSegs(t, "multi.txt") {
		a := &f.x.App
		*a = event.AppInfo{TCP: true, Rx: s.client, Src: srv, Dst: cliAP, Seq: s.seq, PayLen: uint16(len(s.data))}
		if s.client {
			a.Src, a.Dst = cliAP, srv
		}
		a.Len = uint16(copy(a.Data[:], s.data))
		f.ev = event.Event{Type: event.MySQL, TS: s.ts, Conn: event.Conn{Sock: 2}, Ext: &f.x}
		f.t.Packet(&f.ev, f.emit)
	}
	if len(f.out) != 5 || f.out[1].Side != event.MySQLServer || f.out[1].Conn.Src != srv || !f.out[1].Conn.IsServer {
		t.Errorf("%d results, first request %+v", len(f.out), f.out[1])
	}
}

// BenchmarkSession: one recorded binary-protocol session (29 segments,
// both directions) through the tracker at the server's socket.
func BenchmarkSession(b *testing.B) {
	segs := loadSegs(b, "stmt.txt")
	f := newFeeder(0)
	emit := func(*event.MySQLResult) {}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for _, s := range segs {
			a := &f.x.App
			*a = event.AppInfo{TCP: true, Rx: s.client, Src: srvAP, Dst: cliAP, Seq: s.seq, PayLen: uint16(len(s.data))}
			if s.client {
				a.Src, a.Dst = cliAP, srvAP
			}
			a.Len = uint16(copy(a.Data[:], s.data))
			f.ev.TS, f.ev.Conn = s.ts, event.Conn{Sock: uint64(i), Netns: 7}
			f.t.Packet(&f.ev, emit)
		}
		if i%1000 == 999 {
			f.t.Expire(1<<62, emit) // forget the quit connections
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(segs)), "ns/segment")
}
