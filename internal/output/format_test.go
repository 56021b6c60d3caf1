package output

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/track"
)

func entry() *track.Entry {
	e := &track.Entry{Conn: event.Conn{
		Sock: 0xffff971842193f00, Pid: 45192,
		Src: netip.MustParseAddrPort("192.168.239.132:45514"), Dst: netip.MustParseAddrPort("34.117.237.239:443"),
		EstNs: 1_000_000_000,
	}, HasStats: true}
	copy(e.Conn.Comm[:], "curl")
	e.Stats = event.Stats{SrttUs8: 725505 << 3, Cwnd: 10, Ssthresh: 2147483647, SndWnd: 64028, Sndbuf: 87040,
		WmemQueued: 1319, BytesReceived: 1052, BytesAcked: 1730}
	return e
}

func TestConnLogMatchesSpec(t *testing.T) {
	e := entry()
	got := string(AppendConnLog(nil, e, Fields{Extra: true, Retrans: true}, 1_000_000_000+756_741_000))
	want := `connection{pid="45192",sock="0xffff971842193f00",src="192.168.239.132:45514",dst="34.117.237.239:443",is_server="0",backlog="0",maxbacklog="0",rwnd="64028",cwnd="10",ssthresh="2147483647",sndbuf="87040",wmem_queued="1319",rx_bytes="1.027K",tx_bytes="1.689K",srtt="725505",duration="756741",total_retrans="0",fast_retrans="0",timeout_retrans="0",retrans_segs="0"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	got = string(AppendConnLog(nil, e, Fields{}, 0))
	if got != `connection{pid="45192",sock="0xffff971842193f00",src="192.168.239.132:45514",dst="34.117.237.239:443",is_server="0"}`+"\n" {
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
	got := string(AppendPacketLog(nil, 0xffff9716820b4800, p, true, []byte("GET / HTTP/1.1")))
	want := `packet{sock="0xffff9716820b4800",seq="3151729168",ack="701368426",mac_time="1",ip_time="-",tcp_time="17",http_info="GET / HTTP/1.1",rx="0"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	got = string(AppendPacketLog(nil, 1, p, false, []byte("-")))
	if !strings.Contains(got, `mac_time="-",ip_time="-",tcp_time="-",http_info="-"`) {
		t.Errorf("untimed: %s", got)
	}
	// a quote in the HTTP text never breaks the line
	got = string(AppendPacketLog(nil, 1, p, false, []byte("GET /\"x\n HTTP/1.1")))
	if !regexp.MustCompile(`^packet\{[^\n]*\}\n$`).MatchString(got) || strings.Count(got, `\"`) != 1 {
		t.Errorf("escaping: %q", got)
	}
}

func TestTableAligned(t *testing.T) {
	e := entry()
	a := string(AppendConnTable(nil, "open", e))
	e.Conn.Pid = 1
	e.Conn.Src = netip.MustParseAddrPort("[fd00:4e57:1::1]:80")
	b := string(AppendConnTable(nil, "close", e))
	// the DST column starts at the same offset
	ia, ib := strings.Index(a, "34.117"), strings.Index(b, "34.117")
	if ia != ib || ia <= 0 {
		t.Errorf("columns not aligned:\n%s%s", a, b)
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	e := entry()
	buf := make([]byte, 0, 4096)
	ev := &event.Event{Type: event.Packet, Conn: e.Conn, Packet: event.PacketInfo{Seq: 1, Ack: 2}}
	n := testing.AllocsPerRun(100, func() {
		b := AppendConnLog(buf[:0], e, Fields{Extra: true, Retrans: true}, 5)
		b = AppendConnJSON(b, "open", 1, e, Fields{Extra: true, Retrans: true}, 5)
		b = AppendPacketJSON(b, ev, true, []byte("-"))
		b = AppendPacketTable(b, ev, true, []byte("-"))
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
