package main

import "fmt"

// icmp (-I): the workload's echoes (a ping over loopback) show on both
// sides: requests and replies sent and received, each with the layer times
// its boundaries give (received: mac, ip, icmp; sent: ip, mac), and the
// echo replies received with the round trip the kernel saw (rtt_ns). Not
// in featureNames yet: the lead adds it with the workload's ping and its
// expect.tsv row.
func checkICMP(recs []*record) feature {
	kinds := map[string]int{}
	n, untimed, echoes, rtts := 0, 0, 0, 0
	for _, r := range recs {
		if r.Type != "icmp" {
			continue
		}
		n++
		dir := "sent"
		if u(r.Rx) == 1 {
			dir = "received"
		}
		kinds[r.Kind+" "+dir]++
		if r.Kind != "echo_request" && r.Kind != "echo_reply" {
			continue
		}
		echoes++
		timed := present(r.Mac) && present(r.IP)
		if u(r.Rx) == 1 && r.Kind == "echo_reply" {
			timed = timed && present(r.ICMPTime)
			if present(r.RttNs) {
				rtts++
			}
		}
		if !timed {
			untimed++
		}
	}
	d := fmt.Sprintf("%d icmp records, %d echo replies received with an rtt%s", n, rtts, histo(kinds))
	switch {
	case echoes == 0:
		return feature{"icmp", missing, "none; " + d}
	case kinds["echo_request sent"] == 0 || kinds["echo_request received"] == 0 ||
		kinds["echo_reply sent"] == 0 || kinds["echo_reply received"] == 0:
		return feature{"icmp", bad, "an echo direction is missing; " + d}
	case untimed > 0 || rtts == 0:
		return feature{"icmp", bad, fmt.Sprintf("%d echoes without their layer times; %s", untimed, d)}
	}
	return feature{"icmp", ok, d}
}

// present: a JSON value that is there and not null.
func present(v []byte) bool { return len(v) > 0 && string(v) != "null" }
