package output

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// layerSum: sent, -t: 100 segments; tcp 90 in [256,512) ns + 10 in
// [4096,8192) ns (max 6000); ip all in [512,1024); mac none seen (missing).
func layerSum(final, timed bool) *event.Event {
	ev := &event.Event{Type: event.LayerSum, TS: 5_000_000_000, Ext: &event.Ext{}}
	s := &ev.Ext.Layer
	*s = event.LayerSumInfo{Final: final, Rx: false, Timed: timed, Segs: 100, Bytes: 102400}
	s.L[event.LayerTCP].Buckets[8], s.L[event.LayerTCP].Buckets[12] = 90, 10
	s.L[event.LayerTCP].SumNs, s.L[event.LayerTCP].MaxNs = 90*300+10*5000, 6000
	s.L[event.LayerIP].Buckets[9], s.L[event.LayerIP].SumNs, s.L[event.LayerIP].MaxNs = 100, 100*700, 900
	s.L[event.LayerMac].Missing = 100
	return ev
}

func TestLayerSumLog(t *testing.T) {
	got := string(AppendLayerSumLog(nil, layerSum(false, true)))
	want := `layer_summary{event="interval",direction="tx",layer="tcp",segments="100",bytes="102400",count="100",missing="0",p50="0.397",p99="6.000",mean="0.770",max="6.000"}
layer_summary{event="interval",direction="tx",layer="ip",segments="100",bytes="102400",count="100",missing="0",p50="0.765",p99="0.900",mean="0.700",max="0.900"}
layer_summary{event="interval",direction="tx",layer="mac",segments="100",bytes="102400",count="0",missing="100",p50="-",p99="-",mean="-",max="-"}
`
	if got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
	got = string(AppendLayerSumLog(nil, layerSum(true, false)))
	want = `layer_summary{event="exit",direction="tx",layer="-",segments="100",bytes="102400",count="-",missing="-",p50="-",p99="-",mean="-",max="-"}` + "\n"
	if got != want {
		t.Errorf("untimed log:\n%s\nwant:\n%s", got, want)
	}
}

func TestLayerSumConsole(t *testing.T) {
	p := Printer{Clock: NewClock(nil)}
	lines := strings.Split(strings.TrimSuffix(string(p.LayerSum(nil, layerSum(true, true))), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines (tcp, ip, mac), got %q", lines)
	}
	for i, want := range []string{
		"[S] summary exit tx tcp: segments = 100 count = 100 p50 = 0.397us p99 = 6.000us mean = 0.770us max = 6.000us missing = 0",
		"[S] summary exit tx ip: segments = 100 count = 100 p50 = 0.765us p99 = 0.900us mean = 0.700us max = 0.900us missing = 0",
		"[S] summary exit tx mac: segments = 100 count = 0 p50 = - p99 = - mean = - max = - missing = 100",
	} {
		if !strings.HasSuffix(lines[i], want) {
			t.Errorf("line %d: %q, want suffix %q", i, lines[i], want)
		}
	}
	one := string(p.LayerSum(nil, layerSum(false, false)))
	if !strings.HasSuffix(one, "[S] summary interval tx: segments = 100 bytes = 102400\n") || strings.Count(one, "\n") != 1 {
		t.Errorf("untimed: %q", one)
	}
}

func TestLayerSumJSON(t *testing.T) {
	p := Printer{JSON: true, Clock: NewClock(nil)}
	out := string(p.LayerSum(nil, layerSum(false, true)))
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 records, got %d", len(lines))
	}
	var tcp, mac map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &tcp); err != nil {
		t.Fatalf("%v: %s", err, lines[0])
	}
	if err := json.Unmarshal([]byte(lines[2]), &mac); err != nil {
		t.Fatalf("%v: %s", err, lines[2])
	}
	if tcp["type"] != "layer_summary" || tcp["event"] != "interval" || tcp["direction"] != "tx" || tcp["layer"] != "tcp" ||
		tcp["count"] != 100.0 || tcp["segments"] != 100.0 || tcp["bytes"] != 102400.0 || tcp["p99_us"] != 6.0 || tcp["max_us"] != 6.0 {
		t.Errorf("tcp record: %v", tcp)
	}
	if b := tcp["buckets"].([]any); len(b) != event.LayerSlots || b[8] != 90.0 || b[12] != 10.0 {
		t.Errorf("buckets: %v", b)
	}
	if mac["layer"] != "mac" || mac["count"] != 0.0 || mac["missing"] != 100.0 || mac["p50_us"] != nil || mac["max_us"] != nil {
		t.Errorf("mac record (nothing timed: null stats): %v", mac)
	}
	var un map[string]any
	if err := json.Unmarshal(p.LayerSum(nil, layerSum(true, false)), &un); err != nil {
		t.Fatal(err)
	}
	if un["layer"] != nil || un["count"] != nil || un["event"] != "exit" || un["segments"] != 100.0 {
		t.Errorf("untimed record: %v", un)
	}
}
