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
 */
#include "nw.h"

char LICENSE[] SEC("license") = "GPL";

volatile const bool cfg_time = false; /* -t: stamp boundaries */
volatile const bool cfg_http = false; /* -i: copy payload bytes */
volatile const bool cfg_txq_hash = false; /* TCP entry (send) by kprobe: chunks in nw_pkt_txqh */

#define NW_HTTP_MAX 160
#define RX_RING 512      /* received segments waiting for the copy, per socket (~17 KB) */
#define RX_SLOTS 4       /* -t -i: payload copies waiting, per socket */
#define TX_RING 256      /* sendmsg chunks (write_seq, time), per socket (4 KB) */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_FIN 0x01

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

/* ---- maps ---- */

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
	__u8 _pad[6];
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
	__u32 used;
	struct tx_pend p;
};
struct tx_curs {
	__u32 next;
	__u32 _pad;
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

/* Only a segment that may start an HTTP/1.x line carries payload bytes (the
 * full record); every other record is the short form: most segments are not
 * start lines, and 160 bytes less to copy per record is most of its size. */
static __always_inline void emit_pkt(const struct pkt_out *o, const struct nw_conn *c,
				     const __u8 *http)
{
	struct nw_pkt_event *e;
	if (cfg_http && o->http_len && http) {
		e = nw_reserve_pkt(sizeof(struct nw_pkt_event));
		if (!e)
			return;
		pkt_fill(e, o, c);
		pkt_fill_t(e, o);
		e->http_len = o->http_len;
		e->http_cut = o->http_cut;
		__builtin_memcpy(e->http, http, NW_HTTP_MAX);
		nw_submit_pkt(e, sizeof(struct nw_pkt_event));
		return;
	}
	if (cfg_time) {
		e = nw_reserve_pkt(PKT_TIMED);
		if (!e)
			return;
		pkt_fill(e, o, c);
		pkt_fill_t(e, o);
		nw_submit_pkt(e, PKT_TIMED);
		return;
	}
	e = nw_reserve_pkt(PKT_BASE);
	if (!e)
		return;
	pkt_fill(e, o, c);
	nw_submit_pkt(e, PKT_BASE);
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

static __always_inline bool parse_skb(struct __sk_buff *ctx, bool kern, __u32 iphl, struct seg *s)
{
	if (!kern && !ip_hdr_len(ctx, &iphl))
		return false;
	if (iphl < 20 || iphl > 255)
		return false;
	struct tcphdr t;
	if (bpf_skb_load_bytes(ctx, iphl, &t, sizeof(t)))
		return false;
	__u32 thl = (__u32)t.doff * 4;
	if (ctx->len <= iphl + thl)
		return false; /* no payload */
	s->seq = bpf_ntohl(t.seq);
	s->ack = bpf_ntohl(t.ack_seq);
	s->poff = iphl + thl;
	s->len = ctx->len - s->poff;
	return true;
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

/* An HTTP/1.x start line begins with an upper-case letter (or one empty
 * line): only such payloads are kept while a record waits (-t -i). */
static __always_inline bool maybe_http(__u8 c)
{
	return (c >= 'A' && c <= 'Z') || c == '\r' || c == '\n';
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

/* ================= receive ================= */

/* t[0] link arrival: every packet handed to the stack (checking for TCP here
 * would cost more than the stamp). */
SEC("tp_btf/netif_receive_skb")
int BPF_PROG(nw_pkt_rx_mac, struct sk_buff *skb)
{
	if (!cfg_time)
		return 0;
	__u32 zero = 0;
	struct rx_curs *rc = bpf_map_lookup_elem(&nw_pkt_rxcur, &zero);
	if (!rc)
		return 0;
	struct rx_cur *e = &rc->e[rc->next & (RX_CUR - 1)];
	rc->next++;
	e->skb = (__u64)skb;
	e->mac = bpf_ktime_get_ns();
	e->ip = 0;
	return 0;
}

/* t[1] IP entry (netfilter PRE_ROUTING, attached in every netns). */
SEC("netfilter")
int nw_pkt_rx_ip(struct bpf_nf_ctx *ctx)
{
	__u32 zero = 0;
	struct rx_curs *rc = bpf_map_lookup_elem(&nw_pkt_rxcur, &zero);
	if (!rc)
		return 1;
	struct rx_cur *e = rx_find(rc, (__u64)ctx->skb);
	if (e)
		e->ip = bpf_ktime_get_ns();
	return 1; /* NF_ACCEPT */
}

/* t[1] IP entry without netfilter links (before 6.4): ip_rcv_core (IPv4)
 * and ip6_rcv_core (IPv6), the first step of ip_rcv/ip_list_rcv and
 * ipv6_rcv/ipv6_list_rcv, host-wide (every netns), still in the softirq
 * pass of the link hook. */
SEC("kprobe/ip_rcv_core")
int BPF_KPROBE(nw_pkt_rx_ip_kp, struct sk_buff *skb)
{
	if (!cfg_time)
		return 0;
	__u32 zero = 0;
	struct rx_curs *rc = bpf_map_lookup_elem(&nw_pkt_rxcur, &zero);
	if (!rc)
		return 0;
	struct rx_cur *e = rx_find(rc, (__u64)skb);
	if (e)
		e->ip = bpf_ktime_get_ns();
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

/* t[2] TCP entry: tcp_filter() runs cgroup ingress programs for each segment
 * before the socket backlog (the backlog may merge segments). */
static __always_inline int rx_tcp(struct __sk_buff *ctx, bool kern)
{
	struct sk_buff *kskb;
	__u64 skey;
	__u32 iphl = 0;
	__u64 t[3] = {};
	if (!seg_sock(ctx, kern, &kskb, &skey, &iphl))
		return 1;
	struct nw_conn *c = tracked(skey);
	if (!c)
		return 1;
	struct seg s = {};
	if (!parse_skb(ctx, kern, iphl, &s))
		return 1;
	t[2] = bpf_ktime_get_ns();
	if (cfg_time) {
		__u32 zero = 0;
		struct rx_curs *rc = bpf_map_lookup_elem(&nw_pkt_rxcur, &zero);
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
	if (!cfg_time) {
		emit_rx_now(ctx, skey, c, &s, t);
		return 1;
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
		nw_count(NW_STAT_PKT_MAP_FULL);
		emit_rx_now(ctx, skey, c, &s, t);
		return 1;
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
	if (full) {
		/* Queue full (the application does not read): record now, copy time missing. */
		nw_count(NW_STAT_PKT_MAP_FULL);
		emit_rx_now(ctx, skey, c, &s, t);
	}
	return 1;
}


SEC("cgroup_skb/ingress")
int nw_pkt_rx_tcp(struct __sk_buff *ctx)
{
	return rx_tcp(ctx, true);
}

/* Without bpf_cast_to_kern_ctx (before 6.2). */
SEC("cgroup_skb/ingress")
int nw_pkt_rx_tcp_ctx(struct __sk_buff *ctx)
{
	return rx_tcp(ctx, false);
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
	struct pkt_out o = {
		.sk = pc->sk, .ts = pc->now, .seq = en.seq, .ack = en.ack, .len = en.len, .rx = 1,
		.t = {rx_undist(en.t2, en.d[0]), rx_undist(en.t2, en.d[1]), en.t2, pc->flush ? 0 : pc->now},
	};
	if (cfg_http && en.slot < RX_SLOTS) {
		o.http_len = hlen > NW_HTTP_MAX ? NW_HTTP_MAX : hlen;
		o.http_cut = hcut;
	}
	emit_pkt(&o, pc->c, sc->http);
	return 0;
}

/* t[3] copy to the application (process context, socket lock held). The
 * kernel copies from coalesced skbs, so match by sequence range: the copy
 * covers [copied_seq, copied_seq + len). */
SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(nw_pkt_rx_copy, const struct sk_buff *skb, int len)
{
	if (!cfg_time || len <= 0)
		return 0;
	struct sock *sk = skb->sk; /* BTF pointer, as sk storage wants */
	if (!sk)
		return 0;
	struct rx_ring *q = bpf_sk_storage_get(&nw_pkt_rxq, sk, 0, 0);
	if (!q || READ_ONCE_U32(q->head) == READ_ONCE_U32(q->tail))
		return 0; /* nothing waits (a racy peek is fine: producers run
			   * before the data is queued to the socket) */
	__u64 skey = nw_ptr_num(sk);
	struct nw_conn *c = nw_conn_find(skey);
	if (!c)
		return 0;
	const struct tcp_sock *tp = (const void *)sk;
	struct pop_ctx pc = {
		.q = q, .c = c, .sk = skey,
		.copy_end = BPF_CORE_READ(tp, copied_seq) + (__u32)len,
		.now = bpf_ktime_get_ns(),
	};
	bpf_loop(RX_RING, pop_one, &pc, 0);
	return 0;
}

/* t[3] for data the application takes without a user copy (splice,
 * tcp_read_sock users): tcp_rcv_space_adjust() runs after copied_seq moved,
 * at the end of tcp_recvmsg and of tcp_read_sock. Completes what the copy
 * tracepoint above did not see. */
SEC("tp_btf/tcp_rcv_space_adjust")
int BPF_PROG(nw_pkt_rx_consumed, struct sock *sk)
{
	if (!cfg_time)
		return 0;
	struct rx_ring *q = bpf_sk_storage_get(&nw_pkt_rxq, sk, 0, 0);
	if (!q || READ_ONCE_U32(q->head) == READ_ONCE_U32(q->tail))
		return 0; /* usually: the copy hook already completed everything */
	__u64 skey = nw_ptr_num(sk);
	struct nw_conn *c = nw_conn_find(skey);
	if (!c)
		return 0;
	const struct tcp_sock *tp = (const void *)sk;
	struct pop_ctx pc = {
		.q = q, .c = c, .sk = skey,
		.copy_end = BPF_CORE_READ(tp, copied_seq),
		.now = bpf_ktime_get_ns(),
	};
	bpf_loop(RX_RING, pop_one, &pc, 0);
	return 0;
}

/* Connection closing: what never got copied is recorded now (copy missing). */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(nw_pkt_close, const struct sock *sk, int old, int new)
{
	if (!cfg_time || new != NW_TCP_CLOSE)
		return 0;
	if (cfg_txq_hash) {
		__u64 k = nw_ptr_num(sk);
		bpf_map_delete_elem(&nw_pkt_txqh, &k);
	}
	struct rx_ring *q = bpf_sk_storage_get(&nw_pkt_rxq, (struct sock *)sk, 0, 0);
	if (!q)
		return 0;
	__u64 skey = nw_ptr_num(sk);
	struct nw_conn *c = nw_conn_find(skey);
	if (!c)
		return 0;
	struct pop_ctx pc = {.q = q, .c = c, .sk = skey, .flush = true, .now = bpf_ktime_get_ns()};
	bpf_loop(RX_RING, pop_one, &pc, 0);
	return 0;
}

/* ================= send ================= */

/* Append a chunk that starts at write_seq seq, entering TCP now. */
static __always_inline void tx_chunk_add(struct tx_ring *q, __u32 seq)
{
	__u64 now = bpf_ktime_get_ns();
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
		nw_count(NW_STAT_PKT_MAP_FULL);
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
	if (!tracked(nw_ptr_num(sk)))
		return 0;
	struct tx_ring *q = bpf_sk_storage_get(&nw_pkt_txq, (struct sock *)sk, 0,
					       BPF_SK_STORAGE_GET_F_CREATE);
	if (!q) {
		nw_count(NW_STAT_PKT_MAP_FULL);
		return 0;
	}
	tx_chunk_add(q, BPF_CORE_READ((const struct tcp_sock *)sk, write_seq));
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
	tx_chunk_add(q, BPF_CORE_READ((const struct tcp_sock *)sk, write_seq));
	return 0;
full:
	nw_count(NW_STAT_PKT_MAP_FULL);
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

static __always_inline struct tx_curs *tx_ring(void)
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
	e->used = 1;
	e->p.ack = 0;
	e->p.len = 0;
	e->p.http_len = 0;
	e->p.http_cut = 0;
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
	struct tx_curs *tc = tx_ring();
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

/* p holds the record's values; with ctx/s (no -t: at once from the egress
 * hook) the payload is read from the skb, else it is p->http. */
static __always_inline void emit_tx(__u64 sk, const struct nw_conn *c, __u32 seq,
				    const struct tx_pend *p, struct __sk_buff *ctx,
				    const struct seg *s)
{
	struct pkt_out o = {
		.sk = sk, .ts = bpf_ktime_get_ns(), .seq = seq, .ack = p->ack, .len = p->len, .rx = 0,
		.t = {p->t[0], p->t[1], p->t[2], p->t[3]},
	};
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

/* Every skb TCP sends, in every netns (ip_finish_output()). Without -t the
 * record is made here; with -t it waits for the driver transmit. */
static __always_inline int tx_out(struct __sk_buff *ctx, bool kern)
{
	struct sk_buff *kskb;
	__u64 skey;
	__u32 iphl = 0;
	if (!seg_sock(ctx, kern, &kskb, &skey, &iphl))
		return 1;
	struct nw_conn *c = tracked(skey);
	if (!c)
		return 1;
	struct seg s = {};
	if (!parse_skb(ctx, kern, iphl, &s))
		return 1;
	if (!cfg_time) {
		struct tx_pend p = {.ack = s.ack, .len = s.len};
		emit_tx(skey, c, s.seq, &p, ctx, &s);
		return 1;
	}
	struct tx_curs *tc = tx_ring();
	if (!tc)
		return 1;
	struct tx_cur *e = tx_find(tc, skey, s.seq);
	if (!e)
		e = tx_new(tc, skey, s.seq); /* IP entry not seen (no netfilter link in this netns yet) */
	struct tx_pend *p = &e->p;
	p->ack = s.ack;
	p->len = s.len;
	p->t[0] = tx_entry_time(ctx, skey, s.seq);
	if (cfg_http) {
		p->http_len = http_payload(ctx, &s, p->http);
		p->http_cut = s.len > p->http_len;
	}
	return 1;
}

SEC("cgroup_skb/egress")
int nw_pkt_tx_out(struct __sk_buff *ctx)
{
	return tx_out(ctx, true);
}

/* Without bpf_cast_to_kern_ctx (before 6.2). */
SEC("cgroup_skb/egress")
int nw_pkt_tx_out_ctx(struct __sk_buff *ctx)
{
	return tx_out(ctx, false);
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

/* t[2] device queue. */
SEC("tp_btf/net_dev_queue")
int BPF_PROG(nw_pkt_tx_queue, struct sk_buff *skb)
{
	if (!cfg_time)
		return 0;
	struct tx_key k = {};
	if (!tx_key_of(skb, &k))
		return 0;
	struct tx_curs *tc = tx_ring();
	if (!tc)
		return 0;
	struct tx_cur *e = tx_find(tc, k.sk, k.seq);
	if (!e)
		return 0;
	if (!e->p.len) {
		/* stamped at IP entry but TCP never filled it in: not a data
		 * segment of a tracked connection after all */
		e->used = 0;
		return 0;
	}
	if (!e->p.t[2])
		e->p.t[2] = bpf_ktime_get_ns();
	if (txq_queues(skb)) {
		if (bpf_map_update_elem(&nw_pkt_txpend, &k, &e->p, BPF_ANY))
			nw_count(NW_STAT_PKT_MAP_FULL);
		e->used = 0;
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
	if (!tx_key_of(skb, &k))
		return 0;
	struct tx_curs *tc = tx_ring();
	if (!tc)
		return 0;
	struct tx_cur *e = tx_find(tc, k.sk, k.seq);
	if (e) {
		e->used = 0;
		if (!e->p.len)
			return 0;
		struct nw_conn *c = nw_conn_find(k.sk);
		if (c) {
			e->p.t[3] = bpf_ktime_get_ns();
			emit_tx(k.sk, c, k.seq, &e->p, 0, 0);
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
		emit_tx(k.sk, c, k.seq, p, 0, 0);
	}
	bpf_map_delete_elem(&nw_pkt_txpend, &k);
	return 0;
}

/* Make the record types visible in BTF for bpf2go -type. */
const struct nw_pkt_event *nw_unused_pkt_event __attribute__((unused));
const struct tx_pend *nw_unused_tx_pend __attribute__((unused));
