package main

import "fmt"

// redis (-R): the workload's Redis commands (nwpeer redis-query asking
// nwpeer redis-serve on the same host, or redis-cli and redis-server) are
// paired at both ends: an answer record at the client side and one at the
// server side, each with its command, reply type, a latency and the
// owner's pid; and the per-command summaries are printed. Not in
// featureNames yet: the lead adds it with the Redis peer in the workload
// (nwpeer redis-serve / redis-query) and its expect.tsv row.
func checkRedis(recs []*record) feature {
	sides := map[string]int{}
	n, incomplete, lone, sums := 0, 0, 0, 0
	for _, r := range recs {
		if r.Type == "redis_summary" {
			sums++
		}
		if r.Type != "redis" {
			continue
		}
		n++
		if r.Event != "answer" {
			lone++
			continue
		}
		sides[r.Side]++
		if r.Cmd == nil || r.Reply == nil || r.LatencyNs == nil || *r.LatencyNs == 0 || r.Pid == nil {
			incomplete++
		}
	}
	d := fmt.Sprintf("%d redis records, %d unanswered or unmatched, %d summaries%s", n, lone, sums, histo(sides))
	switch {
	case n == 0:
		return feature{"redis", missing, "none; " + d}
	case sides["client"] == 0 || sides["server"] == 0:
		return feature{"redis", bad, "no answered pair at one end; " + d}
	case incomplete > 0:
		return feature{"redis", bad, fmt.Sprintf("%d pairs without command, reply, latency or pid; %s", incomplete, d)}
	case sums == 0:
		return feature{"redis", bad, "no summary; " + d}
	}
	return feature{"redis", ok, d}
}
