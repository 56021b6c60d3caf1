//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * -n: the time each packet spends in each netfilter hook it crosses.
 *
 * Two netfilter BPF programs per hook (PRE_ROUTING, LOCAL_IN, FORWARD,
 * LOCAL_OUT, POST_ROUTING) and family (IPv4, IPv6), attached in every
 * network namespace: nw_nf_first at the first priority a BPF link may take
 * (INT_MIN + 1: NF_IP_PRI_FIRST itself is refused) and nw_nf_last at the
 * last (INT_MAX - 1). nf_hook_slow() runs a hook's functions in priority
 * order, synchronously, on one CPU, so last - first is the time every
 * other function of the hook took: conntrack, defragmentation, NAT,
 * nftables and iptables chains, other BPF links. Not in it: what runs at
 * exactly INT_MIN or INT_MAX (conntrack confirm, at INT_MAX, in LOCAL_IN
 * and POST_ROUTING).
 *
 * Pairing first and last: the traversal in progress of each (family,
 * hook) is a per-CPU slot {skb, start}. A last program that finds another
 * skb there (a traversal nested in another of the same hook, e.g. a reset
 * sent from an output rule, or a task migrated while in the hook) times
 * nothing and counts NW_STAT_NF_UNMATCHED.
 *
 * One packet, several hooks: received PRE_ROUTING + LOCAL_IN, sent
 * LOCAL_OUT + POST_ROUTING, forwarded PRE_ROUTING + FORWARD + POST_ROUTING.
 * The hooks a packet has crossed wait in a small per-CPU set-associative
 * table keyed by the skb (32 sets x 4 ways: the receive path may run
 * PRE_ROUTING for a list of skbs before any of their LOCAL_IN) until its
 * final hook (LOCAL_IN or POST_ROUTING) ends: then one NW_EV_NF record on
 * the packet ring. A packet that leaves netfilter's view otherwise (a route
 * lookup that fails is a drop, below; a queued or stolen packet, a packet
 * consumed between hooks) keeps its entry until another packet needs the
 * way: NW_STAT_NF_EVICTED.
 *
 * Drops: a rule that drops means the last program of that hook never runs.
 * skb/kfree_skb (tp_btf, raw_tp twin) finds the skb in a slot in progress:
 * the record has verdict drop, the hook, the time until the drop and the
 * kernel's reason (SKB_DROP_REASON_NETFILTER_DROP for a rule's verdict);
 * an skb dropped between two hooks (no route) has its earlier hooks and
 * drop_hook NW_NF_BETWEEN.
 *
 * Which packets: IPv4/IPv6 packets that pass -S/-D and -s/-d (either way
 * round: a hook does not know yet whether a received packet is local);
 * with -s/-d only TCP and UDP. The addresses are the packet's at its first
 * hook (before NAT). Every timed traversal also goes into a log2 histogram
 * per (family, hook) (nw_nf_hist), read by user space every --interval and
 * at exit: the per-hook summary. With --no-packets (cfg_records 0) only the
 * histograms are kept: no ring record.
 */
#include "nw.h"
#include "nw_log2.h"

char LICENSE[] SEC("license") = "GPL";

#define NW_NF_HOOKS 5          /* NF_INET_PRE_ROUTING .. NF_INET_POST_ROUTING */
#define NW_NF_SETS 32
#define NW_NF_WAYS 4
#define NW_NF_SLOTS 32         /* histogram buckets: [2^i, 2^(i+1)) ns */
#define NW_NF_BETWEEN 0xff     /* drop_hook: dropped between two hooks */
#define NW_NFPROTO_IPV6 10
#define NW_IPPROTO_ICMPV6 58

/* hooks (enum nf_inet_hooks) */
#define NW_NF_PRE 0
#define NW_NF_IN 1
#define NW_NF_FWD 2
#define NW_NF_OUT 3
#define NW_NF_POST 4

/* What a packet has crossed so far: the record's body. */
struct nw_nf_pkt {
	__u64 skb;       /* 0: free way */
	__u64 start;     /* its first hook's entry (ns) */
	__u64 sk;        /* skb->sk at the last hook seen (0: none) */
	__u32 dur[NW_NF_HOOKS]; /* ns in hook i (bit i of hooks) */
	__u32 netns;
	__u16 family;
	__u16 sport;     /* TCP/UDP, host order */
	__u16 dport;
	__u8 proto;
	__u8 hooks;      /* bit i: hook i crossed (or entered, for drop_hook) */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 _pad[6];
	__u8 saddr[16];
	__u8 daddr[16];
};

/* NW_EV_NF (packet ring). hdr.sk: skb->sk at the last hook (0: none). */
struct nw_nf_event {
	struct nw_hdr hdr;
	struct nw_nf_pkt p; /* p.skb: the skb (a kernel address) */
	__u32 reason;       /* verdict drop: enum skb_drop_reason (kernel numbering) */
	__u32 est_lo;       /* low 32 bits of the tracked TCP connection's est_ns (0: none) */
	__u8 verdict;       /* 0: passed its final hook, 1: dropped */
	__u8 drop_hook;     /* verdict drop: NF_INET_* it was dropped in, NW_NF_BETWEEN */
	__u8 _pad[6];
	struct nw_owner owner;
};

/* The traversal in progress of one (family, hook) on a CPU. */
struct nw_nf_cur {
	__u64 skb;
	__u64 t0;
};

struct nw_nf_percpu {
	struct nw_nf_cur cur[2][NW_NF_HOOKS];
	struct nw_nf_pkt pend[NW_NF_SETS][NW_NF_WAYS];
	__u8 next[NW_NF_SETS]; /* way to evict next, per set */
	struct nw_nf_pkt new;  /* a packet being parsed (off the stack) */
	__u8 hdr[48];          /* its headers */
};

/* Per-hook histogram: index family * 5 + hook (family 0 IPv4, 1 IPv6). */
struct nw_nf_hook_hist {
	__u64 buckets[NW_NF_SLOTS];
	__u64 sum_ns;
	__u64 max_ns;
	__u64 drops; /* packets dropped inside the hook */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nw_nf_percpu);
} nw_nf_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * NW_NF_HOOKS);
	__type(key, __u32);
	__type(value, struct nw_nf_hook_hist);
} nw_nf_hist SEC(".maps");

/* Set by the loader. */
volatile const __u8 cfg_records = 1;       /* per-packet records (0: --no-packets, histograms only) */
volatile const __u32 cfg_first_drop = 2;   /* SKB_DROP_REASON_NOT_SPECIFIED: lower codes are not drops */

static __always_inline struct nw_nf_percpu *nf_cpu(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nw_nf_cpu, &zero);
}

static __always_inline __u32 nf_set(__u64 skb)
{
	return (__u32)((skb * 0x9E3779B97F4A7C15ULL) >> 59) & (NW_NF_SETS - 1);
}

/* The way of set holding skb, or -1. */
static __always_inline int nf_find(struct nw_nf_percpu *c, __u32 set, __u64 skb)
{
	if (set >= NW_NF_SETS)
		return -1;
#pragma unroll
	for (int w = 0; w < NW_NF_WAYS; w++)
		if (c->pend[set][w].skb == skb)
			return w;
	return -1;
}

/* Network and transport headers of skb into p; false when the packet is
 * not wanted (not IP, or left out by -S/-D/-s/-d). */
/* Network and transport headers of skb into p; false when the packet is
 * not wanted (not IP, or left out by -S/-D/-s/-d). One read of the first
 * 48 bytes from the network header covers an IPv4 header without options
 * or an IPv6 header and the first 4 bytes after either (probe reads cost
 * ~20 ns each: field by field, the parse was half of the program). */
static __always_inline bool nf_parse(const struct sk_buff *skb, struct nw_nf_pkt *p, __u8 *b, bool direct)
{
	const unsigned char *head = NW_RD(direct, skb, head);
	__u16 nh = NW_RD(direct, skb, network_header);
	__u32 tail = NW_RD(direct, skb, tail); /* end of the linear part (an offset) */
	if (!head || nh == NW_NO_HEADER)
		return false;
	if (bpf_probe_read_kernel(b, 48, head + nh))
		return false;
	__u32 toff;
	bool later_frag = false;
	__u8 *l4 = &b[40];
	if (b[0] >> 4 == 4) {
		p->family = AF_INET;
		p->proto = b[9];
		later_frag = ((b[6] & 0x1f) | b[7]) != 0;
		__builtin_memcpy(p->saddr, &b[12], 4);
		__builtin_memcpy(p->daddr, &b[16], 4);
		__u32 ihl = (b[0] & 0x0f) * 4;
		toff = nh + ihl;
		if (ihl == 20)
			l4 = &b[20];
		else if (ihl < 20 || bpf_probe_read_kernel(&b[40], 4, head + toff))
			later_frag = true; /* no transport header known */
	} else if (b[0] >> 4 == 6) {
		p->family = AF_INET6;
		p->proto = b[6];
		__builtin_memcpy(p->saddr, &b[8], 16);
		__builtin_memcpy(p->daddr, &b[24], 16);
		toff = nh + 40;
	} else {
		return false;
	}
	/* the transport header, when it is in the linear part already (at
	 * PRE_ROUTING only the IP header is sure to be pulled) */
	if (!later_frag && toff + 4 <= tail) {
		switch (p->proto) {
		case IPPROTO_TCP:
		case IPPROTO_UDP:
			p->sport = (l4[0] << 8) | l4[1];
			p->dport = (l4[2] << 8) | l4[3];
			break;
		case IPPROTO_ICMP:
		case NW_IPPROTO_ICMPV6:
			p->icmp_type = l4[0];
			p->icmp_code = l4[1];
			break;
		}
	}
	/* either way round: a hook does not know yet which end is local */
	if ((cfg_src_nets || cfg_dst_nets) && !nw_addrs_wanted(p->family, p->saddr, p->daddr) &&
	    !nw_addrs_wanted(p->family, p->daddr, p->saddr))
		return false;
	if (!cfg_sport && !cfg_dport)
		return true;
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return false;
	return nw_ports_wanted(p->sport, p->dport) || nw_ports_wanted(p->dport, p->sport);
}

/* A hook that may continue a packet's earlier hooks. */
static __always_inline bool nf_continues(__u8 hook, __u8 crossed)
{
	switch (hook) {
	case NW_NF_IN:
	case NW_NF_FWD:
		return crossed == (1 << NW_NF_PRE);
	case NW_NF_POST:
		return crossed == (1 << NW_NF_OUT) || crossed == ((1 << NW_NF_PRE) | (1 << NW_NF_FWD));
	}
	return false;
}

static __always_inline void nf_emit(struct nw_nf_pkt *p, __u64 now, __u8 verdict, __u8 drop_hook, __u32 reason)
{
	struct nw_nf_event *e = nw_reserve(&nw_pkt_events, sizeof(*e), NW_EV_NF);
	if (!e)
		return;
	e->hdr.type = NW_EV_NF;
	e->hdr.netns = p->netns;
	e->hdr.ts = now;
	e->hdr.sk = p->sk;
	__builtin_memcpy(&e->p, p, sizeof(*p));
	e->reason = reason;
	e->verdict = verdict;
	e->drop_hook = drop_hook;
	const struct nw_conn *c = p->sk ? nw_conn_find(p->sk) : 0;
	if (c) {
		e->est_lo = (__u32)c->est_ns;
		e->owner = c->owner;
	} else {
		e->est_lo = 0;
		__builtin_memset(&e->owner, 0, sizeof(e->owner));
	}
	nw_submit(&nw_pkt_events, e, sizeof(*e));
}

/* A hook's start for skb (key: its address): a later hook of a packet
 * already wanted continues its pending entry; else the packet is parsed and,
 * when wanted, gets one. Returns whether the traversal is timed. */
static __always_inline bool nf_enter(struct nw_nf_percpu *c, const struct sk_buff *skb, __u64 key, __u8 hook,
				     __u32 netns, bool direct)
{
	__u32 set = nf_set(key);
	int w = nf_find(c, set, key);
	if (w >= 0 && w < NW_NF_WAYS && set < NW_NF_SETS && nf_continues(hook, c->pend[set][w].hooks))
		return true; /* a later hook of a packet already wanted */
	struct nw_nf_pkt *p = &c->new;
	__builtin_memset(p, 0, sizeof(*p));
	if (!nf_parse(skb, p, c->hdr, direct))
		return false;
	if (set >= NW_NF_SETS)
		return false;
	if (w < 0) {
		/* a free way, else evict the set's next victim */
#pragma unroll
		for (int i = 0; i < NW_NF_WAYS; i++) {
			if (w < 0 && !c->pend[set][i].skb)
				w = i;
		}
		if (w < 0) {
			w = c->next[set] & (NW_NF_WAYS - 1);
			c->next[set] = w + 1;
			nw_count(NW_STAT_NF_EVICTED);
		}
	} else {
		nw_count(NW_STAT_NF_EVICTED); /* the same skb, an unfinished earlier packet */
	}
	if (w < 0 || w >= NW_NF_WAYS)
		return false;
	p->skb = key;
	p->netns = netns;
	p->start = bpf_ktime_get_ns();
	c->pend[set][w] = *p;
	return true;
}

/* A hook's end for a timed traversal (t0: its start): histogram, pending
 * entry, and the record when it is the packet's final hook. */
static __always_inline void nf_leave(struct nw_nf_percpu *c, __u64 key, __u8 hook, __u32 fam, __u64 t0, __u64 now,
				     __u64 sk)
{
	if (hook >= NW_NF_HOOKS)
		return;
	__u64 d = now - t0;
	__u32 hi = fam * NW_NF_HOOKS + hook;
	struct nw_nf_hook_hist *h = bpf_map_lookup_elem(&nw_nf_hist, &hi);
	if (h) {
		__u32 b = nw_log2_u64(d);
		if (b >= NW_NF_SLOTS)
			b = NW_NF_SLOTS - 1;
		h->buckets[b]++;
		h->sum_ns += d;
		if (d > h->max_ns)
			h->max_ns = d;
	}
	__u32 set = nf_set(key);
	int w = nf_find(c, set, key);
	if (w < 0 || w >= NW_NF_WAYS || set >= NW_NF_SETS)
		return;
	struct nw_nf_pkt *p = &c->pend[set][w];
	p->dur[hook] = d > 0xffffffffULL ? 0xffffffffU : (__u32)d;
	p->hooks |= 1 << hook;
	p->sk = sk;
	if (hook == NW_NF_IN || hook == NW_NF_POST) {
		if (cfg_records)
			nf_emit(p, now, 0, 0, 0);
		p->skb = 0;
	}
}

SEC("netfilter")
int nw_nf_first(struct bpf_nf_ctx *ctx)
{
	const struct nf_hook_state *st = ctx->state;
	struct sk_buff *skb = ctx->skb;
	__u8 hook = st->hook;
	__u32 fam = st->pf == NW_NFPROTO_IPV6;
	struct nw_nf_percpu *c = nf_cpu();
	if (!c || hook >= NW_NF_HOOKS)
		return 1;
	__u64 key = nw_ptr_num(skb);
	if (!nf_enter(c, skb, key, hook, st->net->ns.inum, true)) {
		c->cur[fam][hook].skb = 0;
		return 1;
	}
	c->cur[fam][hook].skb = key;
	c->cur[fam][hook].t0 = bpf_ktime_get_ns(); /* last: our own work is not the hook's */
	return 1; /* NF_ACCEPT */
}

SEC("netfilter")
int nw_nf_last(struct bpf_nf_ctx *ctx)
{
	__u64 now = bpf_ktime_get_ns(); /* first: our own work is not the hook's */
	const struct nf_hook_state *st = ctx->state;
	struct sk_buff *skb = ctx->skb;
	__u8 hook = st->hook;
	__u32 fam = st->pf == NW_NFPROTO_IPV6;
	struct nw_nf_percpu *c = nf_cpu();
	if (!c || hook >= NW_NF_HOOKS)
		return 1;
	__u64 key = nw_ptr_num(skb);
	struct nw_nf_cur *cur = &c->cur[fam][hook];
	if (cur->skb != key) {
		if (cur->skb)
			nw_count(NW_STAT_NF_UNMATCHED);
		return 1;
	}
	cur->skb = 0;
	struct sock *sk = skb->sk;
	nf_leave(c, key, hook, fam, cur->t0, now, sk ? nw_ptr_num(sk) : 0);
	return 1;
}

/*
 * Before netfilter BPF links (6.4): the whole traversal of a hook,
 * nf_hook_slow(skb, state, entries, start) from entry to return (kprobe
 * and kretprobe), host-wide. The kernel calls it only where a hook has
 * functions, so a namespace without any costs nothing and has no record;
 * the time includes every function of the hook. Its return says the
 * verdict: 1 go on, < 0 dropped (NF_DROP), 0 stolen or queued. The
 * kretprobe has no arguments: the traversals in progress of each task are a
 * small stack (a softirq may run one inside another on the same task).
 */
#define NW_NF_DEPTH 4

struct nw_nf_frame {
	__u64 skb;
	__u64 t0;
	__u8 hook;
	__u8 fam;
	__u8 timed;
	__u8 _pad[5];
};

struct nw_nf_task {
	struct nw_nf_frame f[NW_NF_DEPTH];
	__u32 depth; /* may exceed NW_NF_DEPTH: those frames are not kept */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* task_struct address */
	__type(value, struct nw_nf_task);
} nw_nf_tasks SEC(".maps");

static const struct nw_nf_task nw_nf_task_zero = {};

SEC("kprobe/nf_hook_slow")
int BPF_KPROBE(nw_nf_slow_kp, struct sk_buff *skb, const struct nf_hook_state *st)
{
	__u64 task = bpf_get_current_task();
	struct nw_nf_task *t = bpf_map_lookup_elem(&nw_nf_tasks, &task);
	if (!t) {
		bpf_map_update_elem(&nw_nf_tasks, &task, &nw_nf_task_zero, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&nw_nf_tasks, &task);
		if (!t)
			return 0;
	}
	__u32 d = t->depth++;
	if (d >= NW_NF_DEPTH)
		return 0;
	struct nw_nf_frame *f = &t->f[d];
	f->timed = 0;
	__u8 pf = BPF_CORE_READ(st, pf);
	__u8 hook = BPF_CORE_READ(st, hook);
	struct nw_nf_percpu *c = nf_cpu();
	if (!c || (pf != 2 && pf != NW_NFPROTO_IPV6) || hook >= NW_NF_HOOKS)
		return 0;
	__u32 fam = pf == NW_NFPROTO_IPV6;
	__u64 key = (__u64)skb;
	if (!nf_enter(c, skb, key, hook, BPF_CORE_READ(st, net, ns.inum), false))
		return 0;
	f->skb = key;
	f->hook = hook;
	f->fam = fam;
	f->timed = 1;
	f->t0 = bpf_ktime_get_ns();
	c->cur[fam][hook].skb = key; /* for a drop: kfree_skb looks here */
	c->cur[fam][hook].t0 = f->t0;
	return 0;
}

SEC("kretprobe/nf_hook_slow")
int BPF_KRETPROBE(nw_nf_slow_ret_kp, int ret)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 task = bpf_get_current_task();
	struct nw_nf_task *t = bpf_map_lookup_elem(&nw_nf_tasks, &task);
	if (!t || !t->depth)
		return 0;
	__u32 d = --t->depth;
	if (d >= NW_NF_DEPTH)
		return 0;
	struct nw_nf_frame *f = &t->f[d];
	if (!f->timed)
		return 0;
	f->timed = 0;
	struct nw_nf_percpu *c = nf_cpu();
	if (!c)
		return 0;
	__u8 hook = f->hook;
	__u32 fam = f->fam & 1;
	__u64 key = f->skb;
	if (hook >= NW_NF_HOOKS)
		return 0;
	struct nw_nf_cur *cur = &c->cur[fam][hook];
	bool mine = cur->skb == key;
	if (mine)
		cur->skb = 0;
	if (ret == 1) {
		/* the skb goes on: its socket is still there to read */
		struct sock *sk = BPF_CORE_READ((struct sk_buff *)key, sk);
		nf_leave(c, key, hook, fam, f->t0, now, (__u64)sk);
	} else if (ret < 0 && mine) {
		/* dropped, and kfree_skb did not see it (no drop reason before
		 * 5.17): a rule's verdict, reason unknown (0) */
		__u32 set = nf_set(key);
		int w = nf_find(c, set, key);
		if (w < 0 || w >= NW_NF_WAYS || set >= NW_NF_SETS)
			return 0;
		struct nw_nf_pkt *p = &c->pend[set][w];
		__u64 dd = now - f->t0;
		p->dur[hook] = dd > 0xffffffffULL ? 0xffffffffU : (__u32)dd;
		p->hooks |= 1 << hook;
		__u32 hi = fam * NW_NF_HOOKS + hook;
		struct nw_nf_hook_hist *h = bpf_map_lookup_elem(&nw_nf_hist, &hi);
		if (h)
			h->drops++;
		if (cfg_records)
			nf_emit(p, now, 1, hook, 0);
		p->skb = 0;
	}
	return 0;
}

/* A dropped skb: inside a hook (a rule's verdict), or between two. */
static __always_inline int on_kfree(const struct sk_buff *skb, __u32 reason, bool direct)
{
	struct nw_nf_percpu *c = nf_cpu();
	if (!c)
		return 0;
	__u64 key = direct ? nw_ptr_num(skb) : (__u64)skb;
	__u32 set = nf_set(key);
	int w = nf_find(c, set, key);
	if (w < 0 || w >= NW_NF_WAYS || set >= NW_NF_SETS)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	struct nw_nf_pkt *p = &c->pend[set][w];
	__u8 in = NW_NF_BETWEEN;
#pragma unroll
	for (int f = 0; f < 2; f++) {
#pragma unroll
		for (int h = 0; h < NW_NF_HOOKS; h++) {
			struct nw_nf_cur *cur = &c->cur[f][h];
			if (cur->skb == key) {
				cur->skb = 0;
				if (in == NW_NF_BETWEEN) {
					in = h;
					__u64 d = now - cur->t0;
					p->dur[h] = d > 0xffffffffULL ? 0xffffffffU : (__u32)d;
					p->hooks |= 1 << h;
					if (reason >= cfg_first_drop) {
						__u32 hi = f * NW_NF_HOOKS + h;
						struct nw_nf_hook_hist *hh = bpf_map_lookup_elem(&nw_nf_hist, &hi);
						if (hh)
							hh->drops++;
					}
				}
			}
		}
	}
	if (reason >= cfg_first_drop && cfg_records)
		nf_emit(p, now, 1, in, reason);
	p->skb = 0;
	return 0;
}

NW_TP_TWINS(kfree_skb, nw_nf_kfree_btf, nw_nf_kfree_raw, const struct sk_buff *skb, void *location, int reason)
{
	return on_kfree(skb, reason, direct);
}

/* for bpf2go -type */
const struct nw_nf_event *nw_unused_nf_event __attribute__((unused));
const struct nw_nf_hook_hist *nw_unused_nf_hist __attribute__((unused));
