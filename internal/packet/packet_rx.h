/* SPDX-License-Identifier: GPL-2.0 */
/*
 * packet_rx.h — received segments (included by packet.bpf.c; see its top
 * for what a record is and which boundaries are stamped).
 *
 * Path of a received segment with -t: the link hook stamps it in a per-CPU
 * ring by skb pointer (nw_pkt_rxcur), IP entry adds its stamp there, TCP
 * entry (cgroup_skb ingress) moves both into the socket's FIFO
 * (nw_pkt_rxq, sk storage) with its own; the copy to the application (or
 * the close) drains the FIFO into records (rx_drain). Without -t the record
 * is made at TCP entry.
 */
#ifndef PACKET_RX_H
#define PACKET_RX_H

#define RX_RING 512 /* received segments waiting for the copy, per socket (~17 KB) */
#define RX_SLOTS 4  /* -t -i: payload copies waiting, per socket */

/* rx: link/IP stamps by skb pointer, between netif_receive_skb and TCP entry.
 * That path is one softirq pass on one CPU (RPS included: the tracepoint fires
 * on the CPU that processes the packet), so a small per-CPU ring replaces a
 * shared hash: no hashing, no bucket lock, no allocation. It holds the last
 * RX_CUR packets the CPU started to process: GRO hands packets over in lists
 * (all of a list reach netif_receive_skb before the first reaches IP), up to
 * gro_normal_batch (8) by default. A packet pushed out of the ring has no
 * link/IP stamp: its layers are reported missing, never wrong. */
#define RX_CUR 32
struct rx_cur {
	__u64 skb;
	__u64 mac;
	__u64 ip;
};
struct rx_curs {
	__u32 next;
	__u32 _pad;
	struct rx_cur e[RX_CUR];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rx_curs);
} nw_pkt_rxcur SEC(".maps");

/* The ring slot of skb on this CPU, newest first; 0 when not there. */
static __always_inline struct rx_cur *rx_find(struct rx_curs *rc, __u64 skb)
{
	__u32 n = rc->next;
	for (int i = 1; i <= RX_CUR; i++) {
		struct rx_cur *e = &rc->e[(n - i) & (RX_CUR - 1)];
		if (e->skb == skb)
			return e;
	}
	return 0;
}

/* rx: per-socket FIFO of segments that reached TCP and wait for the copy.
 * Socket storage is charged to the socket's option memory, which
 * net.core.optmem_max bounds: 20 KiB before 6.9 (Debian 12's 6.1), where a
 * bigger ring could never be created. So an entry is 32 bytes: the link and
 * IP stamps are kept as distances before the TCP stamp (see rx_dist). */
struct rx_ent {
	__u32 seq;
	__u32 len;
	__u32 ack;
	__u8 slot; /* RX_SLOTS index of its payload copy, 0xff: none */
	__u8 _pad[3];
	__u64 t2;   /* TCP entry */
	__u32 d[2]; /* link, IP: rx_dist(t2, stamp) */
};

/* A stamp t before tcp (TCP entry) as tcp - t + 1; 0: not seen, or not
 * before tcp, or 4 s or more before it (then the layer is reported missing,
 * as it would be for stamps out of order). */
static __always_inline __u32 rx_dist(__u64 tcp, __u64 t)
{
	if (!t || t > tcp || tcp - t >= 0xffffffffULL)
		return 0;
	return (__u32)(tcp - t) + 1;
}

static __always_inline __u64 rx_undist(__u64 tcp, __u32 d)
{
	return d ? tcp - (d - 1) : 0;
}
struct rx_slot {
	__u8 used;
	__u8 len;
	__u8 cut;
	__u8 _pad;
	__u8 data[NW_HTTP_MAX];
};
struct rx_ring {
	struct bpf_spin_lock lock; /* producers: softirq on any CPU; consumer: reader */
	__u32 head;                /* free-running */
	__u32 tail;
	struct rx_ent e[RX_RING];
	struct rx_slot slot[RX_SLOTS];
};
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct rx_ring);
} nw_pkt_rxq SEC(".maps");

/* --sample: segments queued in any socket's nw_pkt_rxq and not yet popped,
 * never less (a socket freed with entries still queued leaves them
 * counted). While it is 0 the copy hooks, which run for every read of every
 * socket, leave before looking for the socket's queue. Without --sample
 * every tracked data segment is queued and the count is not kept. */
__u64 nw_pkt_rxq_n = 0;

static __always_inline struct rx_curs *rx_cur_ring(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nw_pkt_rxcur, &zero);
}

/* --sample at the link: skb->data is the network header here (the
 * tracepoint fires after eth_type_trans; the stack sets network/transport
 * header offsets only after it). One read covers an IPv4 header without
 * options or an IPv6 one and the TCP ports and seq after it. Not TCP: not
 * picked (no record is ever made of it); unreadable: picked. */
static __always_inline bool rx_link_pick(const struct sk_buff *skb)
{
	unsigned char *d = skb->data;
	__u8 b[48];
	if (bpf_probe_read_kernel(b, sizeof(b), d))
		return true;
	if (b[0] == 0x45) { /* IPv4, 20-byte header */
		if (b[9] != IPPROTO_TCP)
			return false;
		return pkt_pick(*(__u32 *)&b[24], *(__u32 *)&b[20]);
	}
	if (b[0] >> 4 == 6) {
		if (b[6] != IPPROTO_TCP)
			return false; /* extension headers: no record either */
		return pkt_pick(*(__u32 *)&b[44], *(__u32 *)&b[40]);
	}
	if (b[0] >> 4 == 4 && b[9] == IPPROTO_TCP) /* IPv4 with options */
		return pkt_pick_at(d + (b[0] & 0x0f) * 4);
	return false;
}

/* t[0] link arrival: every packet handed to the stack (checking for TCP here
 * would cost more than the stamp), or with --sample every picked one. */
SEC("tp_btf/netif_receive_skb")
int BPF_PROG(nw_pkt_rx_mac, struct sk_buff *skb)
{
	if (!cfg_time)
		return 0;
	if (SAMPLING && !rx_link_pick(skb))
		return 0;
	struct rx_curs *rc = rx_cur_ring();
	if (!rc)
		return 0;
	struct rx_cur *e = &rc->e[rc->next & (RX_CUR - 1)];
	rc->next++;
	e->skb = (__u64)skb;
	e->mac = bpf_ktime_get_ns();
	e->ip = 0;
	return 0;
}

/* t[1] IP entry of the packet skb, if the link hook saw it on this CPU. */
static __always_inline void rx_ip(__u64 skb)
{
	struct rx_curs *rc = rx_cur_ring();
	if (!rc)
		return;
	struct rx_cur *e = rx_find(rc, skb);
	if (e)
		e->ip = bpf_ktime_get_ns();
}

/* t[1] IP entry (netfilter PRE_ROUTING, attached in every netns). */
SEC("netfilter")
int nw_pkt_rx_ip(struct bpf_nf_ctx *ctx)
{
	struct sk_buff *skb = ctx->skb;
	/* --sample: ip_rcv_core/ipv6_rcv_core set the transport header
	 * offset before PRE_ROUTING (not TCP: a hash of other bytes, and
	 * at worst a ring search that finds nothing) */
	if (SAMPLING && !pkt_pick_at(skb->head + skb->transport_header))
		return 1;
	rx_ip((__u64)skb);
	return 1; /* NF_ACCEPT */
}

/* t[1] IP entry without netfilter links (before 6.4): ip_rcv_core (IPv4)
 * and ip6_rcv_core (IPv6), the first step of ip_rcv/ip_list_rcv and
 * ipv6_rcv/ipv6_list_rcv, host-wide (every netns), still in the softirq
 * pass of the link hook. */
SEC("kprobe/ip_rcv_core")
int BPF_KPROBE(nw_pkt_rx_ip_kp, struct sk_buff *skb)
{
	if (cfg_time)
		rx_ip((__u64)skb);
	return 0;
}

static __always_inline void emit_rx_now(struct __sk_buff *ctx, __u64 sk, const struct nw_conn *c,
					const struct seg *s, const __u64 t[3])
{
	struct pkt_out o = {
		.sk = sk, .ts = bpf_ktime_get_ns(), .seq = s->seq, .ack = s->ack, .len = s->len, .rx = 1,
		.t = {t[0], t[1], t[2], 0},
	};
	struct scratch *sc = 0;
	if (cfg_http) {
		sc = scratch();
		if (sc) {
			o.http_len = http_payload(ctx, s, sc->http);
			o.http_cut = s->len > o.http_len;
		}
	}
	emit_pkt(&o, c, sc ? sc->http : 0);
}

/* A segment at TCP entry with its link/IP stamps t[0], t[1] and TCP entry
 * t[2]: recorded now (without -t) or queued for the copy. */
static __always_inline void rx_keep(struct __sk_buff *ctx, __u64 skey, struct nw_conn *c,
				    const struct seg *sp, const __u64 t[3])
{
	struct seg s = *sp;
	if (!cfg_time) {
		emit_rx_now(ctx, skey, c, &s, t);
		return;
	}
	/* Wait for the copy to the application. */
	/* sk storage wants the context's socket, not the RCU pointer */
	struct bpf_sock *bsk = ctx->sk;
	if (bsk)
		bsk = bpf_sk_fullsock(bsk);
	struct rx_ring *q = 0;
	if (bsk)
		q = bpf_sk_storage_get(&nw_pkt_rxq, bsk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!q) {
		nw_count(NW_STAT_PKT_QUEUE_ALLOC);
		emit_rx_now(ctx, skey, c, &s, t);
		return;
	}
	struct scratch *sc = 0;
	__u32 hn = 0;
	if (cfg_http) {
		sc = scratch();
		if (sc)
			hn = http_payload(ctx, &s, sc->http);
	}
	bool full = false;
	bpf_spin_lock(&q->lock);
	if (q->tail - q->head >= RX_RING) {
		full = true;
	} else {
		struct rx_ent *en = &q->e[q->tail & (RX_RING - 1)];
		en->seq = s.seq;
		en->len = s.len;
		en->ack = s.ack;
		en->t2 = t[2];
		en->d[0] = rx_dist(t[2], t[0]);
		en->d[1] = rx_dist(t[2], t[1]);
		en->slot = 0xff;
		if (hn && sc) {
			for (int i = 0; i < RX_SLOTS; i++) {
				struct rx_slot *sl = &q->slot[i];
				if (sl->used)
					continue;
				sl->used = 1;
				sl->len = hn;
				sl->cut = s.len > hn;
				__builtin_memcpy(sl->data, sc->http, NW_HTTP_MAX);
				en->slot = i;
				break;
			}
		}
		q->tail++;
	}
	bpf_spin_unlock(&q->lock);
	if (SAMPLING && !full) {
		__sync_fetch_and_add(&nw_pkt_rxq_n, 1); /* before the data can be read */
		__sync_fetch_and_add(&nw_pkt_waits, 1);
	}
	if (full) {
		/* Queue full (the application does not read): record now, copy time missing. */
		nw_count(NW_STAT_PKT_RX_UNREAD);
		emit_rx_now(ctx, skey, c, &s, t);
	}
}

/* -i with --sample: a segment the hash did not pick is still recorded if it
 * may start an HTTP line (pairing needs every one; cg_pick decided that),
 * untimed: one record now, at TCP entry, with its payload bytes and no
 * stamp (every layer time missing), not queued for the copy, so the copy
 * hooks never look for it. Except behind a segment of the same socket
 * that waits for the copy (rx_behind): records of a connection must come
 * in order (the HTTP pairing takes a request that comes after a later one
 * for a retransmission). */
static __always_inline bool rx_behind(struct __sk_buff *ctx, const struct seg *s)
{
	struct bpf_sock *bsk = ctx->sk;
	if (bsk)
		bsk = bpf_sk_fullsock(bsk);
	if (!bsk)
		return false;
	struct rx_ring *q = bpf_sk_storage_get(&nw_pkt_rxq, bsk, 0, 0);
	/* nothing waits (racy peek: checked again under the lock) */
	if (!q || READ_ONCE_U32(q->head) == READ_ONCE_U32(q->tail))
		return false;
	struct scratch *sc = scratch();
	if (!sc)
		return false;
	/* cg_pick read the first byte: it may start an HTTP line */
	__u32 hn = load_payload(ctx, s, sc->http);
	bool queued = false;
	bpf_spin_lock(&q->lock);
	if (q->tail != q->head && q->tail - q->head < RX_RING) {
		struct rx_ent *en = &q->e[q->tail & (RX_RING - 1)];
		en->seq = s->seq;
		en->len = s->len;
		en->ack = s->ack;
		en->t2 = 0; /* untimed (pop_one: no stamp) */
		en->d[0] = 0;
		en->d[1] = 0;
		en->slot = 0xff;
		if (hn) {
			for (int i = 0; i < RX_SLOTS; i++) {
				struct rx_slot *sl = &q->slot[i];
				if (sl->used)
					continue;
				sl->used = 1;
				sl->len = hn;
				sl->cut = s->len > hn;
				__builtin_memcpy(sl->data, sc->http, NW_HTTP_MAX);
				en->slot = i;
				break;
			}
		}
		q->tail++;
		queued = true;
	}
	bpf_spin_unlock(&q->lock);
	if (queued) {
		__sync_fetch_and_add(&nw_pkt_rxq_n, 1);
		__sync_fetch_and_add(&nw_pkt_waits, 1);
	}
	return queued;
}

static __always_inline void rx_unpicked(struct __sk_buff *ctx, bool kern)
{
	struct sk_buff *kskb;
	__u64 skey;
	struct nw_conn *c;
	struct seg s = {};
	if (!tracked_seg(ctx, kern, &kskb, &skey, &c, &s))
		return;
	if (cfg_time && READ_ONCE_U64(nw_pkt_rxq_n) && rx_behind(ctx, &s))
		return;
	emit_untimed(ctx, skey, c, &s, 1);
}

/* t[2] TCP entry: tcp_filter() runs cgroup ingress programs for each segment
 * before the socket backlog (the backlog may merge segments).
 * nw_pkt_rx_tcp_ctx: without bpf_cast_to_kern_ctx (before 6.2), see seg_sock. */
NW_CTX_TWINS("cgroup_skb/ingress", struct __sk_buff, nw_pkt_rx_tcp, true, nw_pkt_rx_tcp_ctx, false, kern)
{
	bool http = false;
	if (SAMPLING && !cg_pick(ctx, kern, &http)) {
		if (http)
			rx_unpicked(ctx, kern);
		return 1;
	}
	struct sk_buff *kskb;
	__u64 skey;
	struct nw_conn *c;
	struct seg s = {};
	__u64 t[3] = {};
	if (!tracked_seg(ctx, kern, &kskb, &skey, &c, &s))
		return 1;
	if (cfg_time) {
		t[2] = bpf_ktime_get_ns(); /* without -t the record's time is its only one */
		struct rx_curs *rc = rx_cur_ring();
		/* the context is the kernel's sk_buff: its address is the key
		 * the link hook stored */
		struct rx_cur *e = 0;
		if (rc)
			e = rx_find(rc, kern ? (__u64)kskb : nw_ptr_num(ctx));
		if (e) {
			t[0] = e->mac;
			t[1] = e->ip;
			e->skb = 0;
		}
	}
	rx_keep(ctx, skey, c, &s, t);
	return 1;
}

/* Pop the oldest waiting segment if its last byte is below copy_end (or
 * unconditionally when flushing) and emit it. */
struct pop_ctx {
	struct rx_ring *q;
	struct nw_conn *c;
	__u64 sk;
	__u32 copy_end;
	bool flush;
	__u64 now;
};

static long pop_one(__u64 idx, struct pop_ctx *pc)
{
	struct rx_ring *q = pc->q;
	struct rx_ent en;
	__u32 zero = 0;
	struct scratch *sc = bpf_map_lookup_elem(&nw_pkt_scratch, &zero);
	if (!sc)
		return 1;
	__u8 hlen = 0, hcut = 0;
	bool got = false;
	bpf_spin_lock(&q->lock);
	if (q->head != q->tail) {
		struct rx_ent *h = &q->e[q->head & (RX_RING - 1)];
		if (pc->flush || seq_le(h->seq + h->len, pc->copy_end)) {
			en = *h;
			if (en.slot < RX_SLOTS) {
				struct rx_slot *sl = &q->slot[en.slot & (RX_SLOTS - 1)];
				hlen = sl->len;
				hcut = sl->cut;
				__builtin_memcpy(sc->http, sl->data, NW_HTTP_MAX);
				sl->used = 0;
			}
			q->head++;
			got = true;
		}
	}
	bpf_spin_unlock(&q->lock);
	if (!got)
		return 1; /* stop */
	if (SAMPLING)
		__sync_fetch_and_sub(&nw_pkt_rxq_n, 1);
	struct pkt_out o = {
		.sk = pc->sk, .ts = pc->now, .seq = en.seq, .ack = en.ack, .len = en.len, .rx = 1,
		.t = {rx_undist(en.t2, en.d[0]), rx_undist(en.t2, en.d[1]), en.t2,
		      pc->flush || !en.t2 ? 0 : pc->now}, /* t2 0: untimed (rx_behind) */
	};
	if (cfg_http && en.slot < RX_SLOTS) {
		o.http_len = hlen > NW_HTTP_MAX ? NW_HTTP_MAX : hlen;
		o.http_cut = hcut;
	}
	emit_pkt(&o, pc->c, sc->http);
	return 0;
}

/* Record the segments waiting on sk that the application has taken: those
 * whose last byte is below copied_seq + len, or, when flushing (the
 * connection closes), all of them, copy time missing. sk: a BTF pointer, as
 * sk storage wants. */
static __always_inline void rx_drain(struct sock *sk, __u32 len, bool flush)
{
	if (SAMPLING && !READ_ONCE_U64(nw_pkt_rxq_n))
		return; /* no socket has a segment waiting */
	struct rx_ring *q = bpf_sk_storage_get(&nw_pkt_rxq, sk, 0, 0);
	if (!q)
		return;
	/* Nothing waits? (Usually: the copy hook completed everything. A racy
	 * peek is fine: producers run before the data is queued to the
	 * socket. Not when flushing: nothing may stay behind.) */
	if (!flush && READ_ONCE_U32(q->head) == READ_ONCE_U32(q->tail))
		return;
	__u64 skey = nw_ptr_num(sk);
	struct nw_conn *c = nw_conn_find(skey);
	if (!c)
		return;
	const struct tcp_sock *tp = (const void *)sk;
	struct pop_ctx pc = {
		.q = q, .c = c, .sk = skey, .flush = flush,
		.copy_end = flush ? 0 : BPF_CORE_READ(tp, copied_seq) + len,
		.now = bpf_ktime_get_ns(),
	};
	bpf_loop(RX_RING, pop_one, &pc, 0);
}

/* t[3] copy to the application (process context, socket lock held). The
 * kernel copies from coalesced skbs, so match by sequence range: the copy
 * covers [copied_seq, copied_seq + len). */
SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(nw_pkt_rx_copy, const struct sk_buff *skb, int len)
{
	if (!cfg_time || len <= 0)
		return 0;
	struct sock *sk = skb->sk;
	if (sk)
		rx_drain(sk, (__u32)len, false);
	return 0;
}

/* t[3] for data the application takes without a user copy (splice,
 * tcp_read_sock users): tcp_rcv_space_adjust() runs after copied_seq moved,
 * at the end of tcp_recvmsg and of tcp_read_sock. Completes what the copy
 * tracepoint above did not see. */
SEC("tp_btf/tcp_rcv_space_adjust")
int BPF_PROG(nw_pkt_rx_consumed, struct sock *sk)
{
	if (cfg_time)
		rx_drain(sk, 0, false);
	return 0;
}

#endif /* PACKET_RX_H */
