package main

import (
	"strings"
	"testing"
)

// Lines of a real run (-R, nwpeer redis-query -P 4 against nwpeer
// redis-serve on loopback), trimmed to what the check reads.
const redisRun = `{"type":"redis","netns":4026531833,"sock":"0xffff8881660adc80","conn_id":2,"src":"127.0.0.1:16379","dst":"127.0.0.1:51514","pid":3121,"comm":"nwpeer","event":"answer","side":"server","cmd":"LPUSH","key":"nw:s","key_cut":0,"args":2,"reply":"error","error":"WRONGTYPE","latency_ns":23906}
{"type":"redis","netns":4026531833,"sock":"0xffff8881660a9280","conn_id":1,"src":"127.0.0.1:51514","dst":"127.0.0.1:16379","pid":3125,"comm":"nwpeer","event":"answer","side":"client","cmd":"LPUSH","key":"nw:s","key_cut":0,"args":2,"reply":"error","error":"WRONGTYPE","latency_ns":28763}
{"type":"redis_summary","event":"exit","side":"client","cmd":"LPUSH","calls":4,"errors":4,"paired":4,"p50_ns":38912,"p99_ns":59392,"max_ns":61401}
`

func TestCheckRedis(t *testing.T) {
	if f := checkRedis(icmpRecs(t, redisRun)); f.status != ok {
		t.Errorf("%+v", f)
	}
	if f := checkRedis(nil); f.status != missing {
		t.Errorf("none: %+v", f)
	}
	lines := strings.Split(strings.TrimSpace(redisRun), "\n")
	if f := checkRedis(icmpRecs(t, lines[1]+"\n"+lines[2]+"\n")); f.status != bad {
		t.Errorf("one end: %+v", f)
	}
	if f := checkRedis(icmpRecs(t, strings.Replace(redisRun, `"latency_ns":23906`, `"latency_ns":null`, 1))); f.status != bad {
		t.Errorf("no latency: %+v", f)
	}
	if f := checkRedis(icmpRecs(t, lines[0]+"\n"+lines[1]+"\n")); f.status != bad {
		t.Errorf("no summary: %+v", f)
	}
}

// Summaries name no namespace or port: they count for the workload (the
// redis feature needs them), in a guest and on the host alike.
func TestSummariesAreTheWorkloads(t *testing.T) {
	for _, netns := range []uint64{0, fixtureNetns} {
		if !defaultWorkload(netns).owns(&record{Type: "redis_summary"}) {
			t.Errorf("netns %d: a redis_summary record is not the workload's", netns)
		}
		if defaultWorkload(netns).owns(&record{Type: "stats"}) {
			t.Errorf("netns %d: the stats record is the workload's", netns)
		}
	}
}
