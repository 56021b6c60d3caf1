//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * -e: TCP segments the kernel rejects.
 *
 *  - skb/kfree_skb (skb, location, reason, rx_sk): every dropped skb. Kept
 *    when the reason is marked in nw_drop_keep (user space fills it from the
 *    kernel's BTF enum skb_drop_reason: the TCP reasons, minus duplicate
 *    discards; see drops.go), the headers say TCP, and the segment belongs
 *    to a tracked connection: rx_sk (or skb->sk) in nw_conns. A drop with
 *    no socket at all is reported with sk = 0; user space attributes it by
 *    its addresses.
 *  - tcp/tcp_bad_csum (skb): a segment that failed the TCP checksum. The
 *    kernel frees it right after with reason TCP_CSUM, which kfree_skb
 *    reports together with the socket; so this hook only reports while
 *    kfree_skb is not attached (nw_kfree_live == 0): one bad segment, one
 *    record.
 *
 * -s/-d apply here: for a received segment the local port is its
 * destination port.
 */
#include "nw.h"

char LICENSE[] SEC("license") = "GPL";

/* NW_EV_ERROR: addresses and ports are the segment's, as on the wire. */
struct nw_err_event {
	struct nw_hdr hdr; /* sk: the connection's socket, 0 if unknown */
	__u32 seq;
	__u32 ack;
	__u32 reason;      /* enum skb_drop_reason, kernel numbering */
	__u16 family;
	__u16 sport;       /* segment source port, host order */
	__u16 dport;       /* segment destination port, host order */
	__u8 rx;           /* 1: received by the connection's socket */
	__u8 _pad;
	__u8 saddr[16];    /* segment source */
	__u8 daddr[16];    /* segment destination */
};

/* Set by the loader from the running kernel's BTF. */
volatile const __u32 cfg_csum_reason = 0; /* SKB_DROP_REASON_TCP_CSUM */
volatile const __u8 cfg_kfree_rx_sk = 0;  /* kfree_skb has the rx_sk argument */

/* Set by user space once kfree_skb is attached. */
volatile __u32 nw_kfree_live = 0;

/* reason -> 1 if it is reported. Sized by the loader (SKB_DROP_REASON_MAX);
 * subsystem reasons (high bits set) are out of range and never kept. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} nw_drop_keep SEC(".maps");

/* Wire headers, read from skb->head (no CO-RE: the layout is the RFC's). */
struct nw_tcph {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
};

/* Parse the IP and TCP headers of skb into e. Returns 0 if it is TCP (or
 * may be: IPv6 with extension headers is trusted by transport_header). */
static __always_inline int parse_tcp(const struct sk_buff *skb, struct nw_err_event *e)
{
	struct nw_skb_ip ip;
	__builtin_memset(e->saddr, 0, 16);
	__builtin_memset(e->daddr, 0, 16);
	if (nw_skb_ip(skb, &ip, e->saddr, e->daddr, false))
		return -1;
	__u16 toff = ip.toff;
	if (ip.proto != IPPROTO_TCP) {
		if (ip.family == AF_INET6 && ip.th != NW_NO_HEADER && ip.th > toff)
			toff = ip.th; /* after extension headers */
		else
			return -1;
	}
	e->family = ip.family;
	struct nw_tcph t;
	if (bpf_probe_read_kernel(&t, sizeof(t), ip.head + toff))
		return -1;
	e->sport = bpf_ntohs(t.source);
	e->dport = bpf_ntohs(t.dest);
	e->seq = bpf_ntohl(t.seq);
	e->ack = bpf_ntohl(t.ack_seq);
	return 0;
}

/* kfree_skb without rx_sk (before 6.11): the socket of a received segment
 * TCP drops after its socket lookup (sequence checks, ...) is in neither
 * argument nor skb->sk (tcp_v4_rcv took it), and skb->dev is often NULL by
 * then. tcp/tcp_probe fires for every segment that reaches an established
 * socket's tcp_rcv_established(), just before those checks and on the same
 * CPU: it leaves (skb, sk) in a small per-CPU ring; a drop of that skb right
 * after names its socket. A ring, not one slot: between the two, TCP may
 * send a duplicate ACK, and from process context (the socket backlog) the
 * softirq that runs when the send re-enables BHs may process other segments
 * (on loopback: that ACK) first. A stale entry (the skb's memory reused) is
 * refused by the ports. */
#define RXSK_RING 16
struct rx_sk_ring {
	__u32 next;
	__u32 _pad;
	struct {
		__u64 skb;
		__u64 sk;
	} e[RXSK_RING];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rx_sk_ring);
} nw_drop_rxsk SEC(".maps");

static __always_inline int report(const struct sk_buff *skb, __u32 reason,
				  const struct sock *sk, bool guessed)
{
	struct nw_err_event r = {};
	if (parse_tcp(skb, &r))
		return 0;
	r.rx = 1;
	__u64 key = (__u64)sk;
	if (key && guessed) {
		struct nw_conn *c = nw_conn_find(nw_num(key));
		/* the slot's socket must be the segment's: received (remote ->
		 * local) or its own */
		if (!c || !((c->sport == r.dport && c->dport == r.sport) ||
			    (c->sport == r.sport && c->dport == r.dport)))
			key = 0;
	}
	if (key) {
		struct nw_conn *c = nw_conn_find(nw_num(key));
		if (!c)
			return 0; /* listener, TIME_WAIT, untracked or filtered */
		/* 0 while the connection is only in SYN_SENT */
		r.hdr.netns = c->netns ? c->netns : nw_skb_netns(skb);
		/* Our own segment (e.g. dropped on the way out)? */
		r.rx = !(c->sport == r.sport && c->dport == r.dport);
	} else {
		r.hdr.netns = nw_skb_netns(skb);
	}
	__u16 local = r.rx ? r.dport : r.sport;
	__u16 remote = r.rx ? r.sport : r.dport;
	if (!nw_ports_wanted(local, remote) ||
	    !nw_addrs_wanted(r.family, r.rx ? r.daddr : r.saddr, r.rx ? r.saddr : r.daddr))
		return 0;

	struct nw_err_event *e = nw_reserve(&nw_events, sizeof(*e), NW_EV_ERROR);
	if (!e)
		return 0;
	r.hdr.type = NW_EV_ERROR;
	r.hdr.ts = bpf_ktime_get_ns();
	r.hdr.sk = key;
	r.reason = reason;
	__builtin_memcpy(e, &r, sizeof(r));
	nw_submit(&nw_events, e, sizeof(*e));
	return 0;
}

static __always_inline int on_kfree(const struct sk_buff *skb, __u32 reason, const struct sock *rx_sk)
{
	__u8 *keep = bpf_map_lookup_elem(&nw_drop_keep, &reason);
	if (!keep || !*keep)
		return 0;
	if (!rx_sk)
		rx_sk = BPF_CORE_READ(skb, sk);
	bool guessed = false;
	if (!rx_sk && !cfg_kfree_rx_sk) {
		__u32 zero = 0;
		struct rx_sk_ring *rg = bpf_map_lookup_elem(&nw_drop_rxsk, &zero);
		if (rg) {
			__u64 k = nw_num((__u64)skb);
			__u32 n = rg->next;
			for (int i = 1; i <= RXSK_RING; i++) {
				__u32 j = (n - i) & (RXSK_RING - 1);
				if (rg->e[j].skb == k) {
					rx_sk = (const void *)rg->e[j].sk;
					rg->e[j].skb = 0;
					guessed = true;
					break;
				}
			}
		}
	}
	return report(skb, reason, rx_sk, guessed);
}

/* tcp_probe (sk, skb): see nw_drop_rxsk. */
static __always_inline void rxsk_note(__u64 sk, __u64 skb)
{
	__u32 zero = 0;
	struct rx_sk_ring *rg = bpf_map_lookup_elem(&nw_drop_rxsk, &zero);
	if (!rg)
		return;
	__u32 j = rg->next & (RXSK_RING - 1);
	rg->next++;
	rg->e[j].skb = skb;
	rg->e[j].sk = sk;
}

NW_TP_TWINS(tcp_probe, nw_drop_rxsk_btf, nw_drop_rxsk_raw, struct sock *sk, struct sk_buff *skb)
{
	rxsk_note((__u64)sk, (__u64)skb);
	return 0;
}

/* --- candidates: see internal/drops (kernel.Register) --- */

/* rx_sk (6.11+) is read only when the loader saw it in the tracepoint's
 * BTF prototype: the branch is dead code for the verifier otherwise. */
NW_TP_TWINS(kfree_skb, nw_kfree_btf, nw_kfree_raw, const struct sk_buff *skb, void *location, int reason)
{
	const struct sock *rx_sk = 0;
	if (cfg_kfree_rx_sk)
		rx_sk = (const void *)ctx[3];
	return on_kfree(skb, reason, rx_sk);
}

static __always_inline int on_bad_csum(const struct sk_buff *skb)
{
	if (nw_kfree_live)
		return 0; /* reported by kfree_skb, with the socket */
	return report(skb, cfg_csum_reason, BPF_CORE_READ(skb, sk), false);
}

NW_TP_TWINS(tcp_bad_csum, nw_csum_btf, nw_csum_raw, const struct sk_buff *skb)
{
	return on_bad_csum(skb);
}

/* Before the tcp_bad_csum tracepoint (5.14) and the drop reason (5.17):
 * __skb_checksum_complete() returns non-zero for a segment whose checksum
 * is wrong, and TCP drops every segment it gets that answer for
 * (skb_checksum_init at entry for short segments, tcp_checksum_complete
 * later). A kprobe keeps the skb, the kretprobe reports it when the sum is
 * bad and the segment is TCP (other protocols call it too). The skbs wait
 * in a per-CPU stack: calls nest only by interrupts, in LIFO order. The
 * kretprobe is attached first, so every call seen at entry is seen at
 * return. */
#define CSUM_DEPTH 8
struct csum_stack {
	__u32 depth;
	__u32 _pad;
	__u64 skb[CSUM_DEPTH];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct csum_stack);
} nw_csum_stack SEC(".maps");

SEC("kprobe/__skb_checksum_complete")
int BPF_KPROBE(nw_csum_entry_kp, struct sk_buff *skb)
{
	__u32 zero = 0;
	struct csum_stack *st = bpf_map_lookup_elem(&nw_csum_stack, &zero);
	if (!st)
		return 0;
	__u32 d = st->depth;
	if (d < CSUM_DEPTH)
		st->skb[d] = (__u64)skb;
	st->depth = d + 1;
	return 0;
}

SEC("kretprobe/__skb_checksum_complete")
int BPF_KRETPROBE(nw_csum_ret_kp, long ret)
{
	__u32 zero = 0;
	struct csum_stack *st = bpf_map_lookup_elem(&nw_csum_stack, &zero);
	if (!st || !st->depth)
		return 0; /* entered before the entry hook was attached */
	__u32 d = st->depth - 1;
	st->depth = d;
	if (!(__u16)ret || d >= CSUM_DEPTH)
		return 0; /* good sum (__sum16 0), or too deep to have been kept */
	return on_bad_csum((const struct sk_buff *)st->skb[d & (CSUM_DEPTH - 1)]);
}

/* Make the record type visible in BTF for bpf2go -type. */
const struct nw_err_event *nw_unused_err_event __attribute__((unused));
