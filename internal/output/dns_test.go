package output

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

func dnsResult() *event.DNSResult {
	r := &event.DNSResult{Kind: event.DNSAnswer, Side: event.DNSClient, TS: 5_000_000_000, ID: 4242,
		Name: []byte(`a\"b.nwtest.`), HasQuestion: true, QType: 28, Rcode: 3, Answers: 0, LatencyNs: 312_512,
		Conn: event.Conn{Netns: 4026532177, Sock: 0xffff888145528000, Pid: 24952,
			Src: netip.MustParseAddrPort("198.19.250.1:34718"), Dst: netip.MustParseAddrPort("198.19.250.2:53")}}
	copy(r.Conn.Comm[:], "dig")
	return r
}

func TestDNSLogLine(t *testing.T) {
	r := dnsResult()
	want := `dns{netns="4026532177",sock="0xffff888145528000",src="198.19.250.1:34718",dst="198.19.250.2:53",pid="24952",comm="dig",event="answer",side="client",proto="udp",id="4242",qname="a\"b.nwtest.",qtype="AAAA",rcode="NXDOMAIN",answers="0",tc="0",latency="312.512",conn_id="-"}` + "\n"
	if got := string(AppendDNSLog(nil, r)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	r.Kind, r.Side, r.TCP, r.HasQuestion, r.Conn.Pid, r.Conn.ID = event.DNSUnanswered, event.DNSServer, true, false, 0, 7
	want = `pid="-",comm="-",event="unanswered",side="server",proto="tcp",id="4242",qname="-",qtype="-",rcode="-",answers="-",tc="-",latency="-",conn_id="7"}`
	if got := string(AppendDNSLog(nil, r)); !strings.Contains(got, want) {
		t.Errorf("unanswered: %s", got)
	}
	var c event.DNSProcCounters
	c.Pid, c.Side, c.Queries, c.Answered, c.Unanswered = 24952, event.DNSClient, 3, 2, 1
	c.Rcodes[0], c.Rcodes[3] = 1, 1
	copy(c.Comm[:], "dig")
	want = `dns_counters{pid="24952",comm="dig",side="client",event="exit",queries="3",answered="2",unanswered="1",unmatched="0",rcodes="NOERROR:1 NXDOMAIN:1"}` + "\n"
	if got := string(AppendDNSCountersLog(nil, &c, true)); got != want {
		t.Errorf("counters got\n%s\nwant\n%s", got, want)
	}
}

func TestDNSConsoleAndJSON(t *testing.T) {
	p := Printer{Clock: NewClock(nil)}
	r := dnsResult()
	if got := string(p.DNS(nil, r)); !strings.Contains(got, ` [Q] dns client udp AAAA a\"b.nwtest. NXDOMAIN answers = 0 latency = 312.512us id = 4242: conn = - sock = 0xffff888145528000 198.19.250.1:34718 -> 198.19.250.2:53 pid = 24952 comm = dig`+"\n") {
		t.Errorf("console %q", got)
	}
	r.Kind = event.DNSUnanswered
	if got := string(p.DNS(nil, r)); !strings.Contains(got, " [Q] dns client udp AAAA a\\\"b.nwtest. unanswered id = 4242: ") {
		t.Errorf("console %q", got)
	}
	r.Kind, r.TC = event.DNSUnmatched, true
	if got := string(p.DNS(nil, r)); !strings.Contains(got, " NXDOMAIN answers = 0 TC latency = - (no query seen) id = 4242") {
		t.Errorf("console %q", got)
	}

	p.JSON = true
	for _, c := range []struct {
		kind event.DNSKind
		hasQ bool
		want map[string]any
		gone []string
	}{
		{event.DNSAnswer, true, map[string]any{"type": "dns", "event": "answer", "side": "client", "proto": "udp", "id": 4242.0, "qname": `a\"b.nwtest.`,
			"qtype": "AAAA", "qtype_code": 28.0, "rcode": "NXDOMAIN", "rcode_code": 3.0, "answers": 0.0, "tc": 1.0, "latency_ns": 312512.0,
			"pid": 24952.0, "comm": "dig", "netns": 4026532177.0, "src": "198.19.250.1:34718", "dst": "198.19.250.2:53", "conn_id": nil}, nil},
		{event.DNSUnanswered, false, map[string]any{"event": "unanswered", "qname": nil, "qtype": nil, "latency_ns": nil}, []string{"rcode", "answers", "tc"}},
		{event.DNSUnmatched, true, map[string]any{"event": "unmatched", "latency_ns": nil, "rcode": "NXDOMAIN"}, nil},
	} {
		r.Kind, r.HasQuestion = c.kind, c.hasQ
		var m map[string]any
		line := p.DNS(nil, r)
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		for k, v := range c.want {
			if got, ok := m[k]; !ok || got != v {
				t.Errorf("%s: %s = %v, want %v", c.kind, k, got, v)
			}
		}
		for _, k := range c.gone {
			if _, ok := m[k]; ok {
				t.Errorf("%s: %s present", c.kind, k)
			}
		}
	}
	var pc event.DNSProcCounters
	pc.Side, pc.Queries, pc.Unmatched, pc.Rcodes[2] = event.DNSServer, 0, 1, 1
	var m map[string]any
	if err := json.Unmarshal(p.DNSCounters(nil, 1, &pc, false), &m); err != nil || m["type"] != "dns_counters" || m["pid"] != nil ||
		m["event"] != "interval" || m["side"] != "server" || m["unmatched"] != 1.0 || m["rcodes"].(map[string]any)["SERVFAIL"] != 1.0 {
		t.Errorf("counters %v %v", m, err)
	}
	p.JSON = false
	if got := string(p.DNSCounters(nil, 1, &pc, false)); !strings.Contains(got, " [Q] dns counters (interval): pid = - side = server queries = 0 answered = 0 unanswered = 0 unmatched = 1 rcodes = SERVFAIL:1\n") {
		t.Errorf("counters console %q", got)
	}
}
