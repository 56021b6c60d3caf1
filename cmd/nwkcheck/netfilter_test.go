package main

import (
	"strings"
	"testing"
)

// Lines of a real run (-n, one TCP segment over loopback), trimmed to what the check reads.
const nfRun = `{"type":"netfilter","netns":4026531833,"src":"127.0.0.1:40000","dst":"127.0.0.1:8080","proto":"tcp","verdict":"accept","hooks":{"LOCAL_OUT":601,"POST_ROUTING":70},"total_ns":671}
{"type":"netfilter","netns":4026531833,"src":"127.0.0.1:40000","dst":"127.0.0.1:8080","proto":"tcp","verdict":"accept","hooks":{"PRE_ROUTING":70,"LOCAL_IN":60},"total_ns":130}
`

// What the nf_hook_slow fallback gives in a namespace whose only hook
// functions are AppArmor's at POST_ROUTING.
const nfSlowRun = `{"type":"netfilter","netns":4026531833,"src":"127.0.0.1:40000","dst":"127.0.0.1:8080","proto":"tcp","verdict":"accept","hooks":{"POST_ROUTING":700},"total_ns":700}
{"type":"netfilter","netns":4026531833,"src":"127.0.0.1:8080","dst":"127.0.0.1:40000","proto":"tcp","verdict":"accept","hooks":{"POST_ROUTING":650},"total_ns":650}
`

func TestCheckNetfilter(t *testing.T) {
	for _, fb := range []bool{false, true} {
		if f := checkNetfilter(icmpRecs(t, nfRun), fb); f.status != ok {
			t.Errorf("both directions (fallback %v): %+v", fb, f)
		}
		if f := checkNetfilter(nil, fb); f.status != missing {
			t.Errorf("no records (fallback %v): %+v", fb, f)
		}
	}
	lines := strings.Split(strings.TrimSpace(nfRun), "\n")
	if f := checkNetfilter(icmpRecs(t, lines[0]+"\n"), false); f.status != bad {
		t.Errorf("sent only: %+v", f)
	}
	if f := checkNetfilter(icmpRecs(t, nfSlowRun), false); f.status != bad {
		t.Errorf("POST_ROUTING only with netfilter links: %+v", f)
	}
	if f := checkNetfilter(icmpRecs(t, nfSlowRun), true); f.status != ok {
		t.Errorf("POST_ROUTING only, fallback: %+v", f)
	}
	// fallback: a packet without a hook that others show is not a sent one
	mixed := nfRun + strings.Replace(lines[0], `"LOCAL_OUT":601,`, "", 1) + "\n"
	f := checkNetfilter(icmpRecs(t, mixed), true)
	if f.status != ok || !strings.Contains(f.detail, "1 other") {
		t.Errorf("fallback, one partial record: %+v", f)
	}
	if f := checkNetfilter(icmpRecs(t, strings.Replace(lines[0], `"LOCAL_OUT":601,`, "", 1)+"\n"+lines[1]+"\n"), true); f.status != ok {
		t.Errorf("fallback, POST_ROUTING and PRE_ROUTING+LOCAL_IN: %+v", f)
	}
}
