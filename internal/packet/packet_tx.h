/* SPDX-License-Identifier: GPL-2.0 */
/*
 * packet_tx.h — sent segments (included by packet.bpf.c; see its top for
 * what a record is and which boundaries are stamped).
 *
 * Path of a sent segment with -t: each tcp_sendmsg_locked chunk leaves
 * (write_seq, time) in the socket's chunk ring (nw_pkt_txq, or nw_pkt_txqh
 * where TCP entry is a kprobe); IP entry opens a waiting slot by (sock, seq)
 * in a per-CPU ring (nw_pkt_txcur); the egress hook fills it (TCP entry time
 * from the chunk ring, length, payload bytes); the device queue stamps it
 * and, on a device with a qdisc, moves it to nw_pkt_txpend; the driver
 * transmit completes it into a record. Without -t the record is made at
 * the egress hook.
 */
#ifndef PACKET_TX_H
#define PACKET_TX_H

#define TX_RING 256 /* sendmsg chunks (write_seq, time), per socket (4 KB) */

/* tx: per-socket (write_seq, time) of each tcp_sendmsg_locked chunk.
 * Written and read only under the socket lock (sendmsg, and transmit paths
 * run by the lock owner or in softirq while nobody owns it): no BPF lock. */
struct tx_chunk {
	__u32 seq;
	__u32 _pad;
	__u64 ts;
};
struct tx_ring {
	__u32 head;
	__u32 tail;
	struct tx_chunk c[TX_RING];
};
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tx_ring);
} nw_pkt_txq SEC(".maps");

/* tx: the same rings by socket, where tcp_sendmsg_locked is seen by a kprobe
 * (no socket storage there). Allocated on first use, removed at close. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tx_ring);
} nw_pkt_txqh SEC(".maps");

/* An empty ring to create nw_pkt_txqh entries from (never written). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tx_ring);
} nw_pkt_txzero SEC(".maps");

/* tx: sent segments between IP entry and driver transmit, by (sock, seq). */
struct tx_key {
	__u64 sk;
	__u32 seq;
	__u32 _pad;
};
struct tx_pend {
	__u32 ack;
	__u32 len;
	__u8 http_len;
	__u8 http_cut;
	__u8 untimed; /* --sample -i: an unpicked HTTP start (tx_unpicked): no stamp */
	__u8 _pad[5];
	__u64 t[4];
	__u8 http[NW_HTTP_MAX];
};
/* Where a sent segment waits between IP entry and driver transmit:
 *  - on a device without a queue (noqueue: veth, loopback, most virtual
 *    devices) the whole way from LOCAL_OUT to the driver runs on one CPU
 *    (ip_finish_output -> dev_queue_xmit -> dev_hard_start_xmit, BH off from
 *    the device queue on): the segment waits in a small per-CPU ring, no
 *    hashing, no lock, no allocation;
 *  - when the device's tx queue has a qdisc, the driver may transmit it later
 *    and on another CPU: at the device queue it moves to nw_pkt_txpend.
 * A process preempted and migrated between LOCAL_OUT and the device (rare)
 * leaves its IP-entry stamp behind: that record shows ip/tcp time missing. */
#define TX_CUR 16
struct tx_cur {
	__u64 sk;
	__u32 seq;
	__u32 _pad;
	__u64 used; /* 64 bits: exchanged (tx_use) */
	struct tx_pend p;
};
struct tx_curs {
	__u32 next;
	__u32 _pad;
	__u64 live; /* --sample: slots in use (tx_use, tx_free) */
	struct tx_cur e[TX_CUR];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tx_curs);
} nw_pkt_txcur SEC(".maps");

/* Segments queued in a qdisc, by (sock, seq). Preallocated: an insert and a
 * delete per segment would otherwise be a kmalloc and an RCU free each.
 * 16384 in-flight segments (a deep qdisc backlog) at ~260 bytes: 4 MiB. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tx_key);
	__type(value, struct tx_pend);
} nw_pkt_txpend SEC(".maps");

/* --sample: entries put into nw_pkt_txpend and not yet taken out by the
 * driver transmit, never less (an overwritten entry, or one the stale-entry
 * sweep in user space removes, stays counted: then the transmit hook looks
 * up every segment on a queued device, as without the count). */
__u64 nw_pkt_txpend_n = 0;

/* --sample: the queue and transmit hooks see every skb sent, picked or not.
 * An unpicked one (all but 1 in N; with -i an unpicked one may still wait,
 * if it may start an HTTP line) can only be found where an earlier hook put
 * it: this CPU's waiting slots, or nw_pkt_txpend. While both are empty the
 * hooks leave after reading two counters, before reading the packet. The
 * counters move with the slots' `used` by exchange, so they are never below
 * the slots in use (a count too high only costs a search). Without
 * --sample every data segment takes a slot and the counters are not kept. */
static __always_inline void tx_use(struct tx_curs *tc, struct tx_cur *e)
{
	if (!SAMPLING) {
		e->used = 1;
		return;
	}
	if (!__sync_lock_test_and_set(&e->used, 1)) {
		__sync_fetch_and_add(&tc->live, 1);
		__sync_fetch_and_add(&nw_pkt_waits, 1);
	}
}

static __always_inline void tx_free(struct tx_curs *tc, struct tx_cur *e)
{
	if (!SAMPLING) {
		e->used = 0;
		return;
	}
	if (__sync_lock_test_and_set(&e->used, 0))
		__sync_fetch_and_sub(&tc->live, 1);
}

/* Append a chunk that starts at write_seq seq, entering TCP at now. */
static __always_inline void tx_chunk_add(struct tx_ring *q, __u32 seq, __u64 now)
{
	__u32 head = q->head, tail = q->tail;
	if (tail != head) {
		struct tx_chunk *last = &q->c[(tail - 1) & (TX_RING - 1)];
		if (last->seq == seq) {
			last->ts = now; /* nothing was appended since: the data enters now */
			return;
		}
	}
	if (tail - head >= TX_RING) {
		q->head = head + 1; /* forget the oldest chunk */
		/* With --sample only picked segments look chunks up (and drop
		 * the ones before theirs): a full ring is the normal state,
		 * and only the newest chunks can still be looked up. */
		if (!SAMPLING)
			nw_count(NW_STAT_PKT_TX_CHUNKS);
	}
	struct tx_chunk *ch = &q->c[tail & (TX_RING - 1)];
	ch->seq = seq;
	ch->ts = now;
	q->tail = tail + 1;
}

/* t[0] TCP entry: each tcp_sendmsg_locked() iteration appends data starting
 * at write_seq (process context, socket lock held). */
SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(nw_pkt_tx_tcp, const struct sock *sk, const struct msghdr *msg,
	     const struct sk_buff *skb, int size_goal)
{
	if (!cfg_time)
		return 0;
	/* A socket with a ring is (or was) tracked: the ring first, the
	 * connection table only for a socket without one. */
	struct tx_ring *q = bpf_sk_storage_get(&nw_pkt_txq, (struct sock *)sk, 0, 0);
	if (!q) {
		if (!tracked(nw_ptr_num(sk)))
			return 0;
		q = bpf_sk_storage_get(&nw_pkt_txq, (struct sock *)sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!q) {
			nw_count(NW_STAT_PKT_QUEUE_ALLOC);
			return 0;
		}
	}
	/* a BTF pointer: write_seq is a plain load */
	struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	/* Every chunk gets its time, also with --sample: whether a chunk
	 * holds only unpicked segment starts cannot be known here for sure
	 * (a version that skipped the clock for "provably one unpicked
	 * segment" chunks left 1 in ~43,000 picked records without a tcp
	 * time in TestSampleLoopbackComplete). */
	tx_chunk_add(q, tp->write_seq, bpf_ktime_get_ns());
	return 0;
}

/* t[0] where the tracepoint is missing (before 6.13): the entry of
 * tcp_sendmsg_locked(), once per sendmsg call (socket lock held), and before
 * 6.5 of do_tcp_sendpages() (sendfile, splice; sk is its first argument
 * too). kprobe
 * programs have no socket storage: the chunks wait in nw_pkt_txqh, by socket
 * (cfg_txq_hash tells the egress hook; the close hook removes the entry). A
 * write that waits for send-buffer room counts that wait in its TCP time. */
SEC("kprobe/tcp_sendmsg_locked")
int BPF_KPROBE(nw_pkt_tx_tcp_kp, struct sock *sk)
{
	if (!cfg_time)
		return 0;
	__u64 skey = (__u64)sk;
	if (!tracked(skey))
		return 0;
	struct tx_ring *q = bpf_map_lookup_elem(&nw_pkt_txqh, &skey);
	if (!q) {
		__u32 zero = 0;
		struct tx_ring *z = bpf_map_lookup_elem(&nw_pkt_txzero, &zero);
		if (!z || bpf_map_update_elem(&nw_pkt_txqh, &skey, z, BPF_NOEXIST))
			goto full;
		q = bpf_map_lookup_elem(&nw_pkt_txqh, &skey);
		if (!q)
			goto full;
	}
	tx_chunk_add(q, BPF_CORE_READ((const struct tcp_sock *)sk, write_seq), bpf_ktime_get_ns());
	return 0;
full:
	nw_count(NW_STAT_PKT_QUEUE_ALLOC);
	return 0;
}

struct chunk_ctx {
	struct tx_ring *q;
	__u32 seq;
	__u64 ts;
};

/* Drop chunks that lie wholly before seq; the head is then the chunk that
 * holds seq. */
static long chunk_step(__u64 idx, struct chunk_ctx *cc)
{
	struct tx_ring *q = cc->q;
	__u32 head = q->head;
	if (head == q->tail)
		return 1;
	struct tx_chunk *h = &q->c[head & (TX_RING - 1)];
	if (!seq_le(h->seq, cc->seq))
		return 1; /* seq before the oldest chunk: a retransmission */
	cc->ts = h->ts;
	if (head + 1 != q->tail) {
		struct tx_chunk *n = &q->c[(head + 1) & (TX_RING - 1)];
		if (seq_le(n->seq, cc->seq)) {
			q->head = head + 1;
			return 0;
		}
	}
	return 1;
}

static __always_inline __u64 tx_entry_time(struct __sk_buff *ctx, __u64 skey, __u32 seq)
{
	struct tx_ring *q;
	if (cfg_txq_hash) {
		q = bpf_map_lookup_elem(&nw_pkt_txqh, &skey);
	} else {
		struct bpf_sock *bsk = ctx->sk;
		if (!bsk)
			return 0;
		bsk = bpf_sk_fullsock(bsk);
		if (!bsk)
			return 0;
		q = bpf_sk_storage_get(&nw_pkt_txq, bsk, 0, 0);
	}
	if (!q)
		return 0;
	struct chunk_ctx cc = {.q = q, .seq = seq};
	bpf_loop(TX_RING, chunk_step, &cc, 0);
	return cc.ts;
}

static __always_inline struct tx_curs *tx_cur_ring(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nw_pkt_txcur, &zero);
}

/* The waiting segment (sk, seq) on this CPU, newest first; 0 if none. */
static __always_inline struct tx_cur *tx_find(struct tx_curs *tc, __u64 sk, __u32 seq)
{
	__u32 n = tc->next;
	for (int i = 1; i <= TX_CUR; i++) {
		struct tx_cur *e = &tc->e[(n - i) & (TX_CUR - 1)];
		if (e->used && e->sk == sk && e->seq == seq)
			return e;
	}
	return 0;
}

/* A fresh slot for (sk, seq). An older segment still in it never reached a
 * driver through this CPU (dropped before the device): it is forgotten. */
static __always_inline struct tx_cur *tx_new(struct tx_curs *tc, __u64 sk, __u32 seq)
{
	struct tx_cur *e = &tc->e[tc->next & (TX_CUR - 1)];
	tc->next++;
	e->sk = sk;
	e->seq = seq;
	tx_use(tc, e);
	e->p.ack = 0;
	e->p.len = 0;
	e->p.http_len = 0;
	e->p.http_cut = 0;
	e->p.untimed = 0;
	e->p.t[0] = 0;
	e->p.t[1] = 0;
	e->p.t[2] = 0;
	e->p.t[3] = 0;
	return e;
}

/* Stamp t[1] (IP entry) of the segment skb of socket sk (a number), if it
 * carries data. head, th: skb->head and transport_header; data_off: where
 * skb->data is (from head); len: skb->len. Headers of locally built skbs
 * are linear. */
static __always_inline void tx_ip(__u64 sk, unsigned char *head, __u16 th, __u32 data_off, __u32 len)
{
	if (SAMPLING && !pkt_pick_at(head + th))
		return; /* first per-segment boundary of the send path */
	if (!tracked(sk))
		return;
	/* ports, seq, ack, data offset: one read */
	struct {
		__u32 ports;
		__u32 seq;
		__u32 ack;
		__u8 doff;
		__u8 _rest[3];
	} h;
	if (bpf_probe_read_kernel(&h, sizeof(h), head + th))
		return;
	/* Pure ACKs, SYNs and FINs carry no data and get no record: stamping
	 * them would only fill the table. skb->len counts from skb->data (also
	 * for GSO): headers are what lies from there to the payload. */
	__u32 hdrs = (__u32)th + (__u32)(h.doff >> 4) * 4 - data_off;
	if (len <= hdrs)
		return;
	struct tx_curs *tc = tx_cur_ring();
	if (!tc)
		return;
	__u32 hseq = bpf_ntohl(h.seq);
	struct tx_cur *e = tx_find(tc, sk, hseq); /* a retransmission of a waiting one */
	if (!e)
		e = tx_new(tc, sk, hseq);
	e->p.t[1] = bpf_ktime_get_ns();
}

/* t[1] IP entry (netfilter LOCAL_OUT, attached in every netns; 6.4+):
 * skb->data is at the IP header. */
SEC("netfilter")
int nw_pkt_tx_ip(struct bpf_nf_ctx *ctx)
{
	/* ctx->skb is a trusted BTF pointer: its fields are plain loads */
	struct sk_buff *skb = ctx->skb;
	struct sock *ssk = skb->sk;
	if (!ssk)
		return 1;
	tx_ip(nw_ptr_num(ssk), skb->head, skb->transport_header, skb->network_header, skb->len);
	return 1; /* NF_ACCEPT */
}

/* t[1] IP entry without netfilter links (before 6.4): TCP hands each
 * segment to IP through icsk_af_ops->queue_xmit, ip_queue_xmit (IPv4) or
 * inet6_csk_xmit (IPv6), host-wide (every netns). skb->data is at the TCP
 * header; the IP header is not built yet. */
SEC("kprobe/ip_queue_xmit")
int BPF_KPROBE(nw_pkt_tx_ip_kp, struct sock *sk, struct sk_buff *skb)
{
	if (!cfg_time || !sk)
		return 0;
	unsigned char *head = BPF_CORE_READ(skb, head);
	unsigned char *data = BPF_CORE_READ(skb, data);
	tx_ip((__u64)sk, head, BPF_CORE_READ(skb, transport_header), (__u32)(data - head),
	      BPF_CORE_READ(skb, len));
	return 0;
}

/* p holds the record's values, ts its time; with ctx/s (no -t: at once
 * from the egress hook) the payload is read from the skb, else it is
 * p->http. */
static __always_inline void emit_tx(__u64 sk, const struct nw_conn *c, __u32 seq,
				    const struct tx_pend *p, __u64 ts, struct __sk_buff *ctx,
				    const struct seg *s)
{
	struct pkt_out o = {
		.sk = sk, .ts = ts, .seq = seq, .ack = p->ack, .len = p->len, .rx = 0,
		.t = {p->t[0], p->t[1], p->t[2], p->t[3]},
	};
	if (SAMPLING && p->untimed) {
		o.t[0] = 0;
		o.t[1] = 0;
		o.t[2] = 0;
		o.t[3] = 0;
	}
	const __u8 *http = 0;
	if (cfg_http) {
		if (ctx && s) {
			struct scratch *sc = scratch();
			if (sc) {
				o.http_len = http_payload(ctx, s, sc->http);
				o.http_cut = s->len > o.http_len;
				http = sc->http;
			}
		} else {
			o.http_len = p->http_len > NW_HTTP_MAX ? NW_HTTP_MAX : p->http_len;
			o.http_cut = p->http_cut;
			http = p->http;
		}
	}
	emit_pkt(&o, c, http);
}

/* A data segment of a tracked connection at the egress hook: recorded now
 * (without -t) or filled into its waiting slot; untimed (tx_unpicked): it
 * waits and its record has no stamp (the queue hook's one is only for the
 * stale-entry sweep). */
static __always_inline void tx_keep(struct __sk_buff *ctx, __u64 skey, struct nw_conn *c,
				    const struct seg *sp, bool untimed)
{
	struct seg s = *sp;
	if (!cfg_time) {
		struct tx_pend p = {.ack = s.ack, .len = s.len};
		emit_tx(skey, c, s.seq, &p, bpf_ktime_get_ns(), ctx, &s);
		return;
	}
	struct tx_curs *tc = tx_cur_ring();
	if (!tc)
		return;
	struct tx_cur *e = tx_find(tc, skey, s.seq);
	if (!e)
		e = tx_new(tc, skey, s.seq); /* IP entry not seen (no netfilter link in this netns yet) */
	struct tx_pend *p = &e->p;
	p->ack = s.ack;
	p->len = s.len;
	if (untimed)
		p->untimed = 1;
	else
		p->t[0] = tx_entry_time(ctx, skey, s.seq);
	if (cfg_http) {
		p->http_len = http_payload(ctx, &s, p->http);
		p->http_cut = s.len > p->http_len;
	}
}

/* -i with --sample: a segment the hash did not pick is still recorded if it
 * may start an HTTP line (cg_pick decided), untimed: one record now, at the
 * egress hook, with its payload bytes and no stamp (every layer time
 * missing); it takes no waiting slot, so the queue and transmit hooks never
 * look for it. Except while a segment waits in a qdisc (nw_pkt_txpend_n):
 * the driver may send that one after this one is recorded, and records of a
 * connection must come in order (the HTTP pairing takes a response that
 * comes after a later one for a retransmission), so then it waits too,
 * without stamps, and is recorded at the driver. */
static __always_inline void tx_unpicked(struct __sk_buff *ctx, bool kern)
{
	struct sk_buff *kskb;
	__u64 skey;
	struct nw_conn *c;
	struct seg s = {};
	if (!tracked_seg(ctx, kern, &kskb, &skey, &c, &s))
		return;
	if (cfg_time && READ_ONCE_U64(nw_pkt_txpend_n)) {
		tx_keep(ctx, skey, c, &s, true);
		return;
	}
	emit_untimed(ctx, skey, c, &s, 0);
}

/* Every skb TCP sends, in every netns (ip_finish_output()). Without -t the
 * record is made here; with -t it waits for the driver transmit.
 * nw_pkt_tx_out_ctx: without bpf_cast_to_kern_ctx (before 6.2), see seg_sock. */
NW_CTX_TWINS("cgroup_skb/egress", struct __sk_buff, nw_pkt_tx_out, true, nw_pkt_tx_out_ctx, false, kern)
{
	bool http = false;
	if (SAMPLING && !cg_pick(ctx, kern, &http)) {
		if (http)
			tx_unpicked(ctx, kern);
		return 1;
	}
	struct sk_buff *kskb;
	__u64 skey;
	struct nw_conn *c;
	struct seg s = {};
	if (!tracked_seg(ctx, kern, &kskb, &skey, &c, &s))
		return 1;
	tx_keep(ctx, skey, c, &s, false);
	return 1;
}

/* skb is a BTF pointer (tp_btf callers): header fields are plain loads;
 * only the packet bytes need a probe read. */
static __always_inline bool tx_key_of(const struct sk_buff *skb, struct tx_key *k)
{
	struct sock *sk = skb->sk;
	if (!sk)
		return false;
	k->sk = nw_ptr_num(sk);
	unsigned char *head = skb->head;
	__u16 th = skb->transport_header;
	/* --sample: unpicked segments leave here (with -i the hooks look
	 * for every segment: an unpicked HTTP start may wait behind one in a
	 * qdisc, see tx_unpicked) */
	if (SAMPLING && !cfg_http && !pkt_pick_at(head + th))
		return false;
	__u32 seq;
	if (bpf_probe_read_kernel(&seq, 4, head + th + 4))
		return false;
	k->seq = bpf_ntohl(seq);
	return true;
}

/* Does the tx queue skb is sent on have a qdisc (may the driver transmit it
 * later, on another CPU)? noqueue devices have none. */
static __always_inline bool txq_queues(const struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	if (!dev)
		return true;
	__u32 qm = skb->queue_mapping;
	if (qm >= dev->num_tx_queues)
		qm = 0;
	/* The queue's address as a number (read, not a BTF pointer): 6.1's
	 * verifier loses qm's bound across the multiply when it is pointer
	 * arithmetic ("math between ptr_ pointer and register with unbounded
	 * min value"); as scalar math there is nothing to check. */
	__u64 txq = (__u64)BPF_CORE_READ(dev, _tx) + (__u64)qm * bpf_core_type_size(struct netdev_queue);
	struct Qdisc *q = 0;
	if (bpf_probe_read_kernel(&q, sizeof(q),
				  (void *)(txq + bpf_core_field_offset(struct netdev_queue, qdisc))) || !q)
		return true;
	return BPF_CORE_READ(q, enqueue) != 0;
}

/* The segment skb (*k: sock, seq) and the ring of this CPU's waiting
 * segments; 0 if skb has no socket or its header cannot be read, or with
 * --sample if nothing waits where the hook looks (pend: in nw_pkt_txpend
 * too). */
static __always_inline struct tx_curs *tx_seg(const struct sk_buff *skb, struct tx_key *k, bool pend)
{
	struct tx_curs *tc = tx_cur_ring();
	if (!tc)
		return 0;
	if (SAMPLING && !READ_ONCE_U64(tc->live) && (!pend || !READ_ONCE_U64(nw_pkt_txpend_n)))
		return 0;
	if (!tx_key_of(skb, k))
		return 0;
	return tc;
}

/* t[2] device queue. */
SEC("tp_btf/net_dev_queue")
int BPF_PROG(nw_pkt_tx_queue, struct sk_buff *skb)
{
	if (!cfg_time)
		return 0;
	struct tx_key k = {};
	struct tx_curs *tc = tx_seg(skb, &k, false);
	struct tx_cur *e = tc ? tx_find(tc, k.sk, k.seq) : 0;
	if (!e)
		return 0;
	if (!e->p.len) {
		/* stamped at IP entry but TCP never filled it in: not a data
		 * segment of a tracked connection after all */
		tx_free(tc, e);
		return 0;
	}
	if (!e->p.t[2]) /* untimed too: the stale-entry sweep (Go) goes by it */
		e->p.t[2] = bpf_ktime_get_ns();
	if (txq_queues(skb)) {
		if (bpf_map_update_elem(&nw_pkt_txpend, &k, &e->p, BPF_ANY))
			nw_count(NW_STAT_PKT_MAP_FULL);
		else if (SAMPLING)
			__sync_fetch_and_add(&nw_pkt_txpend_n, 1);
		tx_free(tc, e);
	}
	return 0;
}

/* t[3] driver transmit: the record is complete. */
SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(nw_pkt_tx_xmit, const struct sk_buff *skb, const struct net_device *dev)
{
	if (!cfg_time)
		return 0;
	struct tx_key k = {};
	struct tx_curs *tc = tx_seg(skb, &k, true);
	if (!tc)
		return 0;
	struct tx_cur *e = tx_find(tc, k.sk, k.seq);
	if (e) {
		tx_free(tc, e);
		if (!e->p.len)
			return 0;
		struct nw_conn *c = nw_conn_find(k.sk);
		if (c) {
			/* one clock read: the driver stamp is the record's time
			 * (an untimed record's stamps are not sent: emit_tx) */
			e->p.t[3] = bpf_ktime_get_ns();
			emit_tx(k.sk, c, k.seq, &e->p, e->p.t[3], 0, 0);
		}
		return 0;
	}
	if (!txq_queues(skb))
		return 0; /* not a tracked data segment (pure ACK, later GSO piece, ...) */
	struct tx_pend *p = bpf_map_lookup_elem(&nw_pkt_txpend, &k);
	if (!p)
		return 0;
	struct nw_conn *c = nw_conn_find(k.sk);
	if (c) {
		p->t[3] = bpf_ktime_get_ns();
		emit_tx(k.sk, c, k.seq, p, p->t[3], 0, 0);
	}
	if (!bpf_map_delete_elem(&nw_pkt_txpend, &k) && SAMPLING)
		__sync_fetch_and_sub(&nw_pkt_txpend_n, 1);
	return 0;
}

#endif /* PACKET_TX_H */
