package main

import (
	"fmt"
	"sort"
	"strings"
)

// netfilter (-n): the workload's TCP segments over loopback cross
// netfilter twice: sent (LOCAL_OUT + POST_ROUTING) and received
// (PRE_ROUTING + LOCAL_IN), one record per packet with a time for each hook.
//
// fallback: netwatcher timed the hooks through nf_hook_slow (kprobes, before
// netfilter links in 6.4). The kernel calls nf_hook_slow only for a hook
// that has functions in the packet's namespace (a hook without any takes no
// time), so a record holds the hooks with functions the packet crossed: on
// a machine without a firewall only the LSM's POST_ROUTING hook (AppArmor,
// SELinux), say. The check then expects of each direction the hooks that
// some record shows (a direction no record shows is not required; at least
// one must be there).
func checkNetfilter(recs []*record, fallback bool) feature {
	const (
		pre = 1 << iota
		in
		out
		post
	)
	bit := map[string]int{"PRE_ROUTING": pre, "LOCAL_IN": in, "LOCAL_OUT": out, "POST_ROUTING": post}
	sets := map[string]int{}
	var masks []int
	seen := 0
	for _, r := range recs {
		if r.Type != "netfilter" || r.Proto != "tcp" || r.Verdict != "accept" {
			continue
		}
		m, names := 0, make([]string, 0, len(r.Hooks))
		for h := range r.Hooks {
			m |= bit[h]
			names = append(names, h)
		}
		sort.Strings(names)
		sets[strings.Join(names, "+")]++
		masks = append(masks, m)
		seen |= m
	}
	wantTx, wantRx := out|post, pre|in
	how := ""
	if fallback {
		wantTx, wantRx = wantTx&seen, wantRx&seen
		how = "nf_hook_slow fallback, hooks with functions only; "
	}
	sent, recvd := 0, 0
	for _, m := range masks {
		switch {
		case wantTx != 0 && m == wantTx:
			sent++
		case wantRx != 0 && m == wantRx:
			recvd++
		}
	}
	n := len(masks)
	d := fmt.Sprintf("%s%d tcp records: %d sent, %d received, %d other%s", how, n, sent, recvd, n-sent-recvd, histo(sets))
	switch {
	case n == 0:
		return feature{"netfilter", missing, "none; " + d}
	case (wantTx != 0 && sent == 0) || (wantRx != 0 && recvd == 0) || sent+recvd == 0:
		return feature{"netfilter", bad, "a direction is missing; " + d}
	}
	return feature{"netfilter", ok, d}
}

// nfFallback: did a run time netfilter through nf_hook_slow (its kprobe
// attached, netwatcher -v)?
func nfFallback(runs []*runDir) bool {
	for _, r := range runs {
		for _, l := range r.stderr {
			if strings.Contains(l, "msg=attached") && strings.Contains(l, "prog=nw_nf_slow_kp") {
				return true
			}
		}
	}
	return false
}
