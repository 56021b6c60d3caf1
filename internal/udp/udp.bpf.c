//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * -u: UDP flows host-wide (every netns, v4/v6), and with -t one record per
 * datagram with its layer times.
 *
 * Flows (always with -u). A flow is (local socket, remote address, remote
 * port): an unconnected socket talks to many peers, each its own flow. The
 * socket is keyed by its cookie (bpf_get_socket_cookie: never reused, unlike
 * the socket's address); the record carries the address too (`sock`).
 * nw_udp_flows (hash, allocated per flow, sized by --max-conns) holds the
 * counters; user space reads it every --interval, prints the flows that
 * changed, and removes flows idle for a while (internal/udp).
 *
 *   cgroup_skb ingress on the cgroup v2 root (every netns): UDP calls it in
 *     udp_queue_rcv_one_skb (sk_filter) for the socket that gets the
 *     datagram, after IP reassembly: one call per datagram, the whole
 *     datagram. Softirq: the owner is not the current task there; it comes
 *     from nw_udp_owner (below).
 *   cgroup_skb egress (ip_finish_output, before fragmentation).
 *   sock/sock_recv_length, sock/sock_send_length (6.3+, process context,
 *     the end of every recvmsg/sendmsg): the process, in nw_udp_owner by
 *     socket cookie; a flow takes it at its next datagram, and user space
 *     takes the socket's latest owner for each record it prints. Before
 *     6.3: kprobes at the entry of udp_recvmsg/udp_sendmsg (and v6) where
 *     the kernel has kprobes; else the sender is the current task at
 *     egress (cfg_owner_egress, where cgroup_skb may call
 *     bpf_get_current_pid_tgid: 6.10+, i.e. never in practice) and the
 *     owner is unknown.
 * A UDP_SEGMENT (GSO) send or a UDP_GRO receive is one skb of several
 * datagrams: it counts gso_segs datagrams and all their payload.
 *
 * Per datagram with -t (cfg_time), records on the packet ring:
 *   receive: t[0] link arrival   net/netif_receive_skb   (per-CPU ring by skb)
 *            t[1] IP entry       netfilter PRE_ROUTING    (per netns, same ring)
 *            t[2] UDP entry      cgroup_skb ingress       (-> the socket's FIFO)
 *            t[3] copy to app    sock/sock_recv_length    (head of the FIFO)
 *   send:    t[0] UDP entry      not observed (no udp_sendmsg tracepoint,
 *                                no kprobes here): udp_time is missing
 *            t[1] IP entry       netfilter LOCAL_OUT      (nw_udp_txpend by skb)
 *            t[2] device queue   net/net_dev_queue
 *            t[3] driver xmit    net/net_dev_start_xmit   (the record)
 * A stamp of 0 is "not seen". The UDP receive queue is FIFO, so the n-th
 * datagram the socket's recvmsg returns is the n-th that passed its ingress
 * hook, unless one was dropped in between (receive buffer full, bad
 * checksum): skb/kfree_skb names the socket of such a drop (rx_sk, 6.11+)
 * and its entry leaves the FIFO; before 6.11 see the README for the limit.
 *
 * skb/kfree_skb (rx_sk, 6.11+): a datagram dropped for a UDP socket counts
 * in its flow's rx_drops.
 */
#include "nw.h"

char LICENSE[] SEC("license") = "GPL";

volatile const bool cfg_time = false; /* -t: per-datagram records */
volatile const bool cfg_rx_sk = false; /* skb/kfree_skb has rx_sk (6.11+) */
/* No sock_send_length tracepoint (before 6.3): the sender's owner is the
 * current task at egress (process context for UDP's own sends; not for a
 * datagram an NFQUEUE daemon reinjects or async IPsec resumes). */
volatile const bool cfg_owner_egress = false;
/* -t: the recvmsg hook (udp/rx-copy) exists: received datagrams wait for it
 * in their socket's FIFO; else they are recorded at UDP entry. */
volatile const bool cfg_rx_copy = false;
/* The task helpers the cgroup_skb (skb_*) and netfilter (nf_*) programs may
 * call on this kernel (kernel.TaskHelpers: bpf_get_current_pid_tgid 6.10+,
 * bpf_get_current_comm later); without them the owner comes from the
 * process-context hooks only (nw_owner_current_if). */
volatile const bool cfg_skb_pid = false;
volatile const bool cfg_skb_comm = false;
volatile const bool cfg_nf_pid = false;
volatile const bool cfg_nf_comm = false;

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

#define MSG_PEEK 2

/* nw_udp_flows key. */
struct nw_udp_key {
	__u64 cookie;    /* socket cookie */
	__u8 raddr[16];  /* remote address (v4: first 4 bytes) */
	__u16 rport;     /* remote port, host order */
	__u16 family;    /* of the datagrams (a v6 socket may talk v4) */
	__u32 _pad;
};

/* nw_udp_flows value: counters since the flow's first datagram. */
struct nw_udp_flow {
	__u64 sk;        /* socket address */
	__u64 first_ns;
	__u64 last_ns;
	__u64 rx_dgrams;
	__u64 rx_bytes;  /* payload bytes */
	__u64 tx_dgrams;
	__u64 tx_bytes;
	__u64 rx_drops;  /* datagrams the kernel dropped for the socket (6.11+) */
	__u32 netns;
	__u16 lport;     /* local port, host order */
	__u16 _pad;
	__u8 laddr[16];  /* local address as the datagrams carry it */
	struct nw_owner owner;
};

/* NW_EV_UDP: one datagram (-t). */
struct nw_udp_event {
	struct nw_hdr hdr;
	__u64 t[4];      /* boundary stamps, see top; 0 = not seen */
	__u32 len;       /* payload bytes */
	__u8 rx;
	__u8 _pad;
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 dgrams;    /* datagrams in the skb (GSO/GRO), 1 usually */
	__u16 _pad2;
	__u8 laddr[16];
	__u8 raddr[16];
	struct nw_owner owner;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* ~170 bytes per flow, allocated at its first datagram */
	__uint(max_entries, 131072);          /* sized by the loader (--max-conns) */
	__type(key, struct nw_udp_key);
	__type(value, struct nw_udp_flow);
} nw_udp_flows SEC(".maps");

/* Owner of each UDP socket seen in process context, by cookie. LRU: a
 * closed socket's entry goes when room is needed (its cookie never comes
 * back). 32768 sockets, ~3 MiB preallocated. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u64);
	__type(value, struct nw_owner);
} nw_udp_owner SEC(".maps");

struct owner_last {
	__u64 cookie;
	__u32 pid;
	__u32 _pad;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct owner_last);
} nw_udp_owner_last SEC(".maps");

/* ---- the datagram as a cgroup_skb program sees it (data = IP header) ---- */

struct dgram {
	__u16 family;
	__u16 sport;    /* as in the UDP header, host order */
	__u16 dport;
	__u16 segs;     /* datagrams */
	__u32 len;      /* payload bytes */
	__u8 saddr[16];
	__u8 daddr[16];
};

/* The headers of a cgroup_skb datagram (data = IP header) in one packet
 * read: an IPv4 header without options and the UDP ports are the first 28
 * bytes of the smallest IPv4 datagram, an IPv6 header and the ports the
 * first 44 of the smallest IPv6 one (measured: one read instead of five
 * took ~80 ns off each datagram). IPv4 options: one more read. */
#define NW_ETH_P_IP 0x0800
#define NW_ETH_P_IPV6 0x86DD
static __always_inline bool parse_dgram(struct __sk_buff *ctx, struct dgram *d)
{
	__u8 h[44];
	__u32 iphl;
	if (ctx->protocol == bpf_htons(NW_ETH_P_IP)) {
		if (bpf_skb_load_bytes(ctx, 0, h, 28) || h[9] != IPPROTO_UDP || h[0] >> 4 != 4)
			return false;
		iphl = (__u32)(h[0] & 0x0f) * 4;
		d->family = AF_INET;
		__builtin_memcpy(d->saddr, &h[12], 4);
		__builtin_memcpy(d->daddr, &h[16], 4);
		if (iphl == 20) {
			d->sport = bpf_ntohs(*(__u16 *)&h[20]);
			d->dport = bpf_ntohs(*(__u16 *)&h[22]);
		} else {
			__u16 ports[2];
			if (iphl < 20 || bpf_skb_load_bytes(ctx, iphl, ports, 4))
				return false;
			d->sport = bpf_ntohs(ports[0]);
			d->dport = bpf_ntohs(ports[1]);
		}
	} else if (ctx->protocol == bpf_htons(NW_ETH_P_IPV6)) {
		/* extension headers: not counted */
		if (bpf_skb_load_bytes(ctx, 0, h, 44) || h[6] != IPPROTO_UDP)
			return false;
		iphl = 40;
		d->family = AF_INET6;
		__builtin_memcpy(d->saddr, &h[8], 16);
		__builtin_memcpy(d->daddr, &h[24], 16);
		d->sport = bpf_ntohs(*(__u16 *)&h[40]);
		d->dport = bpf_ntohs(*(__u16 *)&h[42]);
	} else {
		return false;
	}
	__u32 l = ctx->len;
	d->len = l > iphl + 8 ? l - iphl - 8 : 0;
	d->segs = 1;
	if (ctx->gso_size && ctx->gso_segs > 1)
		d->segs = ctx->gso_segs;
	return true;
}

/* The UDP socket of a cgroup_skb datagram, as a number; 0 for any other
 * socket. kern: through the kernel's sk_buff (6.2+), else
 * through the context (see internal/packet's seg_sock). */
static __always_inline __u64 udp_sock(struct __sk_buff *ctx, bool kern)
{
	if (kern) {
		struct sk_buff *k = bpf_cast_to_kern_ctx(ctx);
		struct sock *sk = k->sk;
		if (!sk)
			return 0;
		/* request and timewait sockets (TCP) end after sock_common */
		__u8 st = sk->__sk_common.skc_state;
		if (st == TCP_NEW_SYN_RECV || st == TCP_TIME_WAIT)
			return 0;
		if (sk->sk_protocol != IPPROTO_UDP || sk->sk_type != 2 /* SOCK_DGRAM */)
			return 0;
		__u16 fam = sk->__sk_common.skc_family;
		if (fam != AF_INET && fam != AF_INET6)
			return 0;
		return nw_ptr_num(sk);
	}
	struct bpf_sock *bsk = ctx->sk;
	if (!bsk)
		return 0;
	bsk = bpf_sk_fullsock(bsk);
	if (!bsk || bsk->protocol != IPPROTO_UDP || bsk->type != 2 || (bsk->family != AF_INET && bsk->family != AF_INET6))
		return 0;
	return nw_ptr_num(bsk);
}

static __always_inline void owner_note(__u64 cookie, struct nw_owner *o)
{
	bpf_map_update_elem(&nw_udp_owner, &cookie, o, BPF_ANY);
}

/* Count a datagram in its flow (created at its first datagram, when the
 * socket's namespace is read); returns the flow's namespace (0: no flow). */
static __always_inline __u32 flow_add(struct __sk_buff *ctx, bool rx, __u64 sk, const struct dgram *d, __u64 now)
{
	struct nw_udp_key key = {};
	const __u8 *laddr = rx ? d->daddr : d->saddr;
	const __u8 *raddr = rx ? d->saddr : d->daddr;
	__u16 lport = rx ? d->dport : d->sport;
	key.cookie = bpf_get_socket_cookie(ctx);
	key.rport = rx ? d->sport : d->dport;
	key.family = d->family;
	__builtin_memcpy(key.raddr, raddr, 16);
	__u32 pid = !rx && cfg_owner_egress && cfg_skb_pid ? bpf_get_current_pid_tgid() >> 32 : 0;

	struct nw_udp_flow *f = bpf_map_lookup_elem(&nw_udp_flows, &key);
	if (!f) {
		struct nw_udp_flow n = {};
		n.sk = sk;
		n.first_ns = now;
		n.netns = nw_sk_netns((const struct sock *)sk, false);
		n.lport = lport;
		__builtin_memcpy(n.laddr, laddr, 16);
		if (pid) {
			nw_owner_current_if(&n.owner, NW_OWNER_IO, cfg_skb_pid, cfg_skb_comm);
			owner_note(key.cookie, &n.owner);
		} else {
			struct nw_owner *o = bpf_map_lookup_elem(&nw_udp_owner, &key.cookie);
			if (o)
				n.owner = *o;
		}
		if (bpf_map_update_elem(&nw_udp_flows, &key, &n, BPF_NOEXIST)) {
			f = bpf_map_lookup_elem(&nw_udp_flows, &key);
			if (!f) {
				nw_count(NW_STAT_UDP_FLOW_FULL);
				return n.netns;
			}
		} else {
			f = bpf_map_lookup_elem(&nw_udp_flows, &key);
			if (!f)
				return n.netns;
		}
	}
	if (!f->owner.pid && !pid) {
		/* until the socket's first send or receive returned */
		struct nw_owner *o = bpf_map_lookup_elem(&nw_udp_owner, &key.cookie);
		if (o)
			f->owner = *o;
	}
	if (rx) {
		__sync_fetch_and_add(&f->rx_dgrams, d->segs);
		__sync_fetch_and_add(&f->rx_bytes, d->len);
	} else {
		__sync_fetch_and_add(&f->tx_dgrams, d->segs);
		__sync_fetch_and_add(&f->tx_bytes, d->len);
		if (pid && f->owner.pid != pid) {
			/* another process sends on the socket now (fork, passed fd) */
			nw_owner_current_if(&f->owner, NW_OWNER_IO, cfg_skb_pid, cfg_skb_comm);
			owner_note(key.cookie, &f->owner);
		}
	}
	f->last_ns = now;
	return f->netns;
}

/* ---- -t, receive ---- */

/* link/IP stamps by skb pointer, between netif_receive_skb and UDP entry:
 * one softirq pass on one CPU, so a small per-CPU ring (as internal/packet
 * does for TCP): no hashing, no lock. A datagram pushed out of the ring
 * before its UDP entry has no link/IP stamp (reported missing). */
#define RX_CUR 16
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
} nw_udp_rxcur SEC(".maps");

static __always_inline struct rx_curs *rx_ring(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nw_udp_rxcur, &zero);
}

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

/* Per-socket FIFO of datagrams that passed UDP entry and wait for a
 * recvmsg (sk storage: freed with the socket; charged to its option
 * memory, net.core.optmem_max, so it stays small: 32 x 72 bytes). */
#define RXQ 32
struct rxq_ent {
	__u64 skb;      /* receive: the skb (a drop after UDP entry removes it); 0: dropped */
	__u64 t[3];
	__u32 len;
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 dgrams;
	__u32 netns;
	__u8 laddr[16];
	__u8 raddr[16];
};
struct rxq {
	struct bpf_spin_lock lock; /* producers: softirq on any CPU; consumer: recvmsg */
	__u32 head;
	__u32 tail;
	__u32 _pad;
	struct rxq_ent e[RXQ];
};
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct rxq);
} nw_udp_rxq SEC(".maps");

/* Scratch for one queue entry (the programs' stacks are short). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rxq_ent);
} nw_udp_scratch SEC(".maps");

static __always_inline void emit_dgram(const struct rxq_ent *en, __u64 sk, bool rx, __u64 t3,
				       const struct nw_owner *o)
{
	struct nw_udp_event *e = nw_reserve(&nw_pkt_events, sizeof(*e), NW_EV_UDP);
	if (!e)
		return;
	e->hdr.type = NW_EV_UDP;
	e->hdr.netns = en->netns;
	e->hdr.ts = bpf_ktime_get_ns();
	e->hdr.sk = sk;
	e->t[0] = en->t[0];
	e->t[1] = en->t[1];
	e->t[2] = en->t[2];
	e->t[3] = t3;
	e->len = en->len;
	e->rx = rx;
	e->family = en->family;
	e->lport = en->lport;
	e->rport = en->rport;
	e->dgrams = en->dgrams;
	__builtin_memcpy(e->laddr, en->laddr, 16);
	__builtin_memcpy(e->raddr, en->raddr, 16);
	if (o)
		e->owner = *o;
	else
		__builtin_memset(&e->owner, 0, sizeof(e->owner));
	nw_submit(&nw_pkt_events, e, sizeof(*e));
}

static __always_inline void rx_keep(struct __sk_buff *ctx, bool kern, __u64 sk, __u32 netns,
				    const struct dgram *d, __u64 now)
{
	__u32 zero = 0;
	struct rxq_ent *en = bpf_map_lookup_elem(&nw_udp_scratch, &zero);
	if (!en)
		return;
	en->t[0] = en->t[1] = 0;
	en->t[2] = now;
	__u64 skb;
	if (kern)
		skb = nw_ptr_num(bpf_cast_to_kern_ctx(ctx));
	else
		skb = nw_ptr_num(ctx); /* the context is the kernel's sk_buff */
	en->skb = skb;
	struct rx_curs *rc = rx_ring();
	if (rc) {
		struct rx_cur *c = rx_find(rc, skb);
		if (c) {
			en->t[0] = c->mac;
			en->t[1] = c->ip;
			c->skb = 0;
		}
	}
	en->len = d->len;
	en->family = d->family;
	en->lport = d->dport;
	en->rport = d->sport;
	en->dgrams = d->segs;
	en->netns = netns;
	__builtin_memcpy(en->laddr, d->daddr, 16);
	__builtin_memcpy(en->raddr, d->saddr, 16);

	__u64 cookie;
	if (!cfg_rx_copy) {
		/* no recvmsg hook on this kernel: recorded now, copy time missing */
		cookie = bpf_get_socket_cookie(ctx);
		emit_dgram(en, sk, true, 0, bpf_map_lookup_elem(&nw_udp_owner, &cookie));
		return;
	}
	struct bpf_sock *bsk = ctx->sk;
	if (bsk)
		bsk = bpf_sk_fullsock(bsk);
	struct rxq *q = 0;
	if (bsk)
		q = bpf_sk_storage_get(&nw_udp_rxq, bsk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	bool full = !q;
	if (q) {
		bpf_spin_lock(&q->lock);
		if (q->tail - q->head >= RXQ) {
			full = true;
		} else {
			q->e[q->tail & (RXQ - 1)] = *en;
			q->tail++;
		}
		bpf_spin_unlock(&q->lock);
	}
	if (full) {
		/* the application does not read (or no room for a queue):
		 * recorded now, copy time missing, the socket's owner as
		 * last seen in process context */
		nw_count(NW_STAT_UDP_RX_UNREAD);
		cookie = bpf_get_socket_cookie(ctx);
		emit_dgram(en, sk, true, 0, bpf_map_lookup_elem(&nw_udp_owner, &cookie));
	}
}

/* t[0] link arrival of every UDP packet (one header read per packet). */
SEC("tp_btf/netif_receive_skb")
int BPF_PROG(nw_udp_rx_link, struct sk_buff *skb)
{
	if (!cfg_time)
		return 0;
	/* skb->data is the network header here */
	__u8 b[10];
	if (bpf_probe_read_kernel(b, sizeof(b), skb->data))
		return 0;
	if (!((b[0] >> 4 == 4 && b[9] == IPPROTO_UDP) || (b[0] >> 4 == 6 && b[6] == IPPROTO_UDP)))
		return 0;
	struct rx_curs *rc = rx_ring();
	if (!rc)
		return 0;
	struct rx_cur *e = &rc->e[rc->next & (RX_CUR - 1)];
	rc->next++;
	e->skb = (__u64)skb;
	e->mac = bpf_ktime_get_ns();
	e->ip = 0;
	return 0;
}

/* t[1] IP entry (netfilter PRE_ROUTING, in every netns). */
SEC("netfilter")
int nw_udp_rx_ip(struct bpf_nf_ctx *ctx)
{
	struct rx_curs *rc = rx_ring();
	if (!rc)
		return 1;
	struct rx_cur *e = rx_find(rc, (__u64)ctx->skb);
	if (e)
		e->ip = bpf_ktime_get_ns();
	return 1; /* NF_ACCEPT */
}

/* The UDP socket of a cgroup_skb datagram the filters want (-s/-d/-S/-D
 * name the local and the remote end: on receive the destination and the
 * source), with the datagram parsed into d; 0 to skip it. */
static __always_inline __u64 wanted_dgram(struct __sk_buff *ctx, bool kern, bool rx, struct dgram *d)
{
	__u64 sk = udp_sock(ctx, kern);
	if (!sk || !parse_dgram(ctx, d))
		return 0;
	if (rx ? !nw_ports_wanted(d->dport, d->sport) || !nw_addrs_wanted(d->family, d->daddr, d->saddr)
	       : !nw_ports_wanted(d->sport, d->dport) || !nw_addrs_wanted(d->family, d->saddr, d->daddr))
		return 0;
	return sk;
}

/* UDP entry: flows; with -t, t[2] and the wait for recvmsg. */
NW_CTX_TWINS("cgroup_skb/ingress", struct __sk_buff, nw_udp_rx, true, nw_udp_rx_ctx, false, kern)
{
	struct dgram d = {};
	__u64 sk = wanted_dgram(ctx, kern, true, &d);
	if (!sk)
		return 1;
	__u64 now = bpf_ktime_get_ns();
	__u32 netns = flow_add(ctx, true, sk, &d, now);
	if (cfg_time)
		rx_keep(ctx, kern, sk, netns, &d, now);
	return 1;
}

/* t[3]: recvmsg returned a datagram (process context): the head of the
 * socket's FIFO; the current task is the owner. */
SEC("tp_btf/sock_recv_length")
int BPF_PROG(nw_udp_rx_copy, struct sock *sk, int ret, int flags)
{
	if (!cfg_time || ret < 0 || (flags & MSG_PEEK))
		return 0;
	if (sk->sk_protocol != IPPROTO_UDP)
		return 0;
	struct rxq *q = bpf_sk_storage_get(&nw_udp_rxq, sk, 0, 0);
	if (!q)
		return 0;
	__u32 zero = 0;
	struct rxq_ent *en = bpf_map_lookup_elem(&nw_udp_scratch, &zero);
	if (!en)
		return 0;
	bool got = false;
	bpf_spin_lock(&q->lock);
	/* the oldest datagram not dropped since its UDP entry */
	for (int i = 0; i < RXQ && q->head != q->tail; i++) {
		struct rxq_ent *h = &q->e[q->head & (RXQ - 1)];
		q->head++;
		if (h->skb) {
			*en = *h;
			got = true;
			break;
		}
	}
	bpf_spin_unlock(&q->lock);
	if (!got)
		return 0;
	struct nw_owner o = {};
	nw_owner_current(&o, NW_OWNER_IO);
	emit_dgram(en, nw_ptr_num(sk), true, bpf_ktime_get_ns(), &o);
	return 0;
}

/* A datagram the kernel dropped for a UDP socket (receive buffer full,
 * bad checksum, socket filter, ...): kfree_skb names the socket (rx_sk,
 * 6.11+). It counts in the flow's rx_drops; with -t its entry leaves the
 * socket's FIFO, so that the next recvmsg is matched with the next
 * datagram. Before 6.11 (no rx_sk) drops are not counted, and such a drop
 * shifts the socket's later receive records by one until its FIFO empties
 * (README). */
SEC("tp_btf/kfree_skb")
int BPF_PROG(nw_udp_rx_drop, struct sk_buff *skb, void *location, int reason)
{
	if (!cfg_rx_sk)
		return 0;
	struct sock *sk = (struct sock *)ctx[3];
	if (!sk || sk->sk_protocol != IPPROTO_UDP)
		return 0;
	struct nw_udp_key key = {};
	struct nw_skb_ip ip = {};
	__u8 daddr[16];
	if (!nw_skb_ip(skb, &ip, key.raddr, daddr, true) && ip.proto == IPPROTO_UDP && !ip.later_frag) {
		__u16 sport = 0;
		if (!bpf_probe_read_kernel(&sport, sizeof(sport), ip.head + ip.toff)) {
			key.cookie = bpf_get_socket_cookie(sk);
			key.rport = bpf_ntohs(sport);
			key.family = ip.family;
			struct nw_udp_flow *f = bpf_map_lookup_elem(&nw_udp_flows, &key);
			if (f)
				__sync_fetch_and_add(&f->rx_drops, 1);
		}
	}
	if (!cfg_time)
		return 0;
	struct rxq *q = bpf_sk_storage_get(&nw_udp_rxq, sk, 0, 0);
	if (!q)
		return 0;
	__u64 k = nw_ptr_num(skb);
	bpf_spin_lock(&q->lock);
	/* newest first: the drop follows its UDP entry closely */
	for (int i = 1; i <= RXQ; i++) {
		__u32 at = q->tail - i;
		if ((__s32)(at - q->head) < 0)
			break;
		struct rxq_ent *e = &q->e[at & (RXQ - 1)];
		if (e->skb == k) {
			if (i == 1)
				q->tail--; /* the newest (usual: dropped right after its entry) */
			else
				e->skb = 0; /* skipped by the next recvmsg */
			break;
		}
	}
	bpf_spin_unlock(&q->lock);
	return 0;
}

/* The owner of a UDP socket: the process whose sendmsg/recvmsg on it just
 * returned (process context), kept by cookie when it changed. */
static __always_inline int owner_io(struct sock *sk, bool direct)
{
	if (NW_RD(direct, sk, sk_protocol) != IPPROTO_UDP)
		return 0;
	__u64 cookie;
	if (direct)
		cookie = bpf_get_socket_cookie(sk);
	else
		/* made by the cgroup hooks' cookie call, which saw the datagram first */
		cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	/* the same socket and process as this CPU's previous recvmsg: known
	 * (an array slot instead of a hash lookup on every recvmsg) */
	__u32 zero = 0;
	struct owner_last *last = bpf_map_lookup_elem(&nw_udp_owner_last, &zero);
	if (last && last->cookie == cookie && last->pid == pid)
		return 0;
	if (last) {
		last->cookie = cookie;
		last->pid = pid;
	}
	struct nw_owner *o = bpf_map_lookup_elem(&nw_udp_owner, &cookie);
	if (o && o->pid == pid)
		return 0;
	struct nw_owner n = {};
	nw_owner_current(&n, NW_OWNER_IO);
	owner_note(cookie, &n);
	return 0;
}

NW_TP_TWINS(sock_recv_length, nw_udp_owner_btf, nw_udp_owner_raw, struct sock *sk, int ret, int flags)
{
	return owner_io(sk, direct);
}

NW_TP_TWINS(sock_send_length, nw_udp_owner_tx_btf, nw_udp_owner_tx_raw, struct sock *sk, int ret, int flags)
{
	return owner_io(sk, direct);
}

/* Before 6.3 (no sock_recv_length/sock_send_length): the same at the entry
 * of UDP's recvmsg and sendmsg (kprobes, v4 and v6, process context). The
 * cookie is made by the cgroup hooks at the socket's first datagram: a
 * socket's first sendmsg notes nothing (its flow takes the owner at a later
 * datagram; user space takes the socket's latest owner for each record). */
SEC("kprobe/udp_recvmsg")
int BPF_KPROBE(nw_udp_owner_kp, struct sock *sk)
{
	return owner_io(sk, false);
}

SEC("kprobe/udp_sendmsg")
int BPF_KPROBE(nw_udp_owner_tx_kp, struct sock *sk)
{
	return owner_io(sk, false);
}

/* ---- -t, send ---- */

/* A sent datagram between IP entry and the driver, by skb. A hash (not a
 * per-CPU ring): with a qdisc the driver may send it later on another CPU.
 * Preallocated (no allocation per datagram); entries whose skb never reached
 * a driver (dropped on the way, fragmented) are removed by user space. */
struct tx_pend {
	struct rxq_ent en;
	struct nw_owner owner;
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct tx_pend);
} nw_udp_txpend SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tx_pend);
} nw_udp_txscratch SEC(".maps");

static __always_inline bool is_udp_sock(const struct sock *sk)
{
	if (!sk)
		return false;
	__u8 st = sk->__sk_common.skc_state;
	if (st == TCP_NEW_SYN_RECV || st == TCP_TIME_WAIT)
		return false;
	__u16 fam = sk->__sk_common.skc_family;
	return sk->sk_protocol == IPPROTO_UDP && sk->sk_type == 2 && (fam == AF_INET || fam == AF_INET6);
}

/* t[1] IP entry of a datagram a UDP socket sends (netfilter LOCAL_OUT, in
 * every netns; process context: the sender is the owner). */
SEC("netfilter")
int nw_udp_tx_ip(struct bpf_nf_ctx *ctx)
{
	struct sk_buff *skb = ctx->skb;
	struct sock *sk = skb->sk;
	if (!is_udp_sock(sk))
		return 1;
	__u32 zero = 0;
	struct tx_pend *p = bpf_map_lookup_elem(&nw_udp_txscratch, &zero);
	if (!p)
		return 1;
	struct nw_skb_ip ip = {};
	if (nw_skb_ip(skb, &ip, p->en.laddr, p->en.raddr, true) || ip.proto != IPPROTO_UDP)
		return 1;
	__u16 ports[2];
	if (bpf_probe_read_kernel(ports, sizeof(ports), ip.head + ip.toff))
		return 1;
	p->en.family = ip.family;
	p->en.lport = bpf_ntohs(ports[0]);
	p->en.rport = bpf_ntohs(ports[1]);
	if (!nw_ports_wanted(p->en.lport, p->en.rport) || !nw_addrs_wanted(ip.family, p->en.laddr, p->en.raddr))
		return 1;
	__u32 l = skb->len, hl = ip.toff - ip.nh + 8;
	p->en.len = l > hl ? l - hl : 0;
	p->en.dgrams = 1;
	struct skb_shared_info *sh = (struct skb_shared_info *)(skb->head + skb->end);
	__u16 gso[2] = {};
	if (!bpf_probe_read_kernel(gso, sizeof(gso), &sh->gso_size) && gso[0] && gso[1] > 1)
		p->en.dgrams = gso[1];
	p->en.netns = nw_sk_netns(sk, true);
	p->en.t[0] = 0;
	p->en.t[1] = bpf_ktime_get_ns();
	p->en.t[2] = 0;
	nw_owner_current_if(&p->owner, NW_OWNER_IO, cfg_nf_pid, cfg_nf_comm);
	if (!cfg_nf_comm) {
		/* no comm here (6.12 and before): the socket's owner as its
		 * sendmsg/recvmsg hooks noted it, when it is the sender */
		__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
		struct nw_owner *o = cookie ? bpf_map_lookup_elem(&nw_udp_owner, &cookie) : 0;
		if (o && (!p->owner.pid || o->pid == p->owner.pid))
			p->owner = *o;
	}
	__u64 k = (__u64)skb;
	if (bpf_map_update_elem(&nw_udp_txpend, &k, p, BPF_ANY))
		nw_count(NW_STAT_UDP_TX_FULL);
	return 1;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(nw_udp_tx_queue, struct sk_buff *skb)
{
	if (!cfg_time || !is_udp_sock(skb->sk))
		return 0;
	__u64 k = (__u64)skb;
	struct tx_pend *p = bpf_map_lookup_elem(&nw_udp_txpend, &k);
	if (p && !p->en.t[2])
		p->en.t[2] = bpf_ktime_get_ns();
	return 0;
}

/* t[3] driver transmit: the record. */
SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(nw_udp_tx_xmit, const struct sk_buff *skb, const struct net_device *dev)
{
	if (!cfg_time || !is_udp_sock(skb->sk))
		return 0;
	__u64 k = (__u64)skb;
	struct tx_pend *p = bpf_map_lookup_elem(&nw_udp_txpend, &k);
	if (!p)
		return 0;
	emit_dgram(&p->en, nw_ptr_num(skb->sk), false, bpf_ktime_get_ns(), &p->owner);
	bpf_map_delete_elem(&nw_udp_txpend, &k);
	return 0;
}

/* Egress: flows (process context: the owner is the current task). */
NW_CTX_TWINS("cgroup_skb/egress", struct __sk_buff, nw_udp_tx, true, nw_udp_tx_ctx, false, kern)
{
	struct dgram d = {};
	__u64 sk = wanted_dgram(ctx, kern, false, &d);
	if (!sk)
		return 1;
	flow_add(ctx, false, sk, &d, bpf_ktime_get_ns());
	return 1;
}

/* for bpf2go -type (Go decodes the records through the generated types) */
const struct nw_udp_event *nw_unused_udp_event __attribute__((unused));
const struct nw_udp_key *nw_unused_udp_key __attribute__((unused));
const struct nw_udp_flow *nw_unused_udp_flow __attribute__((unused));
const struct tx_pend *nw_unused_udp_tx_pend __attribute__((unused));
