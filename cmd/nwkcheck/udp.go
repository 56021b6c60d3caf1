package main

import "fmt"

// udp (-u): the workload's DNS queries over UDP make flows that send and
// flows that receive, with their owners (from the process-context hooks:
// sock_send_length/sock_recv_length on 6.3+, kprobes at UDP's
// sendmsg/recvmsg before).
func checkUDP(recs []*record) feature {
	flows, rxFlows, txFlows, owned := 0, 0, 0, 0
	for _, r := range recs {
		if r.Type != "udp_flow" || r.Event != "exit" {
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
	}
	d := fmt.Sprintf("%d flows (%d receiving, %d sending, %d with an owner)", flows, rxFlows, txFlows, owned)
	switch {
	case flows == 0:
		return feature{"udp", missing, "none; " + d}
	case rxFlows == 0 || txFlows == 0 || owned == 0:
		return feature{"udp", bad, "a direction or the owners missing; " + d}
	}
	return feature{"udp", ok, d}
}

// udp_times (-u -t): one record per datagram with its layer times, sent
// and received. The IP-layer boundaries are netfilter links (6.4+): a
// kernel without them gives no sent record and no ip_time at all
// (missing); some datagrams with and some without them is bad.
func checkUDPTimes(recs []*record) feature {
	kinds := map[string]int{}
	n, untimed, withIP := 0, 0, 0
	for _, r := range recs {
		if r.Type != "udp" {
			continue
		}
		n++
		dir := "sent"
		timed := present(r.Mac) && present(r.IP)
		if u(r.Rx) == 1 {
			dir = "received"
			timed = timed && present(r.UDPTime)
		}
		kinds[dir]++
		if present(r.IP) {
			withIP++
		}
		if !timed {
			untimed++
		}
	}
	d := fmt.Sprintf("%d datagram records, %d without their layer times%s", n, untimed, histo(kinds))
	switch {
	case n == 0:
		return feature{"udp_times", missing, "none; " + d}
	case withIP == 0 && kinds["sent"] == 0:
		return feature{"udp_times", missing, "no IP-layer boundary (netfilter links, 6.4+); " + d}
	case kinds["sent"] == 0 || kinds["received"] == 0 || untimed > 0:
		return feature{"udp_times", bad, d}
	}
	return feature{"udp_times", ok, d}
}
