/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw_ptr.h — a kernel pointer as a number. Included by nw.h.
 *
 * The connection table is keyed by the socket's address as a number (it is
 * hashed). tp_btf, cgroup_skb and netfilter programs hold `struct sock *` as
 * typed pointers, on which the verifier allows no arithmetic but +/-; raw_tp
 * and kprobe programs hold plain numbers. Two ways to get the number:
 *
 * nw_ptr_num(p), p a typed pointer (fast, a few instructions): the
 * verifier allows root the difference of two pointers, a number. So
 * p - v + v, with v a pointer to a map value that holds its own numeric
 * address (every program stores the same address there, so concurrent users
 * cannot disturb each other). Per-CPU: a store on every lookup into one
 * shared value would move its cache line between CPUs each time.
 *
 * nw_num(x), x either kind (a helper call, ~25 ns): copy the 8 bytes. For
 * the rare paths (retransmits, drops) that have both kinds of callers.
 */
#ifndef NW_PTR_H
#define NW_PTR_H

#ifndef NW_H
#error "include nw.h"
#endif

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nw_base SEC(".maps");

static __always_inline __u64 nw_ptr_num(const void *p)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&nw_base, &zero);
	if (!v)
		return 0;
	*(volatile __u64 *)v = (__u64)v;
	__u64 vnum = *(volatile __u64 *)v; /* loaded from memory: a number */
	__u64 d = (__u64)p;
	/* d = p - v, in asm so that clang cannot turn it into p + (vnum - v),
	 * which the verifier refuses */
	asm volatile("%[d] -= %[v]" : [d] "+r"(d) : [v] "r"(v));
	return d + vnum;
}

static __always_inline __u64 nw_num(__u64 x)
{
	__u64 r = 0;
	bpf_probe_read_kernel(&r, sizeof(r), &x);
	return r;
}

#endif /* NW_PTR_H */
