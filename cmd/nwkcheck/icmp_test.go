package main

import (
	"strings"
	"testing"
)

// Lines of a real run (-I, ping -c 1 127.0.0.1), trimmed to what the check reads.
const icmpRun = `{"type":"icmp","netns":4026531840,"src":"127.0.0.1","dst":"127.0.0.1","rx":0,"kind":"echo_request","mac_time_ns":420,"ip_time_ns":9000,"icmp_time_ns":null}
{"type":"icmp","netns":4026531840,"src":"127.0.0.1","dst":"127.0.0.1","rx":1,"kind":"echo_request","mac_time_ns":800,"ip_time_ns":1200,"icmp_time_ns":5000}
{"type":"icmp","netns":4026531840,"src":"127.0.0.1","dst":"127.0.0.1","rx":0,"kind":"echo_reply","mac_time_ns":300,"ip_time_ns":2000,"icmp_time_ns":null,"rtt_ns":9000}
{"type":"icmp","netns":4026531840,"src":"127.0.0.1","dst":"127.0.0.1","rx":1,"kind":"echo_reply","mac_time_ns":500,"ip_time_ns":700,"icmp_time_ns":8000,"rtt_ns":15000}
`

func icmpRecs(t *testing.T, lines string) []*record {
	t.Helper()
	r := &runDir{}
	if err := r.parse(strings.NewReader(lines)); err != nil {
		t.Fatal(err)
	}
	var out []*record
	for i := range r.records {
		out = append(out, &r.records[i])
	}
	return out
}

func TestCheckICMP(t *testing.T) {
	if f := checkICMP(icmpRecs(t, icmpRun)); f.status != ok {
		t.Errorf("a full echo: %+v", f)
	}
	if f := checkICMP(nil); f.status != missing {
		t.Errorf("no records: %+v", f)
	}
	// a reply received without its rtt or icmp time is bad
	bad1 := strings.Replace(icmpRun, `"icmp_time_ns":8000,"rtt_ns":15000`, `"icmp_time_ns":null,"rtt_ns":null`, 1)
	if f := checkICMP(icmpRecs(t, bad1)); f.status != bad {
		t.Errorf("untimed reply: %+v", f)
	}
	// one direction missing (only the pinging side)
	lines := strings.Split(strings.TrimSpace(icmpRun), "\n")
	if f := checkICMP(icmpRecs(t, lines[0]+"\n"+lines[3]+"\n")); f.status != bad {
		t.Errorf("one side only: %+v", f)
	}
}
