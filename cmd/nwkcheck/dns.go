package main

import "fmt"

// dns (-N): the workload's DNS queries (a client asking a server on the
// same host) are paired at both ends: an answer record at the client side
// and one at the server side, each with its qname, qtype, rcode, a
// latency and the owner's pid. Not in featureNames yet: the lead adds it
// with a DNS server and client in the workload and its expect.tsv row.
func checkDNS(recs []*record) feature {
	sides := map[string]int{}
	n, incomplete, lone := 0, 0, 0
	for _, r := range recs {
		if r.Type != "dns" {
			continue
		}
		n++
		if r.Event != "answer" {
			lone++
			continue
		}
		sides[r.Side+" "+r.Proto]++
		if r.QName == nil || r.QType == nil || r.Rcode == "" || r.LatencyNs == nil || *r.LatencyNs == 0 || r.Pid == nil {
			incomplete++
		}
	}
	d := fmt.Sprintf("%d dns records, %d unanswered or unmatched%s", n, lone, histo(sides))
	switch {
	case n == 0:
		return feature{"dns", missing, "none; " + d}
	case sides["client udp"]+sides["client tcp"] == 0 || sides["server udp"]+sides["server tcp"] == 0:
		return feature{"dns", bad, "no answered pair at one end; " + d}
	case incomplete > 0:
		return feature{"dns", bad, fmt.Sprintf("%d pairs without qname, qtype, rcode, latency or pid; %s", incomplete, d)}
	}
	return feature{"dns", ok, d}
}
