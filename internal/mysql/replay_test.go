package mysql

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// seg is one recorded TCP segment (testdata/*.txt: tcpdump captures of a
// real MariaDB server and client, one segment with payload a line).
type seg struct {
	client bool // sent by the client
	ts     uint64
	seq    uint32
	data   []byte
}

func loadSegs(t testing.TB, name string) []seg {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var segs []seg
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 4 {
			t.Fatalf("%s: bad line %q", name, l)
		}
		ts, _ := strconv.ParseUint(f[1], 10, 64)
		sq, _ := strconv.ParseUint(f[2], 10, 32)
		b, err := hex.DecodeString(f[3])
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, seg{client: f[0] == "c", ts: ts + 1e9, seq: uint32(sq), data: b})
	}
	return segs
}

var (
	cliAP = netip.MustParseAddrPort("127.0.0.1:40000")
	srvAP = netip.MustParseAddrPort("127.0.0.1:3306")
)

// feeder makes the records the kernel capture would: at the client's
// socket (sock 1: sent = client's segments) and/or the server's (sock 2).
type feeder struct {
	t   *Tracker
	ev  event.Event
	x   event.Ext
	out []event.MySQLResult
	// capBytes: bytes of each segment copied (the capture's bound); 0: all.
	capBytes int
}

func newFeeder(capBytes int) *feeder {
	f := &feeder{t: NewTracker(DefaultPort), capBytes: capBytes}
	f.ev.Ext = &f.x
	return f
}

func (f *feeder) emit(r *event.MySQLResult) {
	c := *r
	c.Query = append([]byte(nil), r.Query...)
	c.Version = append([]byte(nil), r.Version...)
	f.out = append(f.out, c)
}

// record feeds one record: the segment s (or a piece of it at off) seen
// at the client's socket (atServer false) or the server's.
func (f *feeder) record(s seg, off, n int, atServer bool) {
	a := &f.x.App
	*a = event.AppInfo{TCP: true}
	a.Rx = s.client == atServer
	a.Src, a.Dst = cliAP, srvAP
	if !s.client {
		a.Src, a.Dst = srvAP, cliAP
	}
	sock := uint64(1)
	if atServer {
		sock = 2
	}
	f.ev = event.Event{Type: event.MySQL, TS: s.ts, Conn: event.Conn{Sock: sock, Netns: 7}, Ext: &f.x}
	a.Seq = s.seq + uint32(off)
	a.PayLen = uint16(n)
	b := s.data[off : off+n]
	if f.capBytes > 0 && len(b) > f.capBytes {
		b = b[:f.capBytes]
	}
	a.Len = uint16(copy(a.Data[:], b))
	f.t.Packet(&f.ev, f.emit)
}

func (f *feeder) all(segs []seg, atServer bool) {
	for _, s := range segs {
		f.record(s, 0, len(s.data), atServer)
	}
}

// summary is a result as one comparable line.
func summary(r *event.MySQLResult) string {
	s := fmt.Sprintf("%s %s %s", r.Side, event.MySQLCommandName(r.Command), r.Resp)
	if len(r.Query) > 0 {
		s += fmt.Sprintf(" %q", r.Query)
	}
	if r.Resp == event.MySQLErr {
		s += fmt.Sprintf(" err=%d/%s", r.ErrCode, r.SQLState[:])
	}
	if r.Resp == event.MySQLRows || r.Rows > 0 {
		s += fmt.Sprintf(" rows=%d cols=%d", r.Rows, r.Columns)
	}
	if r.Resp == event.MySQLOK {
		s += fmt.Sprintf(" affected=%d", r.Affected)
	}
	if r.Results > 1 {
		s += fmt.Sprintf(" results=%d", r.Results)
	}
	if r.HasStmt {
		s += fmt.Sprintf(" stmt=%d", r.StmtID)
	}
	if r.Resp == event.MySQLPrepared {
		s += fmt.Sprintf(" params=%d", r.Params)
	}
	if r.Truncated {
		s += " truncated"
	}
	return s
}
