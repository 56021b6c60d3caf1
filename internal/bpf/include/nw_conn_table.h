/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw_conn_table.h — the connection table. Included by nw.h.
 *
 * Set-associative, keyed by `struct sock *` (a number: nw_ptr.h).
 *
 * nw_conn_keys[set] holds the sockets of one set (NW_WAYS of them, one cache
 * line); the value of way w of set s is nw_conns[s * NW_WAYS + w]. A
 * socket's set is a hash of its address. Why not a BPF hash map: an insert
 * and a delete per connection took a bucket lock with interrupts off, an
 * allocation and an RCU-deferred free each (measured on connection churn:
 * most of the tracker's kernel cost). Here a lookup is a multiply, two array
 * loads and NW_WAYS compares; a claim is one compare-and-swap; a release one
 * store. Both arrays are preallocated (loader: Options.MaxConns).
 *
 * A set with NW_WAYS live connections refuses a new one: it is counted
 * (NW_STAT_CONN_MAP_FULL), like a full hash map was. With the table at 10%
 * of its capacity that is about one set in 10^8.
 *
 * Writers: a claimed slot belongs to its socket; the socket's own state
 * changes (serialized by the kernel: socket lock or its softirq) fill and
 * release it, so slots need no lock. A reader that races with a release
 * reads the slot as it was or, if another socket claimed it meanwhile, that
 * socket's values (as with a preallocated BPF hash map). Packet records
 * carry the connection's establishment time, so user space attributes such
 * a record to no connection rather than to the wrong one.
 */
#ifndef NW_CONN_TABLE_H
#define NW_CONN_TABLE_H

#ifndef NW_H
#error "include nw.h"
#endif

/* Sets in nw_conn_keys - 1 (a power of two), or NW_CONN_HASH_MASK: the
 * connection table is the hash variant (nw_conn_hash; kernels without BPF
 * compare-and-swap), see nw_conn_find. Set by the Go loader
 * (internal/conn) in every object, from the one variant it chose. */
volatile const __u32 cfg_conn_mask = 16384 - 1;
#define NW_CONN_HASH_MASK 0xffffffffu

#define NW_WAYS 8

struct nw_conn_set {
	__u64 sk[NW_WAYS]; /* 0: free */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384); /* sets; resized by the loader */
	__type(key, __u32);
	__type(value, struct nw_conn_set);
} nw_conn_keys SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384 * NW_WAYS); /* sets * NW_WAYS; resized by the loader */
	__type(key, __u32);
	__type(value, struct nw_conn);
} nw_conns SEC(".maps");

/*
 * The hash variant of the table, for kernels without BPF atomics (CAS and
 * exchange need 5.12; "BPF_STX uses reserved fields" before): a
 * preallocated BPF hash map keyed by the socket number, value as in
 * nw_conns. A claim is an insert with BPF_NOEXIST (the bucket lock makes it
 * atomic), a release a delete: the cost the arrays above avoid, paid only
 * where they cannot work. Exactly one variant holds connections; the other
 * one's maps are left at their minimal size (1 set, 1 entry) by the loader.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* resized by the loader in the hash variant */
	__type(key, __u64);
	__type(value, struct nw_conn);
} nw_conn_hash SEC(".maps");

static __always_inline __u32 nw_conn_set_of(__u64 sk, __u32 mask)
{
	/* struct sock comes from slabs of ~2 KiB objects: the low bits say
	 * little; a multiplicative hash spreads the rest. */
	return (__u32)(((sk >> 6) * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
}

static __always_inline struct nw_conn *nw_conn_at(__u32 set, __u32 way)
{
	__u32 idx = set * NW_WAYS + way;
	return bpf_map_lookup_elem(&nw_conns, &idx);
}

/* The set of sk (its index in *set), or 0. */
static __always_inline struct nw_conn_set *nw_conn_set(__u64 sk, __u32 *set)
{
	*set = nw_conn_set_of(sk, cfg_conn_mask);
	return bpf_map_lookup_elem(&nw_conn_keys, set);
}

/* The way of s that holds sk, or -1. */
static __always_inline int nw_conn_way(struct nw_conn_set *s, __u64 sk)
{
#pragma unroll
	for (int i = 0; i < NW_WAYS; i++) {
		if (*(volatile __u64 *)&s->sk[i] == sk)
			return i;
	}
	return -1;
}

/*
 * The table entry of sk (a number: nw_ptr_num/nw_num), or 0.
 *
 * Every object reads the variant the loader chose from cfg_conn_mask, the
 * load-time constant the array path loads anyway: the verifier knows its
 * value and drops the other branch, so the array path costs what it did.
 * Claims and releases are only made by the connection object, which
 * carries each program twice (conn.bpf.c, "_na" twins): the hash-variant
 * twins hold no atomic instruction at all, which kernels before 5.12
 * refuse even in dead code.
 */
static __always_inline struct nw_conn *nw_conn_find(__u64 sk)
{
	__u32 mask = cfg_conn_mask;
	if (mask == NW_CONN_HASH_MASK) {
		__u64 k = sk; /* on the stack in this branch only */
		return k ? bpf_map_lookup_elem(&nw_conn_hash, &k) : 0;
	}
	if (!sk)
		return 0;
	__u32 set = nw_conn_set_of(sk, mask);
	struct nw_conn_set *s = bpf_map_lookup_elem(&nw_conn_keys, &set);
	if (!s)
		return 0;
	int w = nw_conn_way(s, sk);
	return w < 0 ? 0 : nw_conn_at(set, w);
}

/* Hash variant of nw_conn_claim: no atomic instruction (an insert that
 * loses a race finds the winner's entry; 0: the table is full). */
static __always_inline struct nw_conn *nw_conn_claim_hash(__u64 sk)
{
	if (!sk)
		return 0;
	struct nw_conn *c = bpf_map_lookup_elem(&nw_conn_hash, &sk);
	if (c)
		return c;
	struct nw_conn zero = {};
	bpf_map_update_elem(&nw_conn_hash, &sk, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&nw_conn_hash, &sk);
}

static __always_inline void nw_conn_release_hash(__u64 sk)
{
	if (sk)
		bpf_map_delete_elem(&nw_conn_hash, &sk);
}

/* The entry of sk, claimed if it has none (0: its set is full). The caller
 * fills a freshly claimed entry: its value is whatever the slot held.
 * Array variant only (compare-and-swap: 5.12+); see nw_conn_claim_hash. */
static __always_inline struct nw_conn *nw_conn_claim(__u64 sk)
{
	__u32 set;
	struct nw_conn_set *s = sk ? nw_conn_set(sk, &set) : 0;
	if (!s)
		return 0;
	int w = nw_conn_way(s, sk);
	if (w >= 0)
		return nw_conn_at(set, w);
#pragma unroll
	for (int i = 0; i < NW_WAYS; i++) {
		if (*(volatile __u64 *)&s->sk[i] == 0 &&
		    __sync_val_compare_and_swap(&s->sk[i], 0, sk) == 0)
			return nw_conn_at(set, i);
	}
	return 0;
}

/* Forget sk: the slot is free for the next claim of its set. */
static __always_inline void nw_conn_release(__u64 sk)
{
	__u32 set;
	struct nw_conn_set *s = sk ? nw_conn_set(sk, &set) : 0;
	if (!s)
		return;
	int w = nw_conn_way(s, sk);
	if (w < 0)
		return;
	struct nw_conn *c = nw_conn_at(set, w);
	if (c)
		c->est_ns = 0;
	__sync_val_compare_and_swap(&s->sk[w & (NW_WAYS - 1)], sk, 0);
}

#endif /* NW_CONN_TABLE_H */
