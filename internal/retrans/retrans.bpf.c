//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * -r: retransmissions of tracked connections.
 *
 *  - tcp/tcp_retransmit_skb: one call per retransmitted skb. Counts the
 *    segments it carries (tcp_skb_pcount: TCP_SKB_CB(skb)->tcp_gso_segs,
 *    what the kernel adds to TcpRetransSegs) in nw_conns[sk].retrans_segs and emits NW_EV_RETRANS with the
 *    skb's first sequence number and the socket's current icsk_ca_state.
 *    Since 6.14 the tracepoint also fires for attempts that gave up before
 *    anything was counted or sent (err -EBUSY: the previous copy is still
 *    queued in the host; -EAGAIN: no window; -ENOMEM: trim/fragment
 *    failed; -EHOSTUNREACH: no route, rebuild_header failed, e.g. the
 *    local address or the route is gone; -EINVAL: the skb is already
 *    acked), which the kernel counts neither in TcpRetransSegs nor in the
 *    socket's total_retrans: those are skipped. Measured on 6.18 with the
 *    route gone for 2 s: 4 such attempts, TcpRetransSegs +1; before they
 *    were skipped, -r reported 5. Any other err comes from the transmit
 *    itself, after the kernel counted the segments (and TCPRetransFail):
 *    kept. (The transmit's own route lookup can fail with -EHOSTUNREACH
 *    too, counted, if the route vanishes between the two lookups: a race
 *    of microseconds, which this miscounts by the segments of one skb.) Older kernels fire only after a successful transmit and have no
 *    err: a transmit failure there is counted by the kernel but not seen.
 *  - tcp/tcp_cong_state_set: fires before icsk_ca_state changes. An entry
 *    into TCP_CA_Recovery (from another state) is a fast-retransmit episode,
 *    an entry into TCP_CA_Loss an RTO episode; both are counted in nw_conns
 *    and emitted as NW_EV_CONG (old -> new). Repeated RTOs while already in
 *    Loss are not new episodes.
 *
 *  - Kernels without tcp_cong_state_set (Debian 11's 5.10, for one;
 *    cfg_cong_from_rtx set by the loader): episodes are taken from the
 *    retransmissions themselves. A retransmit in Recovery or Loss whose
 *    (state, tp->high_seq) differs from the last one seen on the socket
 *    starts an episode (high_seq is snd_nxt at entry into the state, so
 *    repeated RTOs of one blackout are one episode, as with the
 *    tracepoint). Every episode retransmits at once, so none is missed;
 *    the old state of such a CONG record is the previous episode's state
 *    when the same high_seq was seen (Recovery -> Loss), else Open.
 *
 * Sockets that are not in nw_conns (untracked, or filtered by -s/-d when
 * they were established) are ignored.
 *
 * What this hook does not see of a tracked connection, the kernel still
 * counts in its total_retrans: internal/conn compares the two at close
 * (retrans_unseen, conn.bpf.c "What -r did not see"). Tests of that make
 * this hook miss retransmissions on purpose: cfg_rtx_skip (below).
 *
 * A connection that is not established yet (its entry's est_ns is 0: a
 * SYN retransmitted by the RTO timer while the path is black, for one) has
 * an entry without a tuple: conn.bpf.c claims it at connect(), before the
 * local port is bound, and fills family, ports, addresses and netns only at
 * ESTABLISHED. Such a record takes them from the socket itself (the port is
 * bound once the first SYN went out) and is marked pre_est; the -s/-d
 * filter, applied to the entry only at ESTABLISHED, is applied here. Every
 * record carries the entry's owner: user space cannot know the owner of a
 * connection it has not seen open.
 */
#include "nw.h"

char LICENSE[] SEC("license") = "GPL";

/* NW_EV_RETRANS and NW_EV_CONG. */
struct nw_retrans_event {
	struct nw_hdr hdr;
	__u32 seq;       /* RETRANS: first sequence number of the skb */
	__u16 segs;      /* RETRANS: segments in the skb (tcp_skb_pcount) */
	__u8 ca_state;   /* RETRANS: current state; CONG: new state */
	__u8 old_state;  /* CONG: previous state */
	__u16 family;
	__u16 sport;     /* local port, host order */
	__u16 dport;     /* remote port, host order */
	__u8 pre_est;    /* 1: entry est_ns 0 and socket in SYN_SENT/SYN_RECV: a handshake retransmission */
	__u8 _pad;
	__u8 saddr[16];
	__u8 daddr[16];
	struct nw_owner owner; /* the entry's owner (pid, provenance, comm) */
};

static __always_inline __u8 ca_state_of(const struct sock *sk)
{
	const struct inet_connection_sock *icsk = (const void *)sk;
	return BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
}

/* Where a record's tuple comes from: the entry c, or, before ESTABLISHED
 * (c->est_ns 0, no tuple in the entry yet), the socket, read into *tmp.
 * 0 when the socket is filtered out by -s/-d. Pre-existing connections
 * adopted at start-up have est_ns 0 too, but a tuple and an established
 * socket: the tuple read from the socket is the same, and pre_est stays 0. */
static __always_inline const struct nw_conn *tuple_of(const struct nw_conn *c, const struct sock *sk,
						      struct nw_conn *tmp, __u8 *pre_est)
{
	*pre_est = 0;
	if (c->est_ns)
		return c;
	__builtin_memset(tmp, 0, sizeof(*tmp)); /* an IPv4 tuple fills 4 of 16 address bytes */
	nw_fill_tuple(tmp, sk, false);
	if (!nw_conn_wanted(tmp))
		return 0;
	__u8 st = BPF_CORE_READ(sk, __sk_common.skc_state);
	*pre_est = st == TCP_SYN_SENT || st == TCP_SYN_RECV;
	return tmp;
}

/* The entry of sk (*c) and the tuple for its records (tuple_of); 0 when
 * sk is not tracked or filtered out. */
static __always_inline const struct nw_conn *entry_of(const struct sock *sk, struct nw_conn **c,
						      struct nw_conn *tmp, __u8 *pre_est)
{
	*c = nw_conn_find(nw_num((__u64)sk));
	if (!*c)
		return 0;
	return tuple_of(*c, sk, tmp, pre_est);
}

static __always_inline void emit(__u8 type, __u64 key, const struct nw_conn *c, const struct nw_conn *t,
				 __u8 pre_est, __u32 seq, __u16 segs, __u8 state, __u8 old)
{
	struct nw_retrans_event *e = nw_reserve(&nw_events, sizeof(*e), type);
	if (!e)
		return;
	e->hdr.type = type;
	e->hdr._pad[0] = e->hdr._pad[1] = e->hdr._pad[2] = 0;
	e->hdr.netns = t->netns;
	e->hdr.ts = bpf_ktime_get_ns();
	e->hdr.sk = key;
	e->seq = seq;
	e->segs = segs;
	e->ca_state = state;
	e->old_state = old;
	e->family = t->family;
	e->sport = t->sport;
	e->dport = t->dport;
	e->pre_est = pre_est;
	e->_pad = 0;
	__builtin_memcpy(e->saddr, t->saddr, 16);
	__builtin_memcpy(e->daddr, t->daddr, 16);
	__builtin_memcpy(&e->owner, &c->owner, sizeof(e->owner));
	nw_submit(&nw_events, e, sizeof(*e));
}

/* Set by the loader: the tracepoint has the err argument (6.14+). */
volatile const __u8 cfg_rtx_err = 0;
/* Set by the loader: no tcp_cong_state_set tracepoint, take episodes from
 * retransmissions (see the top of this file). */
volatile const __u8 cfg_cong_from_rtx = 0;

/* Set by the loader from $NW_RTX_SKIP (tests only; 0 otherwise): ignore
 * one in cfg_rtx_skip retransmissions of tracked connections, as if no
 * program had run (no count, no record), and add their segments to
 * nw_rtx_skip[1] ([0]: the calls that chose). */
volatile const __u32 cfg_rtx_skip = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} nw_rtx_skip SEC(".maps");

/* cfg_rtx_skip: true when this retransmission is to be missed. */
static __always_inline bool skip_for_test(__u16 segs)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&nw_rtx_skip, &k);
	if (!n || ++*n % cfg_rtx_skip != 0)
		return false;
	k = 1;
	__u64 *s = bpf_map_lookup_elem(&nw_rtx_skip, &k);
	if (s)
		__sync_fetch_and_add(s, segs); /* no fetch: every kernel */
	return true;
}

struct rtx_episode {
	__u32 high_seq;
	__u8 state;
	__u8 _pad[3];
};

/* Last episode seen per socket (cfg_cong_from_rtx only; 1 entry otherwise). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct rtx_episode);
} nw_rtx_episode SEC(".maps");

#define NW_EAGAIN 11
#define NW_ENOMEM 12
#define NW_EBUSY 16
#define NW_EINVAL 22
#define NW_EHOSTUNREACH 113

static __always_inline int on_retransmit(const struct sock *sk, const struct sk_buff *skb, int err)
{
	/* not retransmitted, not counted by the kernel (see the top) */
	if (err == -NW_EBUSY || err == -NW_EAGAIN || err == -NW_ENOMEM || err == -NW_EHOSTUNREACH || err == -NW_EINVAL)
		return 0;
	__u64 key = (__u64)sk;
	struct nw_conn *c, tmp;
	__u8 pre_est;
	const struct nw_conn *t = entry_of(sk, &c, &tmp, &pre_est);
	if (!t)
		return 0;

	/* TCP_SKB_CB(skb): the control block lives in skb->cb. The segments
	 * the kernel adds to TcpRetransSegs are tcp_skb_pcount(skb), i.e.
	 * TCP_SKB_CB(skb)->tcp_gso_segs (not skb_shinfo(skb)->gso_segs, which
	 * only a successful transmit of the original skb brings up to date). */
	const struct tcp_skb_cb *cb = (const void *)&skb->cb;
	__u32 seq = BPF_CORE_READ(cb, seq);
	__u16 segs = BPF_CORE_READ(cb, tcp_gso_segs);
	if (segs == 0)
		segs = 1;
	if (cfg_rtx_skip && skip_for_test(segs))
		return 0;
	__sync_fetch_and_add(&c->retrans_segs, segs);
	__u8 st = ca_state_of(sk);
	if (cfg_cong_from_rtx && (st == TCP_CA_Recovery || st == TCP_CA_Loss)) {
		const struct tcp_sock *tp = (const void *)sk;
		struct rtx_episode ep = {.high_seq = BPF_CORE_READ(tp, high_seq), .state = st};
		struct rtx_episode *prev = bpf_map_lookup_elem(&nw_rtx_episode, &key);
		if (!prev || prev->state != st || prev->high_seq != ep.high_seq) {
			__u8 old = prev && prev->high_seq == ep.high_seq ? prev->state : 0;
			bpf_map_update_elem(&nw_rtx_episode, &key, &ep, BPF_ANY);
			if (st == TCP_CA_Recovery)
				__sync_fetch_and_add(&c->fast_retrans, 1);
			else
				__sync_fetch_and_add(&c->timeout_retrans, 1);
			emit(NW_EV_CONG, key, c, t, pre_est, 0, 0, st, old);
		}
	}
	emit(NW_EV_RETRANS, key, c, t, pre_est, seq, segs, st, 0);
	return 0;
}

static __always_inline int on_cong(const struct sock *sk, __u8 new)
{
	if (new != TCP_CA_Recovery && new != TCP_CA_Loss)
		return 0;
	__u8 old = ca_state_of(sk); /* the tracepoint runs before the change */
	if (old == new)
		return 0;
	__u64 key = (__u64)sk;
	struct nw_conn *c, tmp;
	__u8 pre_est;
	const struct nw_conn *t = entry_of(sk, &c, &tmp, &pre_est);
	if (!t)
		return 0;
	if (new == TCP_CA_Recovery)
		__sync_fetch_and_add(&c->fast_retrans, 1);
	else
		__sync_fetch_and_add(&c->timeout_retrans, 1);
	emit(NW_EV_CONG, key, c, t, pre_est, 0, 0, new, old);
	return 0;
}

/* --- candidates: see internal/retrans (kernel.Register) --- */

/* err is read only when the loader saw it in the tracepoint's BTF
 * prototype: otherwise the branch is dead code for the verifier. */
NW_TP_TWINS(tcp_retransmit_skb, nw_rtx_btf, nw_rtx_raw, const struct sock *sk, const struct sk_buff *skb)
{
	int err = 0;
	if (cfg_rtx_err)
		err = (int)ctx[2];
	return on_retransmit(sk, skb, err);
}

NW_TP_TWINS(tcp_cong_state_set, nw_cong_btf, nw_cong_raw, const struct sock *sk, __u8 ca_state)
{
	return on_cong(sk, ca_state);
}

/* Make the record type visible in BTF for bpf2go -type. */
const struct nw_retrans_event *nw_unused_retrans_event __attribute__((unused));
