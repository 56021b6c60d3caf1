package main

import (
	"strings"
	"testing"
)

// Lines of a real run (-N, dig asking dnsmasq over a veth), trimmed to what the check reads.
const dnsRun = `{"type":"dns","netns":4026532526,"src":"198.19.250.2:53","dst":"198.19.250.1:34718","pid":24796,"comm":"dnsmasq","event":"answer","side":"server","proto":"udp","id":33681,"qname":"h.nwtest.","qtype":"A","rcode":"NOERROR","answers":1,"tc":0,"latency_ns":113108}
{"type":"dns","netns":4026532457,"src":"198.19.250.1:34718","dst":"198.19.250.2:53","pid":24952,"comm":"isc-net-0000","event":"answer","side":"client","proto":"udp","id":33681,"qname":"h.nwtest.","qtype":"A","rcode":"NOERROR","answers":1,"tc":0,"latency_ns":182381}
`

func TestCheckDNS(t *testing.T) {
	if f := checkDNS(icmpRecs(t, dnsRun)); f.status != ok {
		t.Errorf("both ends: %+v", f)
	}
	if f := checkDNS(nil); f.status != missing {
		t.Errorf("no records: %+v", f)
	}
	lines := strings.Split(strings.TrimSpace(dnsRun), "\n")
	if f := checkDNS(icmpRecs(t, lines[1]+"\n")); f.status != bad {
		t.Errorf("client only: %+v", f)
	}
	if f := checkDNS(icmpRecs(t, strings.Replace(dnsRun, `"latency_ns":113108`, `"latency_ns":null`, 1))); f.status != bad {
		t.Errorf("no latency: %+v", f)
	}
}
