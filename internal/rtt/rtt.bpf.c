//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * --rtt: per-connection distribution of the kernel's own RTT samples.
 *
 * One sock_ops program on the cgroup v2 root (every namespace). The kernel
 * calls it back, with the flags we set per socket:
 *
 *   TCP_CONNECT_CB (always, connect()): set RTT_CB and STATE_CB, so the
 *     connecting side's SYN -> SYN-ACK sample is seen too (the local port
 *     is not bound yet: the -s filter is applied at establishment).
 *   ACTIVE_/PASSIVE_ESTABLISHED_CB (always): set RTT_CB and STATE_CB if the
 *     ports pass -s/-d, clear them otherwise.
 *   RTT_CB (with the flag): tcp_rtt_estimator() calls tcp_bpf_rtt(sk, mrtt_us,
 *     srtt) (6.10+: args[0] = mrtt_us, the measured sample fed to the
 *     estimator; args[1] = the updated srtt, << 3). The estimator makes the
 *     call once per round trip (when snd_una passes rtt_seq) and on the
 *     first sample, not for every ACK: the histogram holds one sample per
 *     round trip, the sample that closed it.
 *   STATE_CB (with the flag): on -> CLOSE, one NW_EV_RTT record with the
 *     connection's whole histogram, and its entry is removed. tcp_set_state
 *     calls it before the inet_sock_set_state tracepoint, so the
 *     connection tracker's entry (est_lo) is still there.
 *
 * nw_rtt (hash by socket number, the connection table's key) holds one
 * histogram per connection with samples: bucket i counts samples in
 * [2^i, 2^(i+1)) µs (bucket 0 also holds 0 µs; the last one everything
 * above 2^31 µs). User space reads it every --interval and prints the
 * difference per connection.
 *
 * Not seen: connections established before netwatcher started (no
 * ESTABLISHED callback fires for them, and nothing else sets their flags);
 * the accepted side's first sample (the SYN-ACK's RTT, taken before
 * PASSIVE_ESTABLISHED_CB). Kernels before 6.10 pass no sample in args:
 * the program then records the socket's srtt at each callback, and says
 * so (srtt = 1), see nw_rtt_sample.
 */
#include "nw.h"

char LICENSE[] SEC("license") = "GPL";

#define NW_RTT_SLOTS 32

/* NW_EV_RTT, at close; also the value of nw_rtt. */
struct nw_rtt_hist {
	__u64 sum_us;  /* sum of the samples (µs) */
	__u32 min_us;  /* smallest sample (valid when a bucket is non-zero) */
	__u32 max_us;
	__u32 est_lo;  /* low 32 bits of the tracker's est_ns (0: not known) */
	__u16 family;
	__u16 sport;   /* local port, host order */
	__u16 dport;   /* remote port, host order */
	__u8 srtt;     /* 1: samples are the socket's srtt (the kernel passed none) */
	__u8 _pad;
	__u32 netns;   /* network namespace inode */
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 slots[NW_RTT_SLOTS];
};

struct nw_rtt_event {
	struct nw_hdr hdr;
	struct nw_rtt_hist h;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	/* not preallocated: 131072 entries would take ~30 MB up front; an
	 * entry is allocated at a connection's first sample (once per
	 * connection) and freed at its close */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 131072); /* sized by the loader (--max-conns) */
	__type(key, __u64);
	__type(value, struct nw_rtt_hist);
} nw_rtt SEC(".maps");

/* Own counters: 0 = a connection's histogram did not fit in nw_rtt. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nw_rtt_stats SEC(".maps");

#define NW_RTT_FLAGS (BPF_SOCK_OPS_RTT_CB_FLAG | BPF_SOCK_OPS_STATE_CB_FLAG)

static __always_inline __u32 nw_log2(__u32 v)
{
	__u32 r = 0, s;
	s = (v > 0xffff) << 4; v >>= s; r |= s;
	s = (v > 0xff) << 3;   v >>= s; r |= s;
	s = (v > 0xf) << 2;    v >>= s; r |= s;
	s = (v > 0x3) << 1;    v >>= s; r |= s;
	r |= (v >> 1);
	return r;
}

/*
 * A field of the context, loaded at a constant offset from it: the
 * verifier rewrites sock_ops context loads and refuses a load through a
 * context pointer clang has moved (it hoists ctx + offset out of branches:
 * "dereference of modified ctx ptr").
 */
#define NW_SKOPS(skops, field)                                                          \
	({                                                                              \
		__u32 __v;                                                              \
		asm volatile("%0 = *(u32 *)(%1 + %2)"                                   \
			     : "=r"(__v)                                                \
			     : "r"(skops), "i"(__builtin_offsetof(struct bpf_sock_ops, field))); \
		__v;                                                                    \
	})

static __always_inline void nw_rtt_tuple(struct nw_rtt_hist *h, struct bpf_sock_ops *skops)
{
	h->family = NW_SKOPS(skops, family);
	h->sport = NW_SKOPS(skops, local_port);
	h->dport = bpf_ntohl(NW_SKOPS(skops, remote_port));
	if (h->family == AF_INET) {
		__u32 s = NW_SKOPS(skops, local_ip4), d = NW_SKOPS(skops, remote_ip4);
		__builtin_memcpy(h->saddr, &s, 4);
		__builtin_memcpy(h->daddr, &d, 4);
	} else {
		__u32 a[4];
		a[0] = NW_SKOPS(skops, local_ip6[0]);
		a[1] = NW_SKOPS(skops, local_ip6[1]);
		a[2] = NW_SKOPS(skops, local_ip6[2]);
		a[3] = NW_SKOPS(skops, local_ip6[3]);
		__builtin_memcpy(h->saddr, a, 16);
		a[0] = NW_SKOPS(skops, remote_ip6[0]);
		a[1] = NW_SKOPS(skops, remote_ip6[1]);
		a[2] = NW_SKOPS(skops, remote_ip6[2]);
		a[3] = NW_SKOPS(skops, remote_ip6[3]);
		__builtin_memcpy(h->daddr, a, 16);
	}
}

/* -s/-d, -S/-D on the socket's tuple. */
static __always_inline bool nw_rtt_wanted(struct bpf_sock_ops *skops)
{
	struct nw_rtt_hist t = {};
	nw_rtt_tuple(&t, skops);
	return nw_ports_wanted(t.sport, t.dport) && nw_addrs_wanted(t.family, t.saddr, t.daddr);
}

static __always_inline void nw_rtt_sample(struct bpf_sock_ops *skops, struct bpf_sock *sk, __u64 key)
{
	/* Before 6.10 the callback has no arguments (args are zeroed): no
	 * sample, so the socket's srtt stands in for it, and the record says
	 * so. From 6.10 args[1] is the updated srtt (<< 3), 0 only where the
	 * first sample was 0 µs. */
	__u32 mrtt = NW_SKOPS(skops, args[0]);
	bool no_mrtt = mrtt == 0 && NW_SKOPS(skops, args[1]) == 0;
	__u32 us = no_mrtt ? NW_SKOPS(skops, srtt_us) >> 3 : mrtt;
	struct nw_rtt_hist *h = bpf_map_lookup_elem(&nw_rtt, &key);
	if (!h) {
		struct nw_rtt_hist n = {};
		nw_rtt_tuple(&n, skops);
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
		if (tp)
			n.netns = nw_sk_netns((const struct sock *)tp, true);
		/* -s/-d, -S/-D: the connecting side's flags were set at
		 * connect(), before its local port and address were known */
		if (!nw_ports_wanted(n.sport, n.dport) || !nw_addrs_wanted(n.family, n.saddr, n.daddr))
			return;
		n.min_us = us;
		if (bpf_map_update_elem(&nw_rtt, &key, &n, BPF_NOEXIST) && bpf_map_lookup_elem(&nw_rtt, &key) == 0) {
			__u32 zero = 0;
			__u64 *full = bpf_map_lookup_elem(&nw_rtt_stats, &zero);
			if (full)
				(*full)++;
			return;
		}
		h = bpf_map_lookup_elem(&nw_rtt, &key);
		if (!h)
			return;
	}
	if (!h->est_lo) {
		const struct nw_conn *c = nw_conn_find(key);
		if (c && c->est_ns)
			h->est_lo = (__u32)c->est_ns;
	}
	if (no_mrtt)
		h->srtt = 1;
	/* one writer per socket: the callbacks run under the socket's lock */
	__u32 i = nw_log2(us);
	if (i >= NW_RTT_SLOTS)
		i = NW_RTT_SLOTS - 1;
	h->slots[i & (NW_RTT_SLOTS - 1)]++;
	h->sum_us += us;
	if (us < h->min_us)
		h->min_us = us;
	if (us > h->max_us)
		h->max_us = us;
}

static __always_inline void nw_rtt_close(struct bpf_sock_ops *skops, __u64 key)
{
	struct nw_rtt_hist *h = bpf_map_lookup_elem(&nw_rtt, &key);
	if (!h)
		return;
	if (!h->est_lo) {
		const struct nw_conn *c = nw_conn_find(key);
		if (c && c->est_ns)
			h->est_lo = (__u32)c->est_ns;
	}
	struct nw_rtt_event *e = nw_reserve(&nw_events, sizeof(*e), NW_EV_RTT);
	if (e) {
		e->hdr.type = NW_EV_RTT;
		e->hdr.netns = h->netns;
		e->hdr.ts = bpf_ktime_get_ns();
		e->hdr.sk = key;
		__builtin_memcpy(&e->h, h, sizeof(e->h));
		nw_submit(&nw_events, e, sizeof(*e));
	}
	bpf_map_delete_elem(&nw_rtt, &key);
}

SEC("sockops")
int nw_rtt_sockops(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;
	struct bpf_sock *sk;
	__u64 key;

	switch (op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		if (cfg_dport && cfg_dport != bpf_ntohl(skops->remote_port))
			return 1;
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | NW_RTT_FLAGS);
		return 1;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		if (nw_rtt_wanted(skops))
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | NW_RTT_FLAGS);
		else
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags & ~NW_RTT_FLAGS);
		return 1;
	case BPF_SOCK_OPS_RTT_CB:
	case BPF_SOCK_OPS_STATE_CB:
		break;
	default:
		return 1;
	}
	sk = skops->sk;
	if (!sk)
		return 1;
	key = nw_ptr_num(sk);
	if (!key)
		return 1;
	if (op == BPF_SOCK_OPS_RTT_CB)
		nw_rtt_sample(skops, sk, key);
	else if (skops->args[1] == BPF_TCP_CLOSE)
		nw_rtt_close(skops, key);
	return 1;
}

/* for bpf2go -type (Go decodes the record through the generated type) */
const struct nw_rtt_event *nw_unused_rtt_event __attribute__((unused));
