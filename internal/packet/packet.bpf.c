//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * Packets: one record per TCP data segment (payload > 0) of a tracked
 * connection (present in nw_conns), received (rx=1) or sent (rx=0), and with
 * -t the raw timestamps of its layer boundaries. Go computes the layer times.
 *
 * What one record is: one skb as TCP handed it to IP (send) or as it reached
 * TCP (receive). A TSO/GSO super-segment (send) or a GRO-merged packet
 * (receive) is ONE record: seq = its first byte, len = all its payload. Its
 * send-side stamps are those of the super-segment up to the device queue, and
 * the driver-transmit stamp of its first piece (the piece that starts at
 * seq) when software GSO splits it after the queue. So all layer times of a
 * record describe the same bytes, never a mix of pieces.
 *
 * Where records are made (all network namespaces, no per-netns attach):
 *   cgroup_skb ingress on the root cgroup v2 (tcp_filter(): TCP entry, before
 *   the socket backlog, so every segment is seen before TCP may coalesce it)
 *   cgroup_skb egress  (ip_finish_output(): every skb TCP sent)
 * Both see the payload through bpf_skb_load_bytes (page frags included).
 *
 * With -t (cfg_time), boundary stamps:
 *   receive: t[0] link arrival   net/netif_receive_skb   (by skb pointer)
 *            t[1] IP entry       netfilter PRE_ROUTING    (by skb pointer, per netns)
 *            t[2] TCP entry      cgroup_skb ingress
 *            t[3] copy to app    skb/skb_copy_datagram_iovec (by sequence range;
 *                                splice/read_sock: tcp/tcp_rcv_space_adjust)
 *   send:    t[0] TCP entry      tcp/tcp_sendmsg_locked   (by sock, write_seq)
 *            t[1] IP entry       netfilter LOCAL_OUT      (by sock, seq; per netns)
 *            t[2] device queue   net/net_dev_queue        (by sock, seq)
 *            t[3] driver xmit    net/net_dev_start_xmit   (by sock, seq)
 * A stamp of 0 means "boundary not seen"; Go then reports the layer missing.
 * Link/IP stamps wait in a per-CPU ring (nw_pkt_rxcur) until TCP entry;
 * received records wait (per socket, in sk storage) until the application
 * copies their last byte; sent records wait (by sock+seq) until the driver
 * transmits them: in a per-CPU ring (nw_pkt_txcur) on devices without a
 * qdisc, else in a hash map (nw_pkt_txpend). No hash operation on the common
 * path: on this kernel they were most of each program's cost.
 *
 * Older kernels (the hook table in Go picks by feature probes):
 *   - before 6.2 (no bpf_cast_to_kern_ctx) the cgroup_skb programs have a
 *     variant (*_ctx) that takes the socket from the context and the IP
 *     header length from the packet;
 *   - before 6.4 (no netfilter links) IP entry is a kprobe, host-wide:
 *     ip_rcv_core/ip6_rcv_core (receive), ip_queue_xmit/inet6_csk_xmit
 *     (send: TCP's queue_xmit, before the IP header is built);
 *   - before 6.13 (no tcp_sendmsg_locked tracepoint) send-side TCP entry is a
 *     kprobe on tcp_sendmsg_locked (+ do_tcp_sendpages before 6.5), whose
 *     chunks wait in a hash map by socket (kprobes have no sk storage).
 *   - before 5.17 (no bpf_loop) nothing here loads: the concern says so.
 *
 * Files: this one has the record, what both directions share and the close
 * hook; packet_rx.h the receive side, packet_tx.h the send side (bpf2go
 * builds one object from one .c file).
 */
#include "nw.h"
#include "nw_log2.h"

char LICENSE[] SEC("license") = "GPL";

volatile const bool cfg_time = false; /* -t: stamp boundaries */
volatile const bool cfg_http = false; /* -i: copy payload bytes */
volatile const bool cfg_txq_hash = false; /* TCP entry (send) by kprobe: chunks in nw_pkt_txqh */
volatile const __u32 cfg_sample = 1; /* --sample: records for 1 in cfg_sample data segments */
volatile const bool cfg_summary = false; /* --summary: histograms (nw_pkt_sum), no ring record */
/* Sampling on? Compared with an immediate: with N = 1 (frozen .rodata) the
 * verifier drops the branch and all it guards; the constant's load stays. */
#define SAMPLING (cfg_sample != 1)

/* --sample -t: segments that entered a waiting place a later hook searches
 * (a tx slot, a socket's receive queue): picked ones, and the unpicked HTTP
 * starts kept in order behind one (rx_behind, tx_unpicked). The exit stats
 * say it (pkt_sample_waits); not kept without --sample. */
__u64 nw_pkt_waits = 0;

#define NW_HTTP_MAX 160

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* Ring record, in three lengths: without -t it ends before `t`, without
 * payload bytes before `http`. It carries no addresses: user space knows the
 * connection by its socket and establishment time (the record exists only
 * for tracked ones), and
 * every byte here is written by BPF and read by user space on another CPU
 * per segment (measured: 144 -> 48 bytes took ~420 ns off each record).
 * Starts like every ring record: type byte, then (offset 4) the netns. */
struct nw_pkt_event {
	__u8 type;      /* NW_EV_PACKET */
	__u8 rx;        /* 1: received */
	__u8 http_len;  /* bytes in http[] */
	__u8 http_cut;  /* payload longer than http_len */
	__u32 netns;
	__u64 sk;
	__u64 ts;
	__u32 seq;
	__u32 ack;
	__u32 len;      /* payload bytes */
	__u32 est_lo;   /* low 32 bits of the connection's est_ns: which
			 * connection of this socket address (memory is reused) */
	__u64 t[4];     /* -t: boundary stamps, 0 = not seen (see top) */
	__u8 http[NW_HTTP_MAX];
};

#define PKT_BASE __builtin_offsetof(struct nw_pkt_event, t)
#define PKT_TIMED __builtin_offsetof(struct nw_pkt_event, http)

#define READ_ONCE_U32(x) (*(volatile __u32 *)&(x))
#define READ_ONCE_U64(x) (*(volatile __u64 *)&(x))

/* --summary: instead of a ring record, each record adds to its direction's
 * counters and (with -t) to a log2 histogram per layer: bucket i counts
 * layer times in [2^i, 2^(i+1)) ns (bucket 0 also 0 ns). Per CPU, summed
 * and differenced by user space every --interval. A layer whose boundary
 * was not seen adds to `missing`, not to a bucket. */
#define NW_SUM_SLOTS 32
struct nw_layer_hist {
	__u64 buckets[NW_SUM_SLOTS];
	__u64 sum_ns;
	__u64 max_ns;
	__u64 missing;
};
struct nw_pkt_sum {
	__u64 segs;  /* data segments (records that would have been made) */
	__u64 bytes; /* their payload bytes */
	struct nw_layer_hist l[3]; /* mac, ip, tcp */
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2); /* 0: received, 1: sent */
	__type(key, __u32);
	__type(value, struct nw_pkt_sum);
} nw_pkt_summary SEC(".maps");

/* Scratch for payload bytes (too big for the 512-byte stack next to the rest). */
struct scratch {
	__u8 http[NW_HTTP_MAX];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} nw_pkt_scratch SEC(".maps");

/* ---- helpers ---- */

/* --sample N (cfg_sample > 1): is the segment with this TCP sequence number
 * and ports one of the 1 in N that get a record? seq_be, ports_be: the TCP
 * header's words 1 and 0 as they are in the packet (network order). The
 * decision is a hash of the segment's own identity, so every boundary
 * (link, IP, TCP, device) makes it again from the header it sees and gets
 * the same answer, without state passed between hooks; an unpicked segment
 * leaves each hook after this check. A TSO/GSO super-segment or GRO-merged
 * packet is one record with the seq of its first byte, which every boundary
 * sees too (the driver transmit: its first piece). A retransmission of the
 * same bytes gets the same answer. With -i, an unpicked segment that may
 * start an HTTP line (pairing needs every one) is still recorded, untimed:
 * one record at TCP entry / IP output (cg_pick: the first boundary that
 * sees the payload) with its payload bytes and no stamp, made there and
 * then (rx_unpicked, tx_unpicked), unless a segment of the same socket
 * (receive) or one in a qdisc (send) waits: then it waits behind it, so
 * the records of a connection stay in order. The hooks after those
 * (device queue, driver transmit, copy to the application) search only
 * while something waits for them (tx_seg, rx_drain: a count, never below
 * what waits), so there an unpicked segment costs one or two loads, not
 * even this hash. The send side's TCP entry runs per sendmsg chunk, before
 * the segment exists: see tx_chunk_add. The same function is packet.Picked
 * in Go.
 * With N = 1 every caller's SAMPLING test is false on frozen .rodata and
 * the verifier removes the check. */
static __always_inline bool pkt_pick(__u32 seq_be, __u32 ports_be)
{
	__u32 h = bpf_ntohl(seq_be ^ ports_be); /* seq ^ (sport << 16 | dport) */
	h ^= h >> 16; /* murmur3 fmix32: every input bit moves every output bit */
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h % cfg_sample == 0;
}

/* pkt_pick of the TCP header at p (kernel memory); unreadable: picked (the
 * later boundaries decide, and a stamp nobody asks for is harmless). */
static __always_inline bool pkt_pick_at(const void *p)
{
	__u32 h[2];
	if (bpf_probe_read_kernel(h, sizeof(h), p))
		return true;
	return pkt_pick(h[1], h[0]);
}

static __always_inline bool seq_le(__u32 a, __u32 b)
{
	return (__s32)(a - b) <= 0;
}

/* Tracked = in the connection table and established (-s/-d applied there). */
static __always_inline struct nw_conn *tracked(__u64 sk)
{
	struct nw_conn *c = nw_conn_find(sk);
	if (!c || !c->est_ns)
		return 0;
	return c;
}

/* A packet record before it goes to the ring. */
struct pkt_out {
	__u64 sk;
	__u64 ts;
	__u32 seq;
	__u32 ack;
	__u32 len;
	__u8 rx;
	__u8 http_len; /* bytes of http to copy; 0: the record ends before http */
	__u8 http_cut;
	__u8 _pad;
	__u64 t[4];
};

static __always_inline void pkt_fill(struct nw_pkt_event *e, const struct pkt_out *o,
				     const struct nw_conn *c)
{
	e->type = NW_EV_PACKET;
	e->rx = o->rx;
	e->http_len = 0;
	e->http_cut = 0;
	e->netns = c->netns;
	e->sk = o->sk;
	e->ts = o->ts;
	e->seq = o->seq;
	e->ack = o->ack;
	e->len = o->len;
	e->est_lo = (__u32)c->est_ns;
}

static __always_inline void pkt_fill_t(struct nw_pkt_event *e, const struct pkt_out *o)
{
	e->t[0] = o->t[0];
	e->t[1] = o->t[1];
	e->t[2] = o->t[2];
	e->t[3] = o->t[3];
}

/* The layer from stamp a to stamp b into h (the same rule as Go's Decode:
 * a stamp 0 or stamps out of order: missing). */
static __always_inline void sum_layer(struct nw_layer_hist *h, __u64 a, __u64 b)
{
	if (!a || !b || b < a) {
		h->missing++;
		return;
	}
	__u64 d = b - a;
	__u32 i = nw_log2_u64(d);
	if (i >= NW_SUM_SLOTS)
		i = NW_SUM_SLOTS - 1;
	h->buckets[i]++;
	h->sum_ns += d;
	if (d > h->max_ns)
		h->max_ns = d;
}

/* --summary: the record o into the histograms (per CPU: plain adds; the
 * two directions are separate entries, and each direction's records are
 * made in one context per CPU). */
static __always_inline void sum_pkt(const struct pkt_out *o)
{
	__u32 k = o->rx ? 0 : 1;
	struct nw_pkt_sum *s = bpf_map_lookup_elem(&nw_pkt_summary, &k);
	if (!s)
		return;
	s->segs++;
	s->bytes += o->len;
	if (!cfg_time)
		return;
	if (o->rx) { /* t: link, IP, TCP, copy */
		sum_layer(&s->l[0], o->t[0], o->t[1]);
		sum_layer(&s->l[1], o->t[1], o->t[2]);
		sum_layer(&s->l[2], o->t[2], o->t[3]);
	} else { /* t: TCP, IP, queue, driver */
		sum_layer(&s->l[2], o->t[0], o->t[1]);
		sum_layer(&s->l[1], o->t[1], o->t[2]);
		sum_layer(&s->l[0], o->t[2], o->t[3]);
	}
}

/* Only a segment that may start an HTTP/1.x line carries payload bytes (the
 * full record); every other record is the short form: most segments are not
 * start lines, and 160 bytes less to copy per record is most of its size. */
static __always_inline void emit_pkt(const struct pkt_out *o, const struct nw_conn *c,
				     const __u8 *http)
{
	struct nw_pkt_event *e;
	if (cfg_summary) {
		sum_pkt(o);
		return;
	}
	if (cfg_http && o->http_len && http) {
		e = nw_reserve(&nw_pkt_events, sizeof(struct nw_pkt_event), NW_EV_PACKET);
		if (!e)
			return;
		pkt_fill(e, o, c);
		pkt_fill_t(e, o);
		e->http_len = o->http_len;
		e->http_cut = o->http_cut;
		__builtin_memcpy(e->http, http, NW_HTTP_MAX);
		nw_submit(&nw_pkt_events, e, sizeof(struct nw_pkt_event));
		return;
	}
	if (cfg_time) {
		e = nw_reserve(&nw_pkt_events, PKT_TIMED, NW_EV_PACKET);
		if (!e)
			return;
		pkt_fill(e, o, c);
		pkt_fill_t(e, o);
		nw_submit(&nw_pkt_events, e, PKT_TIMED);
		return;
	}
	e = nw_reserve(&nw_pkt_events, PKT_BASE, NW_EV_PACKET);
	if (!e)
		return;
	pkt_fill(e, o, c);
	nw_submit(&nw_pkt_events, e, PKT_BASE);
}

static __always_inline struct scratch *scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nw_pkt_scratch, &zero);
}

/* Parsed TCP segment as a cgroup_skb program sees it (data = IP header). */
struct seg {
	__u32 seq;
	__u32 ack;
	__u32 len;  /* payload bytes */
	__u32 poff; /* payload offset from the IP header */
};

/* The socket (as a number) of a cgroup_skb segment and the length of its IP
 * header (data starts at the IP header). Two ways, chosen per program
 * variant (a compile-time constant, see the hook table):
 *  kern: bpf_cast_to_kern_ctx (a 6.2+ kfunc) gives the kernel's sk_buff,
 *        whose sk and header offsets are plain loads;
 *  else: the context's own socket, and the IP header read from the packet
 *        (one more bpf_skb_load_bytes; any kernel with cgroup_skb).
 * *kskb (kern only) is the kernel's sk_buff, 0 otherwise. */
static __always_inline bool seg_sock(struct __sk_buff *ctx, bool kern, struct sk_buff **kskb,
				     __u64 *skey, __u32 *iphl)
{
	if (kern) {
		struct sk_buff *k = bpf_cast_to_kern_ctx(ctx);
		struct sock *sk = k->sk;
		if (!sk)
			return false;
		*skey = nw_ptr_num(sk);
		__u16 nh = k->network_header;
		__u16 th = k->transport_header;
		*iphl = (__u32)(__u16)(th - nh);
		*kskb = k;
		return true;
	}
	struct bpf_sock *bsk = ctx->sk;
	if (!bsk)
		return false;
	*skey = nw_ptr_num(bsk);
	*kskb = 0;
	return true;
}

static __always_inline bool ip_hdr_len(struct __sk_buff *ctx, __u32 *iphl)
{
	__u8 vhl = 0;
	if (bpf_skb_load_bytes(ctx, 0, &vhl, 1))
		return false;
	if (vhl >> 4 == 4) {
		*iphl = (__u32)(vhl & 0x0f) * 4;
		return true;
	}
	if (vhl >> 4 == 6) {
		__u8 next = 0;
		if (bpf_skb_load_bytes(ctx, 6, &next, 1) || next != IPPROTO_TCP)
			return false; /* extension headers: no record */
		*iphl = 40;
		return true;
	}
	return false;
}

/* The first 16 bytes of the TCP header at iphl (ports, seq, ack, data
 * offset): read in place when they lie in the skb's linear part (headers
 * the stack built or pulled do), which costs no helper call; else copied. */
static __always_inline bool tcp_head(struct __sk_buff *ctx, __u32 iphl, __u32 h[4])
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	const __u32 *p = data + (iphl & 0xff);
	if ((const void *)(p + 4) <= end) {
		h[0] = p[0];
		h[1] = p[1];
		h[2] = p[2];
		h[3] = p[3];
		return true;
	}
	return !bpf_skb_load_bytes(ctx, iphl & 0xff, h, 16);
}

/* The first payload byte at poff (*b): in place or copied, as tcp_head. */
static __always_inline bool pkt_byte(struct __sk_buff *ctx, __u32 poff, __u8 *b)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	const __u8 *p = data + (poff & 0x3ff);
	if ((const void *)(p + 1) <= end) {
		*b = *p;
		return true;
	}
	return !bpf_skb_load_bytes(ctx, poff & 0x3ff, b, 1);
}

static __always_inline bool parse_skb(struct __sk_buff *ctx, bool kern, __u32 iphl, struct seg *s)
{
	if (!kern && !ip_hdr_len(ctx, &iphl))
		return false;
	if (iphl < 20 || iphl > 255)
		return false;
	__u32 h[4];
	if (!tcp_head(ctx, iphl, h))
		return false;
	__u32 thl = (__u32)(((__u8 *)h)[12] >> 4) * 4;
	if (ctx->len <= iphl + thl)
		return false; /* no payload */
	s->seq = bpf_ntohl(h[1]);
	s->ack = bpf_ntohl(h[2]);
	s->poff = iphl + thl;
	s->len = ctx->len - s->poff;
	return true;
}

/* The segment of a cgroup_skb program, if it carries data of a tracked
 * connection: its socket (*skey, a number), table entry (*c) and headers
 * (*s); *kskb as seg_sock gives it. With the kernel's skb (kern) the
 * headers come first: they are read in place, and most segments of a
 * short connection carry no data (handshake, ACKs, FINs: 16 of 20 skbs
 * under connection churn) and leave before the table is searched (churn,
 * side by side: ~4% and ~7% less per run of the two programs).
 * Without it, finding the IP header costs a helper call, which a socket
 * the table does not have (UDP, untracked) should not pay. */
static __always_inline bool tracked_seg(struct __sk_buff *ctx, bool kern, struct sk_buff **kskb,
					__u64 *skey, struct nw_conn **c, struct seg *s)
{
	__u32 iphl = 0;
	if (!seg_sock(ctx, kern, kskb, skey, &iphl))
		return false;
	if (kern && !parse_skb(ctx, kern, iphl, s))
		return false;
	*c = tracked(*skey);
	if (!*c)
		return false;
	return kern || parse_skb(ctx, kern, iphl, s);
}

/* An HTTP/1.x start line begins with an upper-case letter (or one empty
 * line): only such payloads are kept while a record waits (-t -i). */
static __always_inline bool maybe_http(__u8 c)
{
	return (c >= 'A' && c <= 'Z') || c == '\r' || c == '\n';
}

/* pkt_pick of a cgroup_skb segment (data = IP header), before its socket
 * is looked up: an unpicked segment costs one read of its TCP header (in
 * place, tcp_head). Not a
 * TCP segment with a readable header: not picked (it gets no record).
 * With -i, for an unpicked segment, *http: may its payload start an HTTP
 * line (one more byte read)? Decided here, the first boundary that sees
 * the payload, so an unpicked segment that cannot start one leaves before
 * the connection table is searched. */
static __always_inline bool cg_pick(struct __sk_buff *ctx, bool kern, bool *http)
{
	__u32 iphl = 0;
	if (kern) {
		struct sk_buff *k = bpf_cast_to_kern_ctx(ctx);
		__u16 nh = k->network_header;
		__u16 th = k->transport_header;
		iphl = (__u32)(__u16)(th - nh);
	} else if (!ip_hdr_len(ctx, &iphl)) {
		return false;
	}
	if (iphl < 20 || iphl > 255)
		return false;
	/* ports, seq, ack, data offset */
	__u32 h[4];
	if (!tcp_head(ctx, iphl, h))
		return false;
	if (pkt_pick(h[1], h[0]))
		return true;
	if (cfg_http) {
		__u32 poff = iphl + (__u32)(((__u8 *)h)[12] >> 4) * 4;
		__u8 first = 0;
		*http = ctx->len > poff && pkt_byte(ctx, poff, &first) && maybe_http(first);
	}
	return false;
}

/* Copy up to NW_HTTP_MAX payload bytes into dst; returns bytes copied. */
static __always_inline __u32 load_payload(struct __sk_buff *ctx, const struct seg *s, __u8 *dst)
{
	if (s->len == 0)
		return 0;
	__u64 m = s->len - 1;
	/* clang 14 loses a C-level bound on the way to the call: clamp to
	 * [0, NW_HTTP_MAX-1] in asm so the verifier sees it on this register. */
	asm volatile("if %[m] <= 159 goto +1\n\t%[m] = 159" : [m] "+r"(m));
	if (bpf_skb_load_bytes(ctx, s->poff, dst, m + 1))
		return 0;
	return m + 1;
}

/* The payload bytes to keep for -i: up to NW_HTTP_MAX if the segment may
 * start an HTTP/1.x line, else none (one byte read). */
static __always_inline __u32 http_payload(struct __sk_buff *ctx, const struct seg *s, __u8 *dst)
{
	__u8 first = 0;
	if (s->len == 0 || bpf_skb_load_bytes(ctx, s->poff, &first, 1) || !maybe_http(first))
		return 0;
	return load_payload(ctx, s, dst);
}

/* --sample -i: the record of an unpicked segment that may start an HTTP
 * line, made at once (rx_unpicked, tx_unpicked): no stamp (every layer
 * time missing), its payload bytes read straight into the ring record. A
 * payload that cannot be read leaves http_len 0 (user space ignores the
 * bytes then). */
static __always_inline void emit_untimed(struct __sk_buff *ctx, __u64 sk, const struct nw_conn *c,
					 const struct seg *s, __u8 rx)
{
	if (!cfg_http)
		return;
	struct nw_pkt_event *e = nw_reserve(&nw_pkt_events, sizeof(struct nw_pkt_event), NW_EV_PACKET);
	if (!e)
		return;
	struct pkt_out o = {.sk = sk, .ts = bpf_ktime_get_ns(), .seq = s->seq, .ack = s->ack, .len = s->len, .rx = rx};
	pkt_fill(e, &o, c);
	e->t[0] = 0;
	e->t[1] = 0;
	e->t[2] = 0;
	e->t[3] = 0;
	__u32 n = load_payload(ctx, s, e->http);
	e->http_len = n;
	e->http_cut = s->len > n;
	nw_submit(&nw_pkt_events, e, sizeof(struct nw_pkt_event));
}

#include "packet_rx.h"
#include "packet_tx.h"

/* Connection closing: its send chunks are forgotten (kprobe variant: by
 * socket in nw_pkt_txqh); received segments that never got copied are
 * recorded now (copy missing). */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(nw_pkt_close, const struct sock *sk, int old, int new)
{
	if (!cfg_time || new != TCP_CLOSE)
		return 0;
	if (cfg_txq_hash) {
		__u64 k = nw_ptr_num(sk);
		bpf_map_delete_elem(&nw_pkt_txqh, &k);
	}
	rx_drain((struct sock *)sk, 0, true);
	return 0;
}

/* Make the record types visible in BTF for bpf2go -type. */
const struct nw_pkt_event *nw_unused_pkt_event __attribute__((unused));
const struct tx_pend *nw_unused_tx_pend __attribute__((unused));
const struct nw_pkt_sum *nw_unused_pkt_sum __attribute__((unused));
