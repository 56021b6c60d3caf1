//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * Application capture (internal/l7cap): the first bytes of the payload of
 * every packet a local socket sends or receives to or from an application
 * port (DNS 53, Redis 6379, MySQL 3306, ...), both directions, every
 * namespace, for the protocol parsers in user space (-N, -R, -M).
 *
 * Two cgroup_skb programs on the cgroup v2 root (they run for every socket
 * of every network namespace, the local socket in skb->sk): egress at
 * ip_finish_output()/ip6_finish_output() (every datagram or segment a local
 * socket sends) and ingress at sk_filter() (UDP: udp_queue_rcv_one_skb,
 * TCP: tcp_filter, each segment before the socket backlog). The port test
 * is a lookup in nw_l7_ports (port -> the protocol's record type, 0: none)
 * on the local port, then the remote one. A TCP segment with a payload, or
 * a UDP datagram of a protocol that has UDP (DNS), makes one nw_l7_event
 * record on the packet ring: type = the protocol's record type (NW_EV_DNS,
 * NW_EV_REDIS, NW_EV_MYSQL), the packet's addresses and ports, direction,
 * the socket, its namespace, the TCP sequence number, and the first
 * nw_l7_caps[type] (at most NW_L7_MAX) bytes of the L4 payload: user space
 * follows the TCP streams (internal/l7cap/stream) and parses. Every other
 * packet costs its header reads and two array lookups.
 *
 * Owner, never the softirq's task: an egress UDP datagram is sent in its
 * process's context (udp_sendmsg runs down to the output hook), so the
 * current task is its owner, remembered by socket in nw_l7_owner; an
 * ingress datagram (softirq) takes its socket's owner from there (none
 * before the socket sent anything: user space names a pair after its
 * egress side). TCP: the connection tracker's owner.
 *
 * No kfunc, no BTF pointer: cgroup_skb, the BPF ring buffer (5.8+) and
 * probe reads are all it needs.
 */
#include "nw.h"

char LICENSE[] SEC("license") = "GPL";

/* The task helpers cgroup_skb programs may call on this kernel
 * (kernel.TaskHelpers: bpf_get_current_pid_tgid 6.10+,
 * bpf_get_current_comm later). Without comm, a UDP sender's owner is the
 * one nw_l7_owner_kp noted (kprobes), else its pid alone or unknown. */
volatile const bool cfg_skb_pid = false;
volatile const bool cfg_skb_comm = false;

/* Bytes of payload copied at most (a record is at most
 * sizeof(struct nw_l7_event) + NW_L7_MAX); event.AppMax in Go. */
#define NW_L7_MAX 2048

/* One packet, followed by len payload bytes (the record is
 * sizeof(struct nw_l7_event) + len bytes). */
struct nw_l7_event {
	__u8 type;     /* the protocol's record type (nw_l7_ports) */
	__u8 rx;       /* 1: received (ingress) */
	__u8 proto;    /* IPPROTO_UDP, IPPROTO_TCP */
	__u8 _pad0;
	__u32 netns;
	__u64 sk;      /* the local socket */
	__u64 ts;
	__u32 seq;     /* TCP: sequence number of the payload's first byte */
	__u16 len;     /* payload bytes copied after the record */
	__u16 paylen;  /* payload bytes in the packet (L4 payload; capped at 65535) */
	__u16 family;  /* AF_INET, AF_INET6 */
	__u16 sport;   /* the packet's source port, host order */
	__u16 dport;   /* the packet's destination port */
	__u16 _pad1;
	__u8 saddr[16]; /* the packet's source address */
	__u8 daddr[16];
	struct nw_owner owner;
};

struct l7_scratch {
	struct nw_l7_event e;
	__u8 data[NW_L7_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_scratch);
} nw_l7_scratch SEC(".maps");

/* Port (host order) -> the record type of the protocol served there, 0:
 * none. Filled by user space at load (each protocol that is on). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} nw_l7_ports SEC(".maps");

/* Record type -> payload bytes to copy (at most NW_L7_MAX; 0: NW_L7_MAX). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u16);
} nw_l7_caps SEC(".maps");

/* UDP socket -> the process that last sent from it (process context). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct nw_owner);
} nw_l7_owner SEC(".maps");

/* The IP and L4 headers' first words, as l7_skb needs them. */
struct l7_hdrs {
	__u32 iphl;
	__u16 family;
	__u8 proto;
	__u8 _pad;
	__be16 ports[2];
};

/* Read through direct packet access (no helper call: ~40% of the cost
 * of the programs for the packets that are not captured, measured with
 * kernel.bpf_stats_enabled): 1 parsed, 0 not ours (no record), -1 the
 * headers are not all in the linear part: read them with
 * bpf_skb_load_bytes (l7_hdrs_load). The stack has pulled the IP and L4
 * headers into the linear part by both hooks, so -1 is rare. */
static __always_inline int l7_hdrs_direct(struct __sk_buff *ctx, struct l7_hdrs *h)
{
	__u8 *d = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	if (d + 40 > end)
		return -1;
	__u8 v = d[0] >> 4;
	if (v == 4) {
		if (*(__be16 *)(d + 6) & bpf_htons(0x1fff))
			return 0; /* a later fragment: no L4 header */
		h->proto = d[9];
		h->iphl = (__u32)(d[0] & 0x0f) * 4;
		h->family = AF_INET;
	} else if (v == 6) {
		h->proto = d[6]; /* extension headers: not seen */
		h->iphl = 40;
		h->family = AF_INET6;
	} else {
		return 0;
	}
	if ((h->proto != IPPROTO_UDP && h->proto != IPPROTO_TCP) || h->iphl < 20)
		return 0;
	__u8 *l4 = d + h->iphl;
	if (l4 + 4 > end)
		return -1;
	h->ports[0] = *(__be16 *)l4;
	h->ports[1] = *(__be16 *)(l4 + 2);
	return 1;
}

/* The same with bpf_skb_load_bytes (headers outside the linear part). */
static __always_inline int l7_hdrs_load(struct __sk_buff *ctx, struct l7_hdrs *h)
{
	__u8 vhl = 0;
	if (bpf_skb_load_bytes(ctx, 0, &vhl, 1))
		return 0;
	if (vhl >> 4 == 4) {
		__be16 frag = 0;
		if (bpf_skb_load_bytes(ctx, 6, &frag, 2) || (frag & bpf_htons(0x1fff)))
			return 0;
		if (bpf_skb_load_bytes(ctx, 9, &h->proto, 1))
			return 0;
		h->iphl = (__u32)(vhl & 0x0f) * 4;
		h->family = AF_INET;
	} else if (vhl >> 4 == 6) {
		if (bpf_skb_load_bytes(ctx, 6, &h->proto, 1))
			return 0;
		h->iphl = 40;
		h->family = AF_INET6;
	} else {
		return 0;
	}
	if ((h->proto != IPPROTO_UDP && h->proto != IPPROTO_TCP) || h->iphl < 20)
		return 0;
	return !bpf_skb_load_bytes(ctx, h->iphl, h->ports, sizeof(h->ports));
}

/* The protocol at a port, 0: none. */
static __always_inline __u8 l7_type(__u16 port)
{
	__u32 k = port;
	__u8 *t = bpf_map_lookup_elem(&nw_l7_ports, &k);
	return t ? *t : 0;
}

static __always_inline void l7_skb(struct __sk_buff *ctx, bool rx)
{
	struct l7_hdrs h = {};
	int got = l7_hdrs_direct(ctx, &h);
	if (got < 0)
		got = l7_hdrs_load(ctx, &h);
	if (got <= 0)
		return;
	__u16 sport = bpf_ntohs(h.ports[0]), dport = bpf_ntohs(h.ports[1]);
	/* the local port first: a server's socket is named by its service */
	__u8 type = l7_type(rx ? dport : sport);
	if (!type)
		type = l7_type(rx ? sport : dport);
	if (!type || type >= 32)
		return;
	__u32 iphl = h.iphl;
	__u8 proto = h.proto;
	__u16 family = h.family;
	if (proto == IPPROTO_UDP && type != NW_EV_DNS)
		return; /* UDP: DNS only */

	__u32 off = iphl + 8, seq = 0;
	if (proto == IPPROTO_TCP) {
		__u8 doff = 0;
		__be32 s = 0;
		if (bpf_skb_load_bytes(ctx, iphl + 4, &s, 4) || bpf_skb_load_bytes(ctx, iphl + 12, &doff, 1))
			return;
		seq = bpf_ntohl(s);
		off = iphl + (__u32)(doff >> 4) * 4;
	}
	if (ctx->len <= off)
		return; /* no payload (TCP: a bare ACK, SYN, FIN) */
	__u32 paylen = ctx->len - off;

	__u32 zero = 0, tk = type;
	__u16 *capp = bpf_map_lookup_elem(&nw_l7_caps, &tk);
	__u32 cap = capp && *capp ? *capp : NW_L7_MAX;
	struct l7_scratch *sc = bpf_map_lookup_elem(&nw_l7_scratch, &zero);
	if (!sc)
		return;
	struct nw_l7_event *e = &sc->e;
	if (family == AF_INET) {
		__builtin_memset(e->saddr, 0, 16);
		__builtin_memset(e->daddr, 0, 16);
		if (bpf_skb_load_bytes(ctx, 12, e->saddr, 4) || bpf_skb_load_bytes(ctx, 16, e->daddr, 4))
			return;
	} else if (bpf_skb_load_bytes(ctx, 8, e->saddr, 16) || bpf_skb_load_bytes(ctx, 24, e->daddr, 16)) {
		return;
	}
	/* -s/-d, -S/-D: local and remote end */
	if (rx ? !nw_ports_wanted(dport, sport) || !nw_addrs_wanted(family, e->daddr, e->saddr)
	       : !nw_ports_wanted(sport, dport) || !nw_addrs_wanted(family, e->saddr, e->daddr))
		return;

	/* the local socket: the context's (the kernel's struct sock, seen
	 * through the bpf_sock view); its namespace by probe reads (a few
	 * tens of ns, for captured packets only) rather than through
	 * bpf_cast_to_kern_ctx, a 6.2+ kfunc */
	struct bpf_sock *bsk = ctx->sk;
	if (!bsk)
		return;
	__u64 skey = nw_ptr_num(bsk);
	const struct sock *sk = (const struct sock *)skey;
	e->type = type;
	e->rx = rx;
	e->proto = proto;
	e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	e->sk = skey;
	e->ts = bpf_ktime_get_ns();
	e->seq = seq;
	e->paylen = paylen > 0xffff ? 0xffff : paylen;
	e->family = family;
	e->sport = sport;
	e->dport = dport;
	__builtin_memset(&e->owner, 0, sizeof(e->owner));
	if (proto == IPPROTO_TCP) {
		const struct nw_conn *c = nw_conn_find(skey);
		if (c && c->owner.pid)
			e->owner = c->owner;
	} else if (!rx && cfg_skb_comm) {
		nw_owner_current_if(&e->owner, NW_OWNER_IO, cfg_skb_pid, true);
		bpf_map_update_elem(&nw_l7_owner, &skey, &e->owner, BPF_ANY);
	} else if (!rx) {
		struct nw_owner *o = bpf_map_lookup_elem(&nw_l7_owner, &skey);
		nw_owner_current_if(&e->owner, NW_OWNER_IO, cfg_skb_pid, false);
		if (o && (!e->owner.pid || o->pid == e->owner.pid))
			e->owner = *o; /* nw_l7_owner_kp's, with comm */
		else if (e->owner.pid)
			bpf_map_update_elem(&nw_l7_owner, &skey, &e->owner, BPF_ANY);
	} else {
		struct nw_owner *o = bpf_map_lookup_elem(&nw_l7_owner, &skey);
		if (o)
			e->owner = *o;
	}

	__u64 m = (paylen < cap ? paylen : cap) - 1;
	/* clang 14 loses a C-level bound on the way to the call: clamp to
	 * [0, NW_L7_MAX-1] in asm so the verifier sees it on this register. */
	asm volatile("if %[m] <= 2047 goto +1\n\t%[m] = 2047" : [m] "+r"(m));
	if (bpf_skb_load_bytes(ctx, off, sc->data, m + 1))
		return;
	e->len = m + 1;
	__u64 size = sizeof(*e) + m + 1;
	asm volatile("if %[s] <= 2144 goto +1\n\t%[s] = 2144" : [s] "+r"(size));
	if (bpf_ringbuf_output(&nw_pkt_events, sc, size, nw_wake(&nw_pkt_events, size)))
		nw_count(NW_STAT_RB_FULL + (type & 31));
}

/* Datagrams and segments sent: process context for UDP. */
SEC("cgroup_skb/egress")
int nw_l7_tx(struct __sk_buff *ctx)
{
	l7_skb(ctx, false);
	return 1;
}

/* Received, per socket (softirq). */
SEC("cgroup_skb/ingress")
int nw_l7_rx(struct __sk_buff *ctx)
{
	l7_skb(ctx, true);
	return 1;
}

/* Where cgroup_skb may not call bpf_get_current_comm: the process
 * entering udp_sendmsg/udpv6_sendmsg on a socket of an application port
 * (kprobe, process context; attached only then), for the egress above. A
 * socket not connected to the port sends to it from an ephemeral one: not
 * noted. */
SEC("kprobe/udp_sendmsg")
int BPF_KPROBE(nw_l7_owner_kp, struct sock *sk)
{
	__u32 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u32 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	__u8 *t = bpf_map_lookup_elem(&nw_l7_ports, &lport);
	if (!t || !*t) {
		t = bpf_map_lookup_elem(&nw_l7_ports, &rport);
		if (!t || !*t)
			return 0;
	}
	__u64 skey = (__u64)sk;
	struct nw_owner o = {};
	nw_owner_current(&o, NW_OWNER_IO);
	bpf_map_update_elem(&nw_l7_owner, &skey, &o, BPF_ANY);
	return 0;
}

/* for bpf2go -type (Go decodes the record through the generated type) */
const struct nw_l7_event *nw_unused_l7_event __attribute__((unused));
