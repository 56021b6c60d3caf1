package output

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/track"
)

func entry() *track.Entry {
	e := &track.Entry{Conn: event.Conn{
		Sock: 0xffff971842193f00, Pid: 45192,
		Src: netip.MustParseAddrPort("192.168.239.132:45514"), Dst: netip.MustParseAddrPort("34.117.237.239:443"),
		EstNs: 1_000_000_000, ID: 7,
	}, HasStats: true}
	copy(e.Conn.Comm[:], "curl")
	e.Stats = event.Stats{SrttUs8: 725505 << 3, Cwnd: 10, Ssthresh: 2147483647, SndWnd: 64028, Sndbuf: 87040,
		WmemQueued: 1319, BytesReceived: 1052, BytesAcked: 1730}
	return e
}

func TestConnLogMatchesSpec(t *testing.T) {
	e := entry()
	got := string(AppendConnLog(nil, e, Fields{Extra: true, Retrans: true}, 1_000_000_000+756_741_000))
	want := `connection{pid="45192",sock="0xffff971842193f00",src="192.168.239.132:45514",dst="34.117.237.239:443",is_server="0",backlog="0",maxbacklog="0",rwnd="64028",cwnd="10",ssthresh="2147483647",sndbuf="87040",wmem_queued="1319",rx_bytes="1.027K",tx_bytes="1.689K",srtt="725505",duration="756741",total_retrans="0",fast_retrans="0",timeout_retrans="0",retrans_segs="0",conn_id="7"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	got = string(AppendConnLog(nil, e, Fields{}, 0))
	if got != `connection{pid="45192",sock="0xffff971842193f00",src="192.168.239.132:45514",dst="34.117.237.239:443",is_server="0",conn_id="7"}`+"\n" {
		t.Errorf("plain: %s", got)
	}
}

func TestIPv6Addresses(t *testing.T) {
	e := entry()
	e.Conn.Src = netip.MustParseAddrPort("[fd00::1]:80")
	e.Conn.Dst = netip.MustParseAddrPort("[::1]:5000")
	got := string(AppendConnLog(nil, e, Fields{}, 0))
	if !strings.Contains(got, `src="[fd00::1]:80",dst="[::1]:5000"`) {
		t.Error(got)
	}
}

func TestHumanBytes(t *testing.T) {
	for v, want := range map[uint64]string{0: "0", 1023: "1023", 1024: "1.000K", 1536: "1.500K", 5 << 20: "5.000M", 3 << 30: "3.000G"} {
		if got := string(AppendHumanBytes(nil, v)); got != want {
			t.Errorf("%d: %s want %s", v, got, want)
		}
	}
}

func TestPacketLogMissingAndTimes(t *testing.T) {
	p := &event.PacketInfo{Seq: 3151729168, Ack: 701368426, MacNs: 1000, IPNs: 3500, TCPNs: 17000, Missing: event.MissingIP}
	got := string(AppendPacketLog(nil, &event.Conn{Sock: 0xffff9716820b4800, ID: 3}, p, true, []byte("GET / HTTP/1.1"), 1))
	want := `packet{sock="0xffff9716820b4800",seq="3151729168",ack="701368426",mac_time="1",ip_time="-",tcp_time="17",http_info="GET / HTTP/1.1",rx="0",conn_id="3"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	got = string(AppendPacketLog(nil, &event.Conn{Sock: 1}, p, false, []byte("-"), 1))
	if !strings.Contains(got, `mac_time="-",ip_time="-",tcp_time="-",http_info="-",rx="0",conn_id="-"}`) {
		t.Errorf("untimed, unknown connection: %s", got)
	}
	// --sample 10: said after conn_id
	got = string(AppendPacketLog(nil, &event.Conn{Sock: 1, ID: 4}, p, true, []byte("-"), 10))
	if !strings.HasSuffix(got, `rx="0",conn_id="4",sample="10"}`+"\n") {
		t.Errorf("sampled: %s", got)
	}
}

func printer(json bool) *Printer {
	return &Printer{JSON: json, Timed: true, HTTP: true, Fields: Fields{Extra: true, Retrans: true}, Clock: NewClock(time.UTC)}
}

// Table columns fit IPv4 and grow (header again) for a wider address.
func TestTableAligned(t *testing.T) {
	p := printer(false)
	e := entry()
	a := string(p.Conn(nil, "open", 1, e, 2))
	if strings.Count(a, "\n") != 2 || !strings.HasPrefix(a, "TIME") {
		t.Fatalf("no header: %s", a)
	}
	lines := strings.Split(a, "\n")
	if strings.Index(lines[0], "DST") != strings.Index(lines[1], "34.117") || strings.Index(lines[1], "srtt=") > 140 {
		t.Errorf("not aligned:\n%s", a)
	}
	e.Conn.Pid = 1
	b := string(p.Conn(nil, "close", 1, e, 2))
	if strings.Count(b, "\n") != 1 || strings.Index(b, "34.117") != strings.Index(lines[1], "34.117") {
		t.Errorf("same width, no header, same columns:\n%s%s", a, b)
	}
	e.Conn.Src = netip.MustParseAddrPort("[fd00:4e57:1:2:3:4:5:1]:65000")
	c := string(p.Conn(nil, "close", 1, e, 2))
	cl := strings.Split(c, "\n")
	if len(cl) != 3 || strings.Index(cl[0], "DST") != strings.Index(cl[1], "34.117") {
		t.Errorf("wider address: header again, aligned:\n%s", c)
	}
}

// Every record of a connection names it the same way: time, conn_id,
// addresses, owner; unknown values are null.
func TestJSONNamesTheConnection(t *testing.T) {
	p := printer(true)
	e := entry()
	ev := &event.Event{Type: event.Packet, TS: 5, Conn: e.Conn, Packet: event.PacketInfo{Seq: 1, Ack: 2}}
	for _, line := range []string{
		string(p.Conn(nil, "open", 5, e, 5)),
		string(p.Packet(nil, ev, []byte(`GET /a\"b\\c HTTP/1.1`))),
	} {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if m["conn_id"] != 7.0 || m["src"] != "192.168.239.132:45514" || m["pid"] != 45192.0 || m["comm"] != "curl" {
			t.Errorf("connection not named: %s", line)
		}
		if _, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil {
			t.Errorf("time: %v", err)
		}
		if h, ok := m["http_info"]; ok && h != `GET /a"b\c HTTP/1.1` {
			t.Errorf("http_info escaped twice: %q", h)
		}
	}
	ev.Conn = event.Conn{Sock: 1}
	line := string(p.Packet(nil, ev, nil))
	if !strings.Contains(line, `"conn_id":null,"src":null,"dst":null,"pid":null,"comm":null`) || !strings.Contains(line, `"http_info":null`) {
		t.Errorf("unknown connection: %s", line)
	}
}

func TestClockWallTime(t *testing.T) {
	c := NewClock(time.UTC)
	now := time.Now()
	got := string(c.AppendJSON(nil, MonoNow()))
	w, err := time.Parse(time.RFC3339Nano, got)
	if err != nil || w.Sub(now).Abs() > time.Second {
		t.Errorf("%s: %v (now %v)", got, err, now)
	}
	if tab := string(c.AppendTable(nil, MonoNow())); len(tab) != len("15:04:05.000000") {
		t.Errorf("table time %q", tab)
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	e := entry()
	buf := make([]byte, 0, 4096)
	ev := &event.Event{Type: event.Packet, Conn: e.Conn, Packet: event.PacketInfo{Seq: 1, Ack: 2}}
	pj, pt := printer(true), printer(false)
	pt.Packet(nil, ev, nil) // header
	n := testing.AllocsPerRun(100, func() {
		b := AppendConnLog(buf[:0], e, Fields{Extra: true, Retrans: true}, 5)
		b = pj.Conn(b, "open", 1, e, 5)
		b = pj.Packet(b, ev, []byte("-"))
		b = pt.Packet(b, ev, []byte("-"))
		_ = b
	})
	if n != 0 {
		t.Errorf("%v allocs per event", n)
	}
}

func TestLayerUsMatchesFloat(t *testing.T) {
	for ns := uint64(0); ns < 20000; ns++ {
		var want string
		if ns < 10000 {
			want = strconv.FormatFloat(float64(ns)/1000, 'f', -1, 64)
		} else {
			want = strconv.FormatUint(ns/1000, 10)
		}
		if got := string(layerUs(nil, ns, false)); got != want {
			t.Fatalf("layerUs(%d) = %q, want %q", ns, got, want)
		}
	}
	if got := string(layerUs(nil, 5, true)); got != "-" {
		t.Errorf("missing: %q", got)
	}
}

// A SYN retransmitted before the connection exists names its addresses and
// owner (the record carries them), on the console and in JSON.
func TestSynEpisode(t *testing.T) {
	ev := &event.Event{Type: event.Cong, TS: 5, Conn: event.Conn{Sock: 0xffff1, Netns: 9, Pid: 42, OwnerSrc: event.OwnerSyscall,
		Src: netip.MustParseAddrPort("198.18.0.1:40000"), Dst: netip.MustParseAddrPort("198.18.0.2:80")},
		Retrans: event.RetransInfo{CaState: event.CaLoss, PreEst: true}}
	copy(ev.Conn.Comm[:], "curl")
	tab := string(printer(false).Episode(nil, ev, "syn"))
	if !strings.Contains(tab, "[R] syn retransmit (Open -> Loss): conn = - sock = 0xffff1 198.18.0.1:40000 -> 198.18.0.2:80 pid = 42 comm = curl") {
		t.Errorf("table: %s", tab)
	}
	js := string(printer(true).Episode(nil, ev, "syn"))
	if !strings.Contains(js, `"netns":9,"sock":"0xffff1","conn_id":null,"src":"198.18.0.1:40000","dst":"198.18.0.2:80","pid":42,"comm":"curl","kind":"syn"`) {
		t.Errorf("json: %s", js)
	}
}
