package main

import (
	"fmt"
	"strings"
)

// summary (--summary -t): the run's exit summaries count data segments in
// both directions, and each layer (mac, ip, tcp) of each direction has
// times in its in-kernel histogram. Aggregates name no namespace: the
// whole host's segments are in them (the workload's among them).
//
// A kernel without packet programs (no packet record in any run: 5.10,
// no bpf_loop) has no histograms: there netwatcher says so and makes
// counts-only summaries (layer null), which pass if they count both
// directions. Where packet records exist, counts-only summaries are a
// gap (missing), as before.
func checkSummary(recs []*record) feature {
	segs := map[string]uint64{}
	timed := map[string]uint64{}
	n, untimed, packets := 0, 0, 0
	for _, r := range recs {
		if r.Type == "packet" {
			packets++
		}
		if r.Type != "layer_summary" || r.Event != "exit" {
			continue
		}
		n++
		if r.Layer == nil {
			untimed++
			if r.Segments != nil {
				segs[r.Direction] += *r.Segments
			}
			continue
		}
		if r.Segments != nil {
			segs[r.Direction] = max(segs[r.Direction], *r.Segments)
		}
		if r.Count != nil {
			timed[r.Direction+" "+*r.Layer] += *r.Count
		}
	}
	var have, lack []string
	for _, dir := range []string{"rx", "tx"} {
		for _, l := range []string{"mac", "ip", "tcp"} {
			k := dir + " " + l
			if timed[k] > 0 {
				have = append(have, fmt.Sprintf("%s %d", k, timed[k]))
			} else {
				lack = append(lack, k)
			}
		}
	}
	d := fmt.Sprintf("%d exit summaries, segments rx %d tx %d; timed: %s", n, segs["rx"], segs["tx"], strings.Join(have, ", "))
	switch {
	case n == 0:
		return feature{"summary", missing, "none; " + d}
	case segs["rx"] == 0 || segs["tx"] == 0:
		return feature{"summary", bad, "no segments counted in a direction; " + d}
	case untimed == n && packets == 0:
		return feature{"summary", ok, fmt.Sprintf("counts only (no packet programs: no layer times); %d exit summaries, segments rx %d tx %d", n, segs["rx"], segs["tx"])}
	case len(lack) > 0:
		return feature{"summary", missing, fmt.Sprintf("%d/6, never %s; %s", 6-len(lack), strings.Join(lack, ", "), d)}
	}
	return feature{"summary", ok, d}
}
