package main

import "fmt"

// netfilter (-n): the workload's TCP segments over loopback cross
// netfilter twice: sent (LOCAL_OUT + POST_ROUTING) and received
// (PRE_ROUTING + LOCAL_IN), each with a time for both hooks in one record.
// Not in featureNames yet: the lead adds it with a -n run and its
// expect.tsv row (ok on 6.12 and host, missing-allowed before 6.4).
func checkNetfilter(recs []*record) feature {
	n, sent, recvd, odd := 0, 0, 0, 0
	for _, r := range recs {
		if r.Type != "netfilter" || r.Proto != "tcp" || r.Verdict != "accept" {
			continue
		}
		n++
		_, out := r.Hooks["LOCAL_OUT"]
		_, post := r.Hooks["POST_ROUTING"]
		_, pre := r.Hooks["PRE_ROUTING"]
		_, in := r.Hooks["LOCAL_IN"]
		switch {
		case out && post && !pre && !in:
			sent++
		case pre && in && !out && !post:
			recvd++
		default:
			odd++
		}
	}
	d := fmt.Sprintf("%d tcp records: %d sent (LOCAL_OUT+POST_ROUTING), %d received (PRE_ROUTING+LOCAL_IN), %d other", n, sent, recvd, odd)
	switch {
	case n == 0:
		return feature{"netfilter", missing, "none; " + d}
	case sent == 0 || recvd == 0:
		return feature{"netfilter", bad, "a direction is missing; " + d}
	}
	return feature{"netfilter", ok, d}
}
