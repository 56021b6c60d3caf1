package main

import (
	"strings"
	"testing"
)

// Lines of a real run (-u -t, three datagrams over loopback), trimmed to
// what the check reads.
const udpRun = `{"type":"udp","netns":4026531833,"src":"127.0.0.1:50732","dst":"127.0.0.1:47999","pid":21351,"rx":0,"len":100,"mac_time_ns":4106,"ip_time_ns":17000,"udp_time_ns":null}
{"type":"udp","netns":4026531833,"src":"127.0.0.1:47999","dst":"127.0.0.1:50732","pid":21351,"rx":1,"len":100,"mac_time_ns":2203,"ip_time_ns":5398,"udp_time_ns":21000}
{"type":"udp_flow","netns":4026531833,"src":"127.0.0.1:50732","dst":"127.0.0.1:47999","pid":21351,"event":"exit","rx_dgrams_total":0,"tx_dgrams_total":3}
{"type":"udp_flow","netns":4026531833,"src":"127.0.0.1:47999","dst":"127.0.0.1:50732","pid":21351,"event":"exit","rx_dgrams_total":3,"tx_dgrams_total":0}
`

func TestCheckUDP(t *testing.T) {
	if f := checkUDP(icmpRecs(t, udpRun)); f.status != ok {
		t.Errorf("flows and datagrams: %+v", f)
	}
	lines := strings.Split(strings.TrimSpace(udpRun), "\n")
	if f := checkUDP(icmpRecs(t, lines[2]+"\n"+lines[3]+"\n")); f.status != ok {
		t.Errorf("flows only (no -t): %+v", f)
	}
	if f := checkUDP(nil); f.status != missing {
		t.Errorf("no records: %+v", f)
	}
	if f := checkUDP(icmpRecs(t, strings.ReplaceAll(udpRun, `"pid":21351,"event"`, `"pid":null,"event"`))); f.status != bad {
		t.Errorf("no owners: %+v", f)
	}
	if f := checkUDP(icmpRecs(t, lines[3]+"\n")); f.status != bad {
		t.Errorf("receiving flow only: %+v", f)
	}
}

func TestCheckUDPTimes(t *testing.T) {
	if f := checkUDPTimes(icmpRecs(t, udpRun)); f.status != ok {
		t.Errorf("datagrams: %+v", f)
	}
	lines := strings.Split(strings.TrimSpace(udpRun), "\n")
	if f := checkUDPTimes(icmpRecs(t, lines[2]+"\n"+lines[3]+"\n")); f.status != missing {
		t.Errorf("flows only (no -t): %+v", f)
	}
	if f := checkUDPTimes(icmpRecs(t, strings.Replace(udpRun, `"udp_time_ns":21000`, `"udp_time_ns":null`, 1))); f.status != bad {
		t.Errorf("received datagram without udp time: %+v", f)
	}
	if f := checkUDPTimes(icmpRecs(t, lines[1]+"\n")); f.status != bad {
		t.Errorf("received only: %+v", f)
	}
	// a kernel without netfilter links: received records without ip_time, none sent
	noIP := strings.Replace(lines[1], `"ip_time_ns":5398`, `"ip_time_ns":null`, 1) + "\n"
	if f := checkUDPTimes(icmpRecs(t, noIP)); f.status != missing {
		t.Errorf("no IP boundary: %+v", f)
	}
}
