//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * -I: one NW_EV_ICMP record (packet ring) per ICMP or ICMPv6 message that
 * enters or leaves a host stack, in every network namespace, with its
 * layer times.
 *
 * Receive boundaries (t[0..3]):
 *   t0 link      net/netif_receive_skb (host-wide; per-CPU ring by skb:
 *                link -> IP -> ICMP is one softirq pass on one CPU)
 *   t1 IP        netfilter PRE_ROUTING (per namespace)
 *   t2 ICMP      netfilter LOCAL_IN, right before icmp_rcv/icmpv6_rcv
 *   t3 end       echo: the copy to the application (skb/skb_copy_datagram_iovec
 *                on a raw or ping socket, process context: the owner), or,
 *                for a request the kernel answers itself, the reply's
 *                LOCAL_OUT (that hook's one stamp is both the request's end
 *                and the reply's t1)
 * An echo waits between t2 and t3 in nw_icmp_rxpend, by (netns, family,
 * type, id, seq, peer): a raw socket gets a CLONE of the skb, so the copy
 * is not the same pointer. Other types are recorded at LOCAL_IN (they are
 * handed to the socket of the flow they refer to, not copied: no t3).
 * An echo nobody copies or answers is recorded by user space after a while
 * (internal/icmp Tick), without t3.
 *
 * Send boundaries (t[0..3]): t0 socket send is not observed (the only
 * send tracepoint, sock_send_length, fires after the send completed);
 * t1 IP netfilter LOCAL_OUT (per namespace; the record is made here and
 * waits in nw_icmp_txpend by skb: on veth and lo the sent skb becomes the
 * peer's received one, so rx and tx stamps are kept apart), t2
 * net/net_dev_queue, t3 net/net_dev_start_xmit, where it is recorded.
 *
 * Error types (unreachable, time exceeded, packet too big, parameter
 * problem, redirect, source quench) carry the protocol, addresses and
 * ports (ICMP echo: id/seq) of the packet they quote: the flow they refer
 * to.
 *
 * Owner: only from process context. A message sent from an application's
 * socket (one with a file) is owned by the current task at LOCAL_OUT; a
 * received echo by the task that copies it. Messages the kernel makes
 * (echo replies, errors, neighbour discovery) have none.
 *
 * Cost for other packets: each hook returns after one header read when the
 * packet is not ICMP/ICMPv6; the copy hook after two socket loads.
 * Filters: -S/-D on the local and remote address (every record), -s/-d on
 * the local and remote port of the quoted flow (error types only: an echo
 * has no ports).
 */
#include "nw.h"

char LICENSE[] SEC("license") = "GPL";

/* The task helpers netfilter programs may call on this kernel
 * (kernel.TaskHelpers: bpf_get_current_pid_tgid 6.10+, bpf_get_current_comm
 * later): without them a sent record's owner is partly or wholly unknown. */
volatile const bool cfg_nf_pid = false;
volatile const bool cfg_nf_comm = false;

#define NW_ETH_P_IP 0x0800
#define NW_ETH_P_IPV6 0x86DD
#define NW_IPPROTO_ICMPV6 58 /* a #define in the kernel: not in vmlinux.h */

/* rx end kinds */
#define ICMP_END_NONE 0   /* not seen (swept by user space, or not an echo) */
#define ICMP_END_COPY 1   /* copied to an application */
#define ICMP_END_KERNEL 2 /* a request the kernel answered */

/* NW_EV_ICMP. */
struct nw_icmp_event {
	struct nw_hdr hdr; /* sk: the application's socket (0: none, or the kernel's) */
	__u64 t[4];        /* boundary stamps, 0 = not seen (see top) */
	__u16 family;      /* AF_INET, AF_INET6 */
	__u8 rx;           /* 1: received, 0: sent */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 end;         /* rx: ICMP_END_* */
	__u8 inner_proto; /* error types: the quoted packet's protocol (0: none) */
	__u8 _pad1;
	__u16 id;          /* echo (host order) */
	__u16 seq;
	__u16 inner_sport; /* quoted TCP/UDP ports (host order); ICMP echo: id */
	__u16 inner_dport; /* ... ICMP echo: seq */
	__u32 len;         /* ICMP message bytes (IP payload) */
	__u32 _pad2;
	__u8 saddr[16];    /* the packet's source */
	__u8 daddr[16];    /* the packet's destination */
	__u8 inner_saddr[16];
	__u8 inner_daddr[16];
	struct nw_owner owner;
};

/* An echo waiting for its copy (or its kernel reply). */
struct nw_icmp_echo_key {
	__u32 netns;
	__u16 family;
	__u8 type; /* the echo's own type */
	__u8 _pad;
	__u16 id;
	__u16 seq;
	__u8 peer[16]; /* its source */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct nw_icmp_echo_key);
	__type(value, struct nw_icmp_event);
} nw_icmp_rxpend SEC(".maps");

/* A sent message between LOCAL_OUT and the driver, by skb. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct nw_icmp_event);
} nw_icmp_txpend SEC(".maps");

/* Link and IP stamps of received ICMP packets, per CPU, by skb (the newest
 * ICMP_RXC; one pushed out has no link/IP stamp: missing, never wrong). */
#define ICMP_RXC 16
struct icmp_rxc {
	__u64 skb;
	__u64 link;
	__u64 ip;
};
struct icmp_rxcs {
	__u32 next;
	__u32 _pad;
	struct icmp_rxc e[ICMP_RXC];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct icmp_rxcs);
} nw_icmp_rxcur SEC(".maps");

/* Scratch record (too large for the stack with the rest). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nw_icmp_event);
} nw_icmp_scratch SEC(".maps");

/* The per-CPU record being built: a copy of the waiting record w, or
 * (w null) a zeroed one of namespace netns. */
static __always_inline struct nw_icmp_event *icmp_scratch(const struct nw_icmp_event *w, __u32 netns)
{
	__u32 zero = 0;
	struct nw_icmp_event *e = bpf_map_lookup_elem(&nw_icmp_scratch, &zero);
	if (!e)
		return 0;
	if (w) {
		__builtin_memcpy(e, w, sizeof(*e));
	} else {
		__builtin_memset(e, 0, sizeof(*e));
		e->hdr.netns = netns;
	}
	return e;
}

static __always_inline struct icmp_rxcs *rxc_ring(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nw_icmp_rxcur, &zero);
}

static __always_inline struct icmp_rxc *rxc_find(struct icmp_rxcs *rc, __u64 skb)
{
	__u32 n = rc->next;
	for (int i = 1; i <= ICMP_RXC; i++) {
		struct icmp_rxc *e = &rc->e[(n - i) & (ICMP_RXC - 1)];
		if (e->skb == skb)
			return e;
	}
	return 0;
}

static __always_inline struct icmp_rxc *rxc_push(struct icmp_rxcs *rc, __u64 skb)
{
	struct icmp_rxc *e = &rc->e[rc->next & (ICMP_RXC - 1)];
	rc->next++;
	e->skb = skb;
	e->link = 0;
	e->ip = 0;
	return e;
}

/* The family of an IP packet whose header starts at ip when it carries
 * ICMP (IPv4) or ICMPv6 (IPv6, no extension header first); else 0. One
 * read: the cheap test every hook starts with. */
static __always_inline __u16 icmp_family_at(const unsigned char *ip)
{
	__u8 b[10];
	if (bpf_probe_read_kernel(b, sizeof(b), ip))
		return 0;
	if (b[0] >> 4 == 4)
		return b[9] == IPPROTO_ICMP ? AF_INET : 0;
	if (b[0] >> 4 == 6)
		return b[6] == NW_IPPROTO_ICMPV6 ? AF_INET6 : 0;
	return 0;
}

/* The same for an skb with its network header set. */
static __always_inline __u16 icmp_family(const struct sk_buff *skb, bool direct)
{
	const unsigned char *head = NW_RD(direct, skb, head);
	__u16 nh = NW_RD(direct, skb, network_header);
	if (!head || nh == NW_NO_HEADER)
		return 0;
	return icmp_family_at(head + nh);
}

static __always_inline bool icmp_is_echo(__u16 family, __u8 type)
{
	return family == AF_INET ? (type == 0 || type == 8) : (type == 128 || type == 129);
}

static __always_inline bool icmp_is_request(__u16 family, __u8 type)
{
	return family == AF_INET ? type == 8 : type == 128;
}

static __always_inline bool icmp_is_error(__u16 family, __u8 type)
{
	if (family == AF_INET) /* unreachable, source quench, redirect, time exceeded, parameter problem */
		return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
	return type >= 1 && type <= 4; /* unreachable, too big, time exceeded, parameter problem */
}

/* The quoted packet of an error message, at p (after the 8-byte ICMP
 * header): protocol, addresses, ports (ICMP echo: id/seq). */
static __always_inline void icmp_inner(struct nw_icmp_event *e, const unsigned char *p)
{
	__u8 b[40];
	if (bpf_probe_read_kernel(b, sizeof(b), p))
		return;
	const unsigned char *l4;
	__u8 proto;
	if (b[0] >> 4 == 4) {
		proto = b[9];
		__builtin_memcpy(e->inner_saddr, &b[12], 4);
		__builtin_memcpy(e->inner_daddr, &b[16], 4);
		l4 = p + (b[0] & 0x0f) * 4;
	} else if (b[0] >> 4 == 6) {
		proto = b[6];
		__builtin_memcpy(e->inner_saddr, &b[8], 16);
		__builtin_memcpy(e->inner_daddr, &b[24], 16);
		l4 = p + 40;
	} else {
		return;
	}
	e->inner_proto = proto;
	__u8 h[8];
	if (bpf_probe_read_kernel(h, sizeof(h), l4))
		return;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		e->inner_sport = (h[0] << 8) | h[1];
		e->inner_dport = (h[2] << 8) | h[3];
	} else if (proto == IPPROTO_ICMP || proto == NW_IPPROTO_ICMPV6) {
		e->inner_sport = (h[4] << 8) | h[5]; /* id */
		e->inner_dport = (h[6] << 8) | h[7]; /* seq */
	}
}

/* Fill e from the ICMP packet at head + nh (family already known):
 * addresses, length, type, code, echo id/seq, the quoted flow. 0, or -1
 * when it cannot be read (or is a later IPv4 fragment). */
static __always_inline int icmp_parse(struct nw_icmp_event *e, const unsigned char *head, __u16 nh, __u16 family)
{
	const unsigned char *ip = head + nh;
	const unsigned char *icmp;
	__u8 b[40];
	if (bpf_probe_read_kernel(b, sizeof(b), ip))
		return -1;
	e->family = family;
	if (family == AF_INET) {
		if (((b[6] & 0x1f) | b[7]) != 0)
			return -1; /* a later fragment: no ICMP header */
		__u32 ihl = (b[0] & 0x0f) * 4;
		__u32 tot = (b[2] << 8) | b[3];
		e->len = tot > ihl ? tot - ihl : 0;
		__builtin_memcpy(e->saddr, &b[12], 4);
		__builtin_memcpy(e->daddr, &b[16], 4);
		icmp = ip + ihl;
	} else {
		e->len = (b[4] << 8) | b[5];
		__builtin_memcpy(e->saddr, &b[8], 16);
		__builtin_memcpy(e->daddr, &b[24], 16);
		icmp = ip + 40;
	}
	__u8 h[8];
	if (bpf_probe_read_kernel(h, sizeof(h), icmp))
		return -1;
	e->icmp_type = h[0];
	e->icmp_code = h[1];
	if (icmp_is_echo(family, h[0])) {
		e->id = (h[4] << 8) | h[5];
		e->seq = (h[6] << 8) | h[7];
	} else if (icmp_is_error(family, h[0])) {
		icmp_inner(e, icmp + 8);
	}
	return 0;
}

/* -S/-D on local/remote; -s/-d on the quoted flow's local/remote ports. */
static __always_inline bool icmp_wanted(const struct nw_icmp_event *e)
{
	const __u8 *local = e->rx ? e->daddr : e->saddr;
	const __u8 *remote = e->rx ? e->saddr : e->daddr;
	if (!nw_addrs_wanted(e->family, local, remote))
		return false;
	if (!cfg_sport && !cfg_dport)
		return true;
	if (e->inner_proto != IPPROTO_TCP && e->inner_proto != IPPROTO_UDP)
		return true; /* no ports */
	/* received: the quoted packet was ours (its source is local); sent:
	 * it was the peer's */
	return e->rx ? nw_ports_wanted(e->inner_sport, e->inner_dport) : nw_ports_wanted(e->inner_dport, e->inner_sport);
}

static __always_inline void icmp_emit(const struct nw_icmp_event *src)
{
	struct nw_icmp_event *e = nw_reserve(&nw_pkt_events, sizeof(*e), NW_EV_ICMP);
	if (!e)
		return;
	__builtin_memcpy(e, src, sizeof(*e));
	e->hdr.type = NW_EV_ICMP;
	e->hdr.ts = bpf_ktime_get_ns();
	nw_submit(&nw_pkt_events, e, sizeof(*e));
}

static __always_inline void echo_key(struct nw_icmp_echo_key *k, const struct nw_icmp_event *e, __u8 type,
				     const __u8 *peer)
{
	k->netns = e->hdr.netns;
	k->family = e->family;
	k->type = type;
	k->_pad = 0;
	k->id = e->id;
	k->seq = e->seq;
	__builtin_memcpy(k->peer, peer, 16);
}

/* Finish the waiting echo k with end stamp now (of kind end; owner and
 * socket of the copier when sk): the first finisher (the one whose delete
 * succeeds) records it. */
static __always_inline void echo_finish(const struct nw_icmp_echo_key *k, __u64 now, __u8 end, __u64 sk)
{
	struct nw_icmp_event *w = bpf_map_lookup_elem(&nw_icmp_rxpend, k);
	if (!w)
		return;
	struct nw_icmp_event *e = icmp_scratch(w, 0);
	if (!e)
		return;
	if (bpf_map_delete_elem(&nw_icmp_rxpend, k))
		return; /* another CPU (or the sweep) finished it */
	e->t[3] = now;
	e->end = end;
	e->hdr.sk = sk;
	if (sk)
		nw_owner_current(&e->owner, NW_OWNER_IO);
	icmp_emit(e);
}

/* ---- receive ---- */

/* t0 link: ICMP packets only (one read of the header at skb->data, which
 * is the network header here). */
NW_TP_TWINS(netif_receive_skb, nw_icmp_rx_link, nw_icmp_rx_link_raw, struct sk_buff *skb)
{
	__be16 proto = NW_RD(direct, skb, protocol);
	if (proto != bpf_htons(NW_ETH_P_IP) && proto != bpf_htons(NW_ETH_P_IPV6))
		return 0;
	if (!icmp_family_at(NW_RD(direct, skb, data)))
		return 0;
	struct icmp_rxcs *rc = rxc_ring();
	if (!rc)
		return 0;
	struct icmp_rxc *e = rxc_push(rc, (__u64)skb);
	e->link = bpf_ktime_get_ns();
	return 0;
}

/* t1 IP entry (PRE_ROUTING, every namespace). */
SEC("netfilter")
int nw_icmp_rx_ip(struct bpf_nf_ctx *ctx)
{
	struct sk_buff *skb = ctx->skb;
	if (!icmp_family(skb, true))
		return 1;
	struct icmp_rxcs *rc = rxc_ring();
	if (!rc)
		return 1;
	struct icmp_rxc *e = rxc_find(rc, (__u64)skb);
	if (!e)
		e = rxc_push(rc, (__u64)skb);
	e->ip = bpf_ktime_get_ns();
	return 1; /* NF_ACCEPT */
}

/* t2 ICMP entry (LOCAL_IN, every namespace): the record. An echo waits
 * for its end; any other type is recorded now. */
SEC("netfilter")
int nw_icmp_rx_icmp(struct bpf_nf_ctx *ctx)
{
	struct sk_buff *skb = ctx->skb;
	__u16 family = icmp_family(skb, true);
	if (!family)
		return 1;
	__u64 now = bpf_ktime_get_ns();
	struct nw_icmp_event *e = icmp_scratch(0, ctx->state->net->ns.inum);
	if (!e)
		return 1;
	e->rx = 1;
	if (icmp_parse(e, skb->head, skb->network_header, family) || !icmp_wanted(e))
		return 1;
	struct icmp_rxcs *rc = rxc_ring();
	struct icmp_rxc *c = rc ? rxc_find(rc, (__u64)skb) : 0;
	if (c) {
		e->t[0] = c->link;
		e->t[1] = c->ip;
		c->skb = 0;
	}
	e->t[2] = now;
	if (icmp_is_echo(family, e->icmp_type)) {
		struct nw_icmp_echo_key k;
		echo_key(&k, e, e->icmp_type, e->saddr);
		if (!bpf_map_update_elem(&nw_icmp_rxpend, &k, e, BPF_NOEXIST))
			return 1;
		/* table full, or the same echo still waiting (a duplicate):
		 * recorded now, without its end */
		nw_count(NW_STAT_ICMP_RX_PEND_FULL);
	}
	icmp_emit(e);
	return 1;
}

/* t3 copy to the application: an echo read from a raw or ping socket
 * (process context; TCP and UDP copies leave after two loads). */
NW_TP_TWINS(skb_copy_datagram_iovec, nw_icmp_rx_copy, nw_icmp_rx_copy_raw, const struct sk_buff *skb, int len)
{
	struct sock *sk = NW_RD(direct, skb, sk);
	if (!sk)
		return 0;
	__u16 proto = NW_RD(direct, sk, sk_protocol);
	if (proto != IPPROTO_ICMP && proto != NW_IPPROTO_ICMPV6)
		return 0;
	const unsigned char *head = NW_RD(direct, skb, head);
	__u16 nh = NW_RD(direct, skb, network_header);
	if (!head || nh == NW_NO_HEADER)
		return 0;
	__u16 family = icmp_family_at(head + nh);
	if (!family)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	struct nw_icmp_event *e = icmp_scratch(0, nw_sk_netns(sk, direct));
	if (!e)
		return 0;
	if (icmp_parse(e, head, nh, family) || !icmp_is_echo(family, e->icmp_type))
		return 0;
	struct nw_icmp_echo_key k;
	echo_key(&k, e, e->icmp_type, e->saddr);
	echo_finish(&k, now, ICMP_END_COPY, direct ? nw_ptr_num(sk) : (__u64)sk);
	return 0;
}

/* ---- send ---- */

/* The record made at LOCAL_OUT: an application's socket (one with a file)
 * owns it; the kernel's own sockets (echo replies, errors, neighbour
 * discovery) do not. */
static __always_inline void tx_owner(struct nw_icmp_event *e, const struct sk_buff *skb)
{
	struct sock *sk = skb->sk;
	if (!sk)
		return;
	struct socket *so = BPF_CORE_READ(sk, sk_socket);
	if (!so || !BPF_CORE_READ(so, file))
		return;
	e->hdr.sk = nw_ptr_num(sk);
	nw_owner_current_if(&e->owner, NW_OWNER_IO, cfg_nf_pid, cfg_nf_comm);
}

/* t1 IP entry (LOCAL_OUT, every namespace): the record, waiting for the
 * driver. An echo reply the kernel made ends its request's wait. */
SEC("netfilter")
int nw_icmp_tx_ip(struct bpf_nf_ctx *ctx)
{
	struct sk_buff *skb = ctx->skb;
	__u16 family = icmp_family(skb, true);
	if (!family)
		return 1;
	__u64 now = bpf_ktime_get_ns();
	struct nw_icmp_event *e = icmp_scratch(0, ctx->state->net->ns.inum);
	if (!e)
		return 1;
	if (icmp_parse(e, skb->head, skb->network_header, family))
		return 1;
	tx_owner(e, skb);
	if (!e->hdr.sk && icmp_is_echo(family, e->icmp_type) && !icmp_is_request(family, e->icmp_type)) {
		/* the kernel's answer: its request ends here (same stamp) */
		struct nw_icmp_echo_key k;
		echo_key(&k, e, family == AF_INET ? 8 : 128, e->daddr);
		echo_finish(&k, now, ICMP_END_KERNEL, 0);
		e = icmp_scratch(0, ctx->state->net->ns.inum); /* echo_finish used it */
		if (!e)
			return 1;
		if (icmp_parse(e, skb->head, skb->network_header, family))
			return 1;
	}
	if (!icmp_wanted(e))
		return 1;
	e->t[1] = now;
	__u64 key = (__u64)skb;
	struct nw_icmp_event *old = bpf_map_lookup_elem(&nw_icmp_txpend, &key);
	if (old) {
		/* an skb of this address never reached a driver: record it
		 * as it is (stamps missing) before reusing its slot */
		icmp_emit(old);
	}
	if (bpf_map_update_elem(&nw_icmp_txpend, &key, e, BPF_ANY)) {
		nw_count(NW_STAT_ICMP_TX_PEND_FULL);
		icmp_emit(e);
	}
	return 1;
}

/* The waiting sent record of skb (ICMP only), or 0. */
static __always_inline struct nw_icmp_event *tx_find(const struct sk_buff *skb, bool direct, __u64 *key)
{
	if (!icmp_family(skb, direct))
		return 0;
	*key = (__u64)skb;
	return bpf_map_lookup_elem(&nw_icmp_txpend, key);
}

/* t2 device queue. */
NW_TP_TWINS(net_dev_queue, nw_icmp_tx_queue, nw_icmp_tx_queue_raw, struct sk_buff *skb)
{
	__u64 key;
	struct nw_icmp_event *e = tx_find(skb, direct, &key);
	if (e && !e->t[2])
		e->t[2] = bpf_ktime_get_ns();
	return 0;
}

/* t3 driver transmit: recorded. */
NW_TP_TWINS(net_dev_start_xmit, nw_icmp_tx_xmit, nw_icmp_tx_xmit_raw, const struct sk_buff *skb,
	    const struct net_device *dev)
{
	__u64 key;
	struct nw_icmp_event *w = tx_find(skb, direct, &key);
	if (!w)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	struct nw_icmp_event *e = icmp_scratch(w, 0);
	if (!e)
		return 0;
	if (bpf_map_delete_elem(&nw_icmp_txpend, &key))
		return 0;
	e->t[3] = now;
	icmp_emit(e);
	return 0;
}

/* for bpf2go -type (Go decodes the record through the generated type) */
const struct nw_icmp_event *nw_unused_icmp_event __attribute__((unused));
const struct nw_icmp_echo_key *nw_unused_icmp_echo_key __attribute__((unused));
