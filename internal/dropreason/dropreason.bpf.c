//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * -k: every packet the kernel frees as dropped, any protocol.
 *
 * skb/kfree_skb (skb, location, reason; rx_sk since 6.11) fires for every
 * skb freed through kfree_skb_reason()/sk_skb_reason_drop(). Packets that
 * were used (consume_skb) have their own tracepoint; a kfree_skb with
 * SKB_NOT_DROPPED_YET or SKB_CONSUMED is not a drop and is left out: every
 * reason below cfg_first_drop (SKB_DROP_REASON_NOT_SPECIFIED, from BTF).
 *
 * Cheap on purpose (a drop storm fires this at packet rate): leave at once
 * for a non-drop; a few header reads; one per-CPU counter per reason; one
 * ring record (a full ring is counted by nw_reserve). No maps written
 * besides the counter, no allocation.
 *
 * What one record carries: the reason code and the location (the kernel
 * address that freed the skb: user space symbolises it from kallsyms), the
 * network and transport headers of the skb (family, protocol, addresses,
 * TCP/UDP ports or ICMP type/code) or, when the skb has no IP header yet (a
 * socket's queue purged before IP output), the tuple of its socket; the
 * socket (rx_sk, else skb->sk) and, for a tracked connection, the low bits
 * of its establishment time and its owner; for a listener, the owner of
 * the listen() (nw_listeners, the connection object's map); with -A the
 * kernel stack (NW_DROP_STACK frames at most).
 */
#include "nw.h"
#include "nw_listeners.h"

char LICENSE[] SEC("license") = "GPL";

#define NW_DROP_STACK 16
#define NW_ETH_P_IP 0x0800
#define NW_ETH_P_IPV6 0x86DD
#define NW_IPPROTO_ICMPV6 58 /* a #define in the kernel: not in vmlinux.h */

/* NW_EV_DROP. Without -A the record ends before stack. */
struct nw_drop_event {
	struct nw_hdr hdr;  /* sk: rx_sk, else skb->sk (0: none) */
	__u64 location;     /* kernel address that freed the skb */
	__u32 reason;       /* enum skb_drop_reason, kernel numbering */
	__u32 est_lo;       /* low 32 bits of the tracked connection's est_ns (0: not one) */
	__u16 family;       /* AF_INET, AF_INET6; 0: not IP */
	__u16 l3;           /* skb->protocol (ethertype), host order */
	__u16 sport;        /* TCP/UDP ports, host order */
	__u16 dport;
	__u8 proto;         /* IPPROTO_* (IP only) */
	__u8 icmp_type;     /* ICMP/ICMPv6 only */
	__u8 icmp_code;
	__u8 from_sk;       /* 1: tuple read from the socket (local = src) */
	__u8 sk_state;      /* TCP state of an inet socket (0: no socket) */
	__u8 nstack;        /* frames in stack */
	__u8 _pad[2];
	__u8 saddr[16];
	__u8 daddr[16];
	struct nw_owner owner;
	__u64 stack[NW_DROP_STACK];
};

/* Set by the loader. */
volatile const __u32 cfg_first_drop = 2; /* SKB_DROP_REASON_NOT_SPECIFIED */
volatile const __u32 cfg_nreasons = 1;   /* counter slots - 1: the last counts codes beyond */
volatile const __u8 cfg_rx_sk = 0;       /* kfree_skb has rx_sk (6.11+) */
volatile const __u8 cfg_stack = 0;       /* -A */

/* Drops by reason (index: code, codes >= cfg_nreasons in the last slot).
 * Sized by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} nw_dropr_count SEC(".maps");


/* Network and transport headers (nw_skb.h). */
static __always_inline void parse(const struct sk_buff *skb, struct nw_drop_event *e, bool direct)
{
	e->l3 = bpf_ntohs(NW_RD(direct, skb, protocol));
	if (e->l3 != NW_ETH_P_IP && e->l3 != NW_ETH_P_IPV6)
		return;
	struct nw_skb_ip ip;
	if (nw_skb_ip(skb, &ip, e->saddr, e->daddr, direct) || ip.family != (e->l3 == NW_ETH_P_IP ? AF_INET : AF_INET6))
		return;
	e->family = ip.family;
	e->proto = ip.proto;
	if (ip.later_frag)
		return; /* a later fragment: no transport header */
	__u16 toff = ip.toff;
	if (ip.family == AF_INET6) {
		if (e->proto != IPPROTO_TCP && e->proto != IPPROTO_UDP && e->proto != NW_IPPROTO_ICMPV6) {
			/* extension headers: the transport header, when the stack
			 * got that far, is past them; its protocol is not known
			 * here without walking them */
			return;
		}
		if (ip.th != NW_NO_HEADER && ip.th > ip.nh)
			toff = ip.th;
	}
	__u8 l4[4];
	switch (e->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		if (bpf_probe_read_kernel(l4, 4, ip.head + toff))
			return;
		e->sport = (l4[0] << 8) | l4[1];
		e->dport = (l4[2] << 8) | l4[3];
		break;
	case IPPROTO_ICMP:
	case NW_IPPROTO_ICMPV6:
		if (bpf_probe_read_kernel(l4, 2, ip.head + toff))
			return;
		e->icmp_type = l4[0];
		e->icmp_code = l4[1];
		break;
	}
}


/* The socket's part: netns, tracked connection or listener, and its tuple
 * when the skb had none. Every socket kind shares sock_common: only its
 * fields are read before the state says it is a full socket. */
static __always_inline void from_sock(const struct sock *sk, struct nw_drop_event *e, bool direct)
{
	__u16 fam = NW_RD(direct, sk, __sk_common.skc_family);
	if (fam != AF_INET && fam != AF_INET6)
		return;
	__u8 state = NW_RD(direct, sk, __sk_common.skc_state);
	e->sk_state = state;
	e->hdr.netns = nw_sk_netns(sk, direct);
	const struct nw_conn *c = nw_conn_find(e->hdr.sk);
	if (c) {
		e->owner = c->owner;
		e->est_lo = (__u32)c->est_ns;
	} else if (state == TCP_LISTEN) {
		__u64 lk = nw_listener_key(e->hdr.netns, NW_RD(direct, sk, __sk_common.skc_num));
		struct nw_owner *o = bpf_map_lookup_elem(&nw_listeners, &lk);
		if (o)
			e->owner = *o;
	}
	if (e->family)
		return;
	/* no IP header: the socket's own tuple (local -> remote) */
	struct nw_conn t = {};
	nw_fill_tuple(&t, sk, direct);
	e->family = fam;
	e->from_sk = 1;
	e->sport = t.sport;
	e->dport = t.dport;
	__builtin_memcpy(e->saddr, t.saddr, 16);
	__builtin_memcpy(e->daddr, t.daddr, 16);
	if (state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV)
		e->proto = IPPROTO_TCP; /* not a full socket: no sk_protocol */
	else
		e->proto = NW_RD(direct, sk, sk_protocol);
}

static __always_inline bool wanted(const struct nw_drop_event *e)
{
	if (cfg_src_nets || cfg_dst_nets) {
		/* either way: a drop may be of a received or a sent packet */
		if (e->family != AF_INET && e->family != AF_INET6)
			return false;
		if (!nw_addrs_wanted(e->family, e->saddr, e->daddr) && !nw_addrs_wanted(e->family, e->daddr, e->saddr))
			return false;
	}
	if (!cfg_sport && !cfg_dport)
		return true;
	if (e->proto != IPPROTO_TCP && e->proto != IPPROTO_UDP)
		return false;
	return nw_ports_wanted(e->sport, e->dport) || nw_ports_wanted(e->dport, e->sport);
}

static __always_inline int on_drop(unsigned long long *ctx, const struct sk_buff *skb, __u64 location,
				   __u32 reason, const struct sock *sk, bool direct)
{
	if (reason < cfg_first_drop)
		return 0; /* not a drop (SKB_NOT_DROPPED_YET, SKB_CONSUMED) */
	/* built on the stack, then copied: a filtered drop costs no ring
	 * reservation, and a lost record is one the filters kept */
	struct nw_drop_event r;
	__builtin_memset(&r, 0, offsetof(struct nw_drop_event, stack));
	r.hdr.type = NW_EV_DROP;
	r.location = location;
	r.reason = reason;
	parse(skb, &r, direct);
	if (!sk)
		sk = NW_RD(direct, skb, sk);
	if (sk) {
		r.hdr.sk = direct ? nw_ptr_num(sk) : (__u64)sk;
		from_sock(sk, &r, direct);
	}
	if (!r.hdr.netns)
		r.hdr.netns = nw_skb_netns(skb);
	if (!wanted(&r))
		return 0;
	__u32 slot = reason < cfg_nreasons ? reason : cfg_nreasons;
	__u64 *n = bpf_map_lookup_elem(&nw_dropr_count, &slot);
	if (n)
		(*n)++;
	r.hdr.ts = bpf_ktime_get_ns();
	if (cfg_stack) {
		struct nw_drop_event *e = nw_reserve(&nw_events, sizeof(*e), NW_EV_DROP);
		if (!e)
			return 0;
		__builtin_memcpy(e, &r, offsetof(struct nw_drop_event, stack));
		long got = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
		e->nstack = got > 0 ? (__u64)got / 8 : 0;
		nw_submit(&nw_events, e, sizeof(*e));
	} else {
		struct nw_drop_event *e = nw_reserve(&nw_events, offsetof(struct nw_drop_event, stack), NW_EV_DROP);
		if (!e)
			return 0;
		__builtin_memcpy(e, &r, offsetof(struct nw_drop_event, stack));
		nw_submit(&nw_events, e, offsetof(struct nw_drop_event, stack));
	}
	return 0;
}

/* rx_sk (6.11+) is read only when the loader saw it in the tracepoint's
 * BTF prototype: the branch is dead code for the verifier otherwise. */
NW_TP_TWINS(kfree_skb, nw_dropr_btf, nw_dropr_raw, const struct sk_buff *skb, void *location, int reason)
{
	const struct sock *rx_sk = 0;
	if (cfg_rx_sk)
		rx_sk = (const void *)ctx[3];
	return on_drop(ctx, skb, (__u64)location, reason, rx_sk, direct);
}

/* for bpf2go -type */
const struct nw_drop_event *nw_unused_drop_event __attribute__((unused));
