//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * --rst: TCP resets sent and received, with the state the connection was
 * in and, for a reset sent, the kernel's reason.
 *
 *  - tcp/tcp_send_reset (sk, skb[, reason]): every RST the kernel sends.
 *    Two callers: a reply to a received segment (tcp_v4/v6_send_reset: skb
 *    is that segment; sk is NULL when no socket wanted it, or a TIME_WAIT or
 *    request socket), and an active reset of a full socket
 *    (tcp_send_active_reset: skb is NULL). 6.10+ adds the reason (enum
 *    sk_rst_reason, named in user space from the kernel's BTF); the loader
 *    says whether it is there (cfg_rst_reason). As the tracepoint itself
 *    does: the tuple is the full socket's, else the received segment's
 *    reversed (the RST goes back to its sender).
 *  - tcp/tcp_receive_reset (sk): tcp_reset(), an acceptable RST received by a
 *    full socket, before the socket is closed (its state is the one the RST
 *    found).
 *  - sock/inet_sock_set_state, transitions to CLOSE only: an active reset
 *    (close() with unread data, SO_LINGER 0, disconnect, abort) is sent
 *    right after the kernel moved the socket to CLOSE; the state it left is
 *    kept in nw_rst_left (a small array by socket hash) so the record says
 *    the state the connection was in (ESTABLISHED, ...), flagged
 *    NW_RST_ABORTED. A miss (the slot taken by another socket meanwhile)
 *    leaves the state CLOSE.
 *
 * Attribution: est_lo names the connection when the connection tracker
 * still has it (every received reset; a reset sent before the close). After
 * the close the tracker's entry is gone: user space names the socket's
 * connection that just closed. -s/-d apply to the local and remote port.
 * Totals (after the filter, whatever the ring says) are counted in
 * nw_rst_count: sent, received.
 */
#include "nw.h"

char LICENSE[] SEC("license") = "GPL";

/* flags */
#define NW_RST_RX 1         /* received (else sent) */
#define NW_RST_REASON 2     /* reason is the kernel's (6.10+) */
#define NW_RST_ABORTED 4    /* state: the one the socket left for CLOSE right before */
#define NW_RST_NO_SOCKET 8  /* sent for a segment no socket wanted (sk NULL) */

/* NW_EV_RST */
struct nw_rst_event {
	struct nw_hdr hdr; /* sk: the socket, 0 for none */
	__u32 est_lo;      /* low 32 bits of the tracker's est_ns (0: unknown) */
	__u32 reason;      /* enum sk_rst_reason (with NW_RST_REASON) */
	__u8 flags;        /* NW_RST_* */
	__u8 state;        /* TCP_* the connection was in (0: no socket) */
	__u16 family;
	__u16 sport;       /* local port, host order */
	__u16 dport;       /* remote port, host order */
	__u8 saddr[16];    /* local address */
	__u8 daddr[16];    /* remote address */
	struct nw_owner owner;
};

/* Set by the loader: tcp_send_reset has the reason argument (6.10+). */
volatile const __u8 cfg_rst_reason = 0;

/* Totals: [0] sent, [1] received. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} nw_rst_count SEC(".maps");

/* The state a socket left for CLOSE, by socket hash (see top). */
struct nw_rst_slot {
	__u64 sk;
	__u8 old;
	__u8 _pad[7];
};
#define NW_RST_SLOTS 4096
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NW_RST_SLOTS);
	__type(key, __u32);
	__type(value, struct nw_rst_slot);
} nw_rst_left SEC(".maps");

static __always_inline __u32 slot_of(__u64 sk)
{
	return (__u32)(((sk >> 6) * 0x9E3779B97F4A7C15ULL) >> 32) & (NW_RST_SLOTS - 1);
}

/* The tuple of a received segment, reversed: local = its destination. */
static __always_inline int skb_tuple(const struct sk_buff *skb, struct nw_rst_event *e)
{
	struct nw_skb_ip ip;
	if (nw_skb_ip(skb, &ip, e->daddr, e->saddr, false))
		return -1;
	e->family = ip.family;
	__u16 toff = ip.toff;
	if (ip.th != NW_NO_HEADER && ip.th >= toff)
		toff = ip.th; /* after IPv6 extension headers */
	__be16 ports[2];
	if (bpf_probe_read_kernel(ports, sizeof(ports), ip.head + toff))
		return -1;
	e->dport = bpf_ntohs(ports[0]);
	e->sport = bpf_ntohs(ports[1]);
	e->hdr.netns = nw_skb_netns(skb);
	return 0;
}

/* A full socket (not TIME_WAIT, not a request socket): sk_fullsock(). */
static __always_inline bool full_sock(__u8 state)
{
	return state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV;
}

static __always_inline int on_reset(const struct sock *sk, const struct sk_buff *skb,
				    __u32 reason, __u8 flags, bool direct)
{
	struct nw_rst_event r = {};
	__u64 key = 0;
	__u8 state = 0;
	if (sk) {
		key = direct ? nw_ptr_num(sk) : (__u64)sk;
		state = NW_RD(direct, sk, __sk_common.skc_state);
		__u16 family = NW_RD(direct, sk, __sk_common.skc_family);
		if (family != AF_INET && family != AF_INET6)
			return 0;
	}
	if (sk && (full_sock(state) || !skb)) {
		struct nw_conn t = {};
		nw_fill_tuple(&t, sk, direct);
		r.family = t.family;
		r.hdr.netns = t.netns;
		/* inet_sport: the port the RST goes out from (the kernel lets
		 * skc_num go at CLOSE, before an active reset is sent) */
		if (full_sock(state)) {
			/* beyond struct sock: a probe read in both programs */
			const struct inet_sock *inet = (const void *)sk;
			r.sport = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
		}
		if (!r.sport)
			r.sport = t.sport;
		r.dport = t.dport;
		__builtin_memcpy(r.saddr, t.saddr, 16);
		__builtin_memcpy(r.daddr, t.daddr, 16);
	} else if (skb) {
		if (skb_tuple(skb, &r))
			return 0;
		if (sk)
			r.hdr.netns = nw_sk_netns(sk, direct);
	} else {
		return 0;
	}
	if (!nw_ports_wanted(r.sport, r.dport) || !nw_addrs_wanted(r.family, r.saddr, r.daddr))
		return 0;

	__u32 idx = (flags & NW_RST_RX) ? 1 : 0;
	__u64 *n = bpf_map_lookup_elem(&nw_rst_count, &idx);
	if (n)
		*n += 1;

	if (!sk)
		flags |= NW_RST_NO_SOCKET;
	if (key && state == TCP_CLOSE) {
		__u32 s = slot_of(key);
		struct nw_rst_slot *sl = bpf_map_lookup_elem(&nw_rst_left, &s);
		if (sl && sl->sk == key) {
			state = sl->old;
			flags |= NW_RST_ABORTED;
			sl->sk = 0;
		}
	}
	const struct nw_conn *c = key ? nw_conn_find(key) : 0;

	struct nw_rst_event *e = nw_reserve(&nw_events, sizeof(*e), NW_EV_RST);
	if (!e)
		return 0;
	r.hdr.type = NW_EV_RST;
	r.hdr.ts = bpf_ktime_get_ns();
	r.hdr.sk = key;
	r.reason = reason;
	r.flags = flags;
	r.state = state;
	if (c) {
		r.est_lo = (__u32)c->est_ns;
		r.owner = c->owner;
	}
	__builtin_memcpy(e, &r, sizeof(r));
	nw_submit(&nw_events, e, sizeof(*e));
	return 0;
}

/* The reason (6.10+) is read only when the loader saw it in the
 * tracepoint's BTF prototype: dead code for the verifier otherwise. */
NW_TP_TWINS(tcp_send_reset, nw_rst_tx_btf, nw_rst_tx_raw, const struct sock *sk, const struct sk_buff *skb)
{
	__u32 reason = 0;
	__u8 flags = 0;
	if (cfg_rst_reason) {
		reason = (__u32)ctx[2];
		flags = NW_RST_REASON;
	}
	return on_reset(sk, skb, reason, flags, direct);
}

NW_TP_TWINS(tcp_receive_reset, nw_rst_rx_btf, nw_rst_rx_raw, const struct sock *sk)
{
	if (!sk)
		return 0;
	return on_reset(sk, 0, 0, NW_RST_RX, direct);
}

/* Transitions to CLOSE: the state left, for an active reset sent next. */
NW_TP_TWINS(inet_sock_set_state, nw_rst_close_btf, nw_rst_close_raw, const struct sock *sk, int old, int new)
{
	if (new != TCP_CLOSE || old == TCP_LISTEN || old == TCP_CLOSE)
		return 0;
	__u64 key = direct ? nw_ptr_num(sk) : (__u64)sk;
	__u32 s = slot_of(key);
	struct nw_rst_slot *sl = bpf_map_lookup_elem(&nw_rst_left, &s);
	if (sl) {
		sl->sk = key;
		sl->old = old;
	}
	return 0;
}

/* for bpf2go -type (Go decodes the record through the generated type) */
const struct nw_rst_event *nw_unused_rst_event __attribute__((unused));
