package output

import (
	"bytes"
	"compress/gzip"
	"flag"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/httpinfo"
	"github.com/netwatcher/netwatcher/internal/track"
)

var update = flag.Bool("update", false, "rewrite testdata/golden_*.txt from the current formatters")

// fixedClock formats times at a fixed offset, in UTC: golden output.
func fixedClock() *Clock {
	return &Clock{off: 1_790_000_000_123_456_789, loc: time.UTC, sec: -1}
}

// goldenValues are the integers the golden records are made of: the edges
// of every digit count and of the layer-time formats, and random ones.
func goldenValues(r *rand.Rand, n int) []uint64 {
	vs := []uint64{0, 1, 9, 10, 11, 99, 100, 101, 255, 256, 999, 1000, 1001, 1010, 1100, 9999, 10000, 10001,
		65535, 65536, 99999, 100000, 999999, 1000000, math.MaxUint32 - 1, math.MaxUint32, 1 << 32,
		1e9 - 1, 1e9, 1e10, 1e12 + 7, 1e15, 1e18, 1e19 - 1, 1e19, math.MaxInt64, math.MaxUint64}
	for i := 0; i < n; i++ {
		vs = append(vs, r.Uint64()>>r.IntN(64))
	}
	return vs
}

func goldenAddrs() []netip.AddrPort {
	return []netip.AddrPort{
		{},
		netip.MustParseAddrPort("0.0.0.0:0"),
		netip.MustParseAddrPort("1.2.3.4:5"),
		netip.MustParseAddrPort("10.0.0.10:80"),
		netip.MustParseAddrPort("198.18.1.1:40000"),
		netip.MustParseAddrPort("255.255.255.255:65535"),
		netip.MustParseAddrPort("100.64.99.199:443"),
		netip.MustParseAddrPort("[::1]:8080"),
		netip.MustParseAddrPort("[2001:db8::1:0:0:1]:65535"),
		netip.MustParseAddrPort("[::ffff:10.1.2.3]:7000"),
		netip.MustParseAddrPort("[fe80::1%eth0]:22"),
		netip.MustParseAddrPort("[2001:db8:1234:5678:9abc:def0:1234:5678]:1"),
	}
}

// goldenOutput formats many records of every kind the per-packet path
// writes (packet, connection, error, retransmit, HTTP) in every mode:
// the bytes the formatters' speed-ups must not change.
func goldenOutput() []byte {
	r := rand.New(rand.NewPCG(17, 42))
	vs := goldenValues(r, 100)
	aps := goldenAddrs()
	https := [][]byte{nil, []byte("-"), []byte(`GET /index.html HTTP/1.1`), []byte(`POST /a\"b\\c HTTP/1.0`), []byte(`HTTP/1.1 200 OK`)}
	var out []byte
	for _, json := range []bool{false, true} {
		for _, timed := range []bool{false, true} {
			for _, sample := range []uint32{1, 4} {
				p := &Printer{JSON: json, Timed: timed, HTTP: timed, Sample: sample, Fields: Fields{Extra: timed, Retrans: sample > 1}, Clock: fixedClock()}
				for i, v := range vs {
					u := func(k int) uint64 { return vs[(i*7+k*13)%len(vs)] }
					c := event.Conn{ID: u(1) % 100000, Sock: v, Netns: uint32(u(2)), Src: aps[i%len(aps)], Dst: aps[(i/3)%len(aps)],
						IsServer: i%3 == 0, Pid: uint32(u(3)), OwnerSrc: event.OwnerSrc(i % 3), EstNs: u(4),
						FastRetrans: uint32(u(5)), TimeoutRetrans: uint32(u(6)), RetransSegs: uint32(u(7))}
					if i%4 != 0 {
						copy(c.Comm[:], []string{"nginx", "curl", "a\"b\\c", "x\x01y", "sixteen-chars-xx"}[i%5])
					}
					if i%11 == 0 {
						c.Pid = 0
					}
					ts := u(8)
					if i%2 == 0 {
						ts = 1_000_000_000 + v%(3*1e9) // times near the clock's second changes
					}
					pk := event.PacketInfo{Seq: uint32(v), Ack: uint32(u(9)), Len: uint32(u(10) % 70000), EstLo: uint32(c.EstNs), Rx: i%2 == 1,
						MacNs: vs[i%len(vs)] % 30000, IPNs: u(11) % 20000, TCPNs: u(12), Missing: uint8(i % 8)}
					if i < 40 {
						pk.MacNs, pk.IPNs, pk.TCPNs = vs[i], vs[(i+1)%40], vs[(i+2)%40]
					}
					ev := &event.Event{Type: event.Packet, TS: ts, Conn: c, Packet: pk}
					h := https[i%len(https)]
					out = p.Packet(out, ev, h)
					lh := h
					if len(lh) == 0 {
						lh = []byte("-")
					}
					out = AppendPacketLog(out, &c, &pk, timed, lh, sample)
					e := &track.Entry{Conn: c, HasStats: i%2 == 0, Closed: i%5 == 0, CloseNs: u(13),
						Stats: event.Stats{SrttUs8: uint32(u(14)), Cwnd: uint32(u(15)), Ssthresh: uint32(u(16)), SndWnd: uint32(u(17)),
							Sndbuf: uint32(u(18)), WmemQueued: uint32(u(19)), BytesReceived: u(20), BytesAcked: u(21), TotalRetrans: uint32(u(22)),
							Backlog: uint32(u(23)), MaxBacklog: uint32(u(24))}}
					out = AppendConnLog(out, e, p.Fields, u(25))
					out = p.Conn(out, []string{"open", "close", "owner", "exists", "sample"}[i%5], ts, e, u(25))
					er := event.ErrorInfo{Seq: uint32(u(26)), Ack: uint32(u(27)), Reason: uint32(u(28) % 100), Name: "Invalid SEQ",
						Src: aps[(i+5)%len(aps)], Dst: aps[(i+7)%len(aps)], Rx: i%2 == 0}
					eev := &event.Event{Type: event.Error, TS: ts, Conn: c, Err: er}
					out = AppendErrLog(out, &c, &er, er.Name)
					out = p.Error(out, eev, er.Name)
					rev := &event.Event{Type: event.Retrans, TS: ts, Conn: c,
						Retrans: event.RetransInfo{CaState: uint8(i % 5), OldState: uint8(i % 3), PreEst: i%7 == 0, Segs: uint16(u(29) % 64), Seq: uint32(u(33))}}
					out = p.Episode(out, rev, []string{"fast", "timeout", "syn"}[i%3])
					out = p.RetransSegment(out, rev)
					m := httpinfo.Match{Conn: c.ID, Method: httpinfo.Method(i % 4), Status: uint16(u(34) % 600), ReqTS: u(35), RespTS: u(36), Latency: u(30) % 1e10, Interim: i%9 == 0}
					out = p.HTTPMatch(out, ts, &c, &m)
					s := httpinfo.Summary{Requests: u(31) % 1000, Responses: u(32) % 1000, Matched: u(37) % 1000, Unmatched: u(38) % 100, Interim: u(39) % 10, Dropped: u(40) % 10, Pending: i % 3,
						MinLatency: u(41) % 1e9, MaxLatency: u(42) % 1e10, SumLatency: u(43) % 1e12, Class: [6]uint64{0, u(44) % 9, u(45) % 99, u(46) % 999, 0, u(47) % 9}}
					out = p.HTTPSummary(out, ts, &c, &s)
				}
			}
		}
	}
	return out
}

// TestGoldenRecords: the packet-path formatters write exactly the bytes
// they wrote when testdata/golden_records.txt.gz was made (go test -update).
func TestGoldenRecords(t *testing.T) {
	got := goldenOutput()
	const path = "testdata/golden_records.txt.gz"
	if *update {
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		w.Write(got)
		w.Close()
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, z.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := range min(len(gl), len(wl)) {
			if !bytes.Equal(gl[i], wl[i]) {
				t.Fatalf("line %d differs:\n got %q\nwant %q", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%d lines, want %d", len(gl), len(wl))
	}
}
