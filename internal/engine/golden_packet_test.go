package engine

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/golden_*.txt from the current pipeline")

// goldenStream: connections opened, their packets interleaved (HTTP
// requests and responses, layer times, missing stamps), packets of
// sockets the table does not know, of a closed connection (late records)
// and of a newer connection on a reused socket, closes.
func goldenStream() []event.Event {
	var evs []event.Event
	const n = 24
	conn := func(i, gen int) event.Conn {
		sk := uint64(0xffff888100000000) + uint64(i)*0x100
		src := netip.AddrPortFrom(netip.MustParseAddr("198.18.1.1"), uint16(40000+i))
		dst := netip.MustParseAddrPort("198.18.1.2:80")
		if i%5 == 4 {
			src = netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), uint16(40000+i))
			dst = netip.MustParseAddrPort("[2001:db8::2]:8080")
		}
		c := event.Conn{Sock: sk, Netns: 4026531833 + uint32(i%2), Pid: uint32(1000 + i), Src: src, Dst: dst,
			EstNs: uint64(1000+i) + uint64(gen)<<20, IsServer: i%2 == 1, OwnerSrc: event.OwnerSrc(1 + i%2)}
		if i%7 != 3 {
			copy(c.Comm[:], []string{"nginx", "curl", "redis-server"}[i%3])
		}
		return c
	}
	ts := uint64(5000)
	for i := 0; i < n; i++ {
		ts += 7
		evs = append(evs, event.Event{Type: event.ConnOpen, TS: ts, Conn: conn(i, 0)})
	}
	pkt := func(c event.Conn, seq uint32, rx bool, http string, k int) event.Event {
		ts += 13
		ev := event.Event{Type: event.Packet, TS: ts, Conn: event.Conn{Sock: c.Sock, Netns: c.Netns},
			Packet: event.PacketInfo{Seq: seq, Ack: seq*3 + 1, Len: uint32(100 + k%1400), EstLo: uint32(c.EstNs), Rx: rx,
				MacNs: uint64(k*37) % 25000, IPNs: uint64(k*101) % 12000, TCPNs: uint64(k*977) % 90000, Missing: uint8(k % 8)}}
		if http != "" {
			ev.Packet.HTTPLen = uint8(copy(ev.Packet.HTTP[:], http))
			ev.Packet.HTTPCut = k%3 == 0
		}
		return ev
	}
	for k := 0; k < 360; k++ {
		i := (k*7 + k/5) % n
		c := conn(i, 0)
		http := ""
		switch k % 6 {
		case 1:
			http = "GET /index.html?q=\"x\" HTTP/1.1\r\nHost: x\r\n\r\n"
		case 2:
			http = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
		case 4:
			http = "POST /a\\b\x01 HTTP/1.0\r\n"
		}
		evs = append(evs, pkt(c, uint32(k*1000+i), k%2 == 1, http, k))
		if k%50 == 49 { // a socket the table does not know
			u := c
			u.Sock += 0x10
			evs = append(evs, pkt(u, uint32(k), false, "", k))
		}
		if k == 200 { // close a few, then late packets of them, then their sockets' next connections
			for j := 0; j < 4; j++ {
				ts += 3
				evs = append(evs, event.Event{Type: event.ConnClose, TS: ts, Conn: conn(j, 0)})
			}
			for j := 0; j < 4; j++ {
				evs = append(evs, pkt(conn(j, 0), 77, true, "", j))
				ts += 3
				evs = append(evs, event.Event{Type: event.ConnOpen, TS: ts, Conn: conn(j, 1)})
				evs = append(evs, pkt(conn(j, 1), 78, false, "GET / HTTP/1.1\r\n", j))
			}
		}
	}
	for i := 0; i < n; i++ {
		ts += 5
		evs = append(evs, event.Event{Type: event.ConnClose, TS: ts, Conn: conn(i, 0)})
	}
	return evs
}

var goldenTimes = regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{6}|"time":"[^"]*"`)

// TestGoldenPacketPath: the console (table and JSON, wall-clock times
// masked) and packets.log of goldenStream are the bytes they were when
// testdata/golden_packet_*.txt were made (go test -update).
func TestGoldenPacketPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  config.Config
	}{
		{"table", config.Config{Time: true, HTTP: true, Output: config.Table, DataDir: "x"}},
		{"json", config.Config{Time: true, HTTP: true, Retrans: true, Output: config.JSON, DataDir: "x"}},
		{"json_all_sample", config.Config{All: true, Sample: 3, Output: config.JSON, DataDir: "x"}},
		{"quiet", config.Config{Quiet: true, HTTP: true, Time: true, Output: config.JSON, DataDir: "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files, err := output.OpenFiles(dir)
			if err != nil {
				t.Fatal(err)
			}
			var con bytes.Buffer
			cfg := tc.cfg
			p := newPipeline(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), &con, files, nil, nil)
			evs := goldenStream()
			for i := range evs {
				p.handle(&evs[i])
				if i%97 == 0 {
					p.flushOut()
				}
			}
			p.flushOut()
			if err := files.Flush(); err != nil {
				t.Fatal(err)
			}
			pl, err := os.ReadFile(filepath.Join(dir, "packets.log"))
			if err != nil {
				t.Fatal(err)
			}
			files.Close()
			got := goldenTimes.ReplaceAll(con.Bytes(), []byte("TIME"))
			got = append(got, "---- packets.log\n"...)
			got = append(got, pl...)
			got = append(got, "---- unnamed packets "...)
			got = strconv.AppendUint(got, p.noAddrs, 10)
			got = append(got, '\n')
			path := filepath.Join("testdata", "golden_packet_"+tc.name+".txt")
			if *updateGolden {
				os.MkdirAll("testdata", 0o755)
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
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
		})
	}
}
