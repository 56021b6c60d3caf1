package main

import (
	"strings"
	"testing"
)

// Lines of a real run (-n, one TCP segment over loopback), trimmed to what the check reads.
const nfRun = `{"type":"netfilter","netns":4026531833,"src":"127.0.0.1:40000","dst":"127.0.0.1:8080","proto":"tcp","verdict":"accept","hooks":{"LOCAL_OUT":601,"POST_ROUTING":70},"total_ns":671}
{"type":"netfilter","netns":4026531833,"src":"127.0.0.1:40000","dst":"127.0.0.1:8080","proto":"tcp","verdict":"accept","hooks":{"PRE_ROUTING":70,"LOCAL_IN":60},"total_ns":130}
`

func TestCheckNetfilter(t *testing.T) {
	if f := checkNetfilter(icmpRecs(t, nfRun)); f.status != ok {
		t.Errorf("both directions: %+v", f)
	}
	if f := checkNetfilter(nil); f.status != missing {
		t.Errorf("no records: %+v", f)
	}
	lines := strings.Split(strings.TrimSpace(nfRun), "\n")
	if f := checkNetfilter(icmpRecs(t, lines[0]+"\n")); f.status != bad {
		t.Errorf("sent only: %+v", f)
	}
}
