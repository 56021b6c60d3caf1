package main

import "fmt"

// udp (-u, with -t): the workload's UDP traffic shows as flows with both
// directions counted and an owner (the exit record of each flow has its
// totals), and with -t as datagram records with their layer times
// (received: mac, ip, udp; sent: ip, mac; udp_time is never observed on
// send). Without -t only the flows are judged. Not in featureNames yet:
// the lead adds it with a UDP workload and its expect.tsv row.
func checkUDP(recs []*record) feature {
	flows, rxFlows, txFlows, owned := 0, 0, 0, 0
	kinds := map[string]int{}
	untimed := 0
	for _, r := range recs {
		switch r.Type {
		case "udp_flow":
			if r.Event != "exit" {
				continue
			}
			flows++
			if u(r.RxDgramsTotal) > 0 {
				rxFlows++
			}
			if u(r.TxDgramsTotal) > 0 {
				txFlows++
			}
			if u(r.Pid) > 0 {
				owned++
			}
		case "udp":
			dir := "sent"
			timed := present(r.Mac) && present(r.IP)
			if u(r.Rx) == 1 {
				dir = "received"
				timed = timed && present(r.UDPTime)
			}
			kinds[dir]++
			if !timed {
				untimed++
			}
		}
	}
	d := fmt.Sprintf("%d flows (%d receiving, %d sending, %d with an owner)%s", flows, rxFlows, txFlows, owned, histo(kinds))
	switch {
	case flows == 0:
		return feature{"udp", missing, "none; " + d}
	case rxFlows == 0 || txFlows == 0 || owned == 0:
		return feature{"udp", bad, "a direction or the owners missing; " + d}
	case len(kinds) > 0 && (kinds["sent"] == 0 || kinds["received"] == 0 || untimed > 0):
		return feature{"udp", bad, fmt.Sprintf("%d datagrams without their layer times; %s", untimed, d)}
	}
	return feature{"udp", ok, d}
}
