package main

import (
	"strings"
	"testing"
)

const summaryRun = `{"type":"layer_summary","event":"exit","direction":"rx","layer":"mac","segments":10,"bytes":100,"count":10,"missing":0}
{"type":"layer_summary","event":"exit","direction":"rx","layer":"ip","segments":10,"bytes":100,"count":10,"missing":0}
{"type":"layer_summary","event":"exit","direction":"rx","layer":"tcp","segments":10,"bytes":100,"count":9,"missing":1}
{"type":"layer_summary","event":"exit","direction":"tx","layer":"tcp","segments":10,"bytes":100,"count":10,"missing":0}
{"type":"layer_summary","event":"exit","direction":"tx","layer":"ip","segments":10,"bytes":100,"count":10,"missing":0}
{"type":"layer_summary","event":"exit","direction":"tx","layer":"mac","segments":10,"bytes":100,"count":10,"missing":0}
{"type":"layer_summary","event":"interval","direction":"tx","layer":"mac","segments":10,"bytes":100,"count":10,"missing":0}
`

func TestCheckSummary(t *testing.T) {
	if f := checkSummary(icmpRecs(t, summaryRun)); f.status != ok {
		t.Errorf("good run: %v", f)
	}
	if f := checkSummary(nil); f.status != missing {
		t.Errorf("no run: %v", f)
	}
	// tx tcp never timed (a kernel without the send hook): missing, named
	noTxTCP := strings.Replace(summaryRun, `"direction":"tx","layer":"tcp","segments":10,"bytes":100,"count":10,"missing":0`, `"direction":"tx","layer":"tcp","segments":10,"bytes":100,"count":0,"missing":10`, 1)
	if f := checkSummary(icmpRecs(t, noTxTCP)); f.status != missing || !strings.Contains(f.detail, "never tx tcp") {
		t.Errorf("no tx tcp: %v", f)
	}
	// without -t: segments only (layer null)
	plain := `{"type":"layer_summary","event":"exit","direction":"rx","layer":null,"segments":5,"bytes":50}
{"type":"layer_summary","event":"exit","direction":"tx","layer":null,"segments":0,"bytes":0}
`
	if f := checkSummary(icmpRecs(t, plain)); f.status != bad {
		t.Errorf("no tx segments: %v", f)
	}
}

// TestCheckSummaryCountsOnly: counts-only summaries of a -t run pass where
// no run has packet records (a kernel without packet programs), and are
// missing where packet records show the kernel has them.
func TestCheckSummaryCountsOnly(t *testing.T) {
	plain := `{"type":"layer_summary","event":"exit","direction":"rx","layer":null,"segments":5,"bytes":50}
{"type":"layer_summary","event":"exit","direction":"tx","layer":null,"segments":4,"bytes":40}
`
	if f := checkSummary(icmpRecs(t, plain)); f.status != ok || !strings.Contains(f.detail, "counts only") {
		t.Errorf("counts only, no packet programs: %v", f)
	}
	withPackets := plain + `{"type":"packet","rx":1,"len":10}
`
	if f := checkSummary(icmpRecs(t, withPackets)); f.status != missing || !strings.Contains(f.detail, "never rx mac") {
		t.Errorf("counts only beside packet records: %v", f)
	}
	noTx := strings.Replace(plain, `"segments":4,"bytes":40`, `"segments":0,"bytes":0`, 1)
	if f := checkSummary(icmpRecs(t, noTx)); f.status != bad {
		t.Errorf("counts only, tx never counted: %v", f)
	}
}
