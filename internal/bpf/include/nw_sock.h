/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw_sock.h — reading sockets (and the current task) into the records of
 * nw.h, and the -s/-d port and -S/-D address filters. Included by nw.h.
 *
 * Readers with a `direct` argument come from programs of both kinds: it is
 * a compile-time constant, true in tp_btf programs, whose arguments are BTF
 * pointers the verifier lets us load from directly (a plain CO-RE-relocated
 * load, ~1 ns), false for raw_tp/kprobe/iterator callers, which need
 * bpf_probe_read_kernel (a helper call, tens of ns). Both branches are
 * CO-RE relocated; the dead one is compiled out. See NW_TP_TWINS (nw_prog.h)
 * for where `direct` comes from.
 */
#ifndef NW_SOCK_H
#define NW_SOCK_H

#ifndef NW_H
#error "include nw.h"
#endif

/* Load-time configuration (set by the Go loader before load). */
volatile const __u16 cfg_sport = 0; /* 0: any local port */
volatile const __u16 cfg_dport = 0; /* 0: any remote port */

/* Kernel-side port filter (-s/-d); ports in host order. */
static __always_inline bool nw_ports_wanted(__u16 sport, __u16 dport)
{
	if (cfg_sport && cfg_sport != sport)
		return false;
	if (cfg_dport && cfg_dport != dport)
		return false;
	return true;
}

/*
 * -S/-D: local / remote address filters, CIDRs of either family, several
 * of each (any of them matches; -S and -D must both match). Two LPM tries
 * shared by every object (internal/conn fills them at load); cfg_src_nets
 * and cfg_dst_nets say whether each filter is on, so an unfiltered run
 * never looks them up. Key: the family (4 or 6) as the first byte, then
 * the address; prefixlen counts the family byte's 8 bits. An IPv4-mapped
 * IPv6 address (::ffff:a.b.c.d, a v6 socket talking to a v4 peer) is
 * looked up as the IPv4 address it is.
 */
#define NW_MAX_NETS 64

struct nw_net_key {
	__u32 prefixlen;
	__u8 family;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NW_MAX_NETS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nw_net_key);
	__type(value, __u8);
} nw_src_nets SEC(".maps"), nw_dst_nets SEC(".maps");

volatile const bool cfg_src_nets = false;
volatile const bool cfg_dst_nets = false;

static __always_inline bool nw_net_in(void *nets, __u16 family, const __u8 *addr)
{
	struct nw_net_key k = {};
	if (family == AF_INET6 && !(addr[0] | addr[1] | addr[2] | addr[3] | addr[4] | addr[5] | addr[6] | addr[7] |
				    addr[8] | addr[9]) && addr[10] == 0xff && addr[11] == 0xff) {
		k.prefixlen = 8 + 32;
		k.family = 4;
		__builtin_memcpy(k.addr, addr + 12, 4);
	} else if (family == AF_INET) {
		k.prefixlen = 8 + 32;
		k.family = 4;
		__builtin_memcpy(k.addr, addr, 4);
	} else {
		k.prefixlen = 8 + 128;
		k.family = 6;
		__builtin_memcpy(k.addr, addr, 16);
	}
	return bpf_map_lookup_elem(nets, &k) != NULL;
}

/* Kernel-side address filter (-S/-D): local and remote address. */
static __always_inline bool nw_addrs_wanted(__u16 family, const __u8 *local, const __u8 *remote)
{
	if (cfg_src_nets && !nw_net_in(&nw_src_nets, family, local))
		return false;
	if (cfg_dst_nets && !nw_net_in(&nw_dst_nets, family, remote))
		return false;
	return true;
}

/* A field of a kernel object: a plain load or a probe read (see top). */
#define NW_RD(direct, p, path) ((direct) ? (p)->path : BPF_CORE_READ(p, path))

static __always_inline __u32 nw_sk_netns(const struct sock *sk, bool direct)
{
	if (direct)
		return sk->__sk_common.skc_net.net->ns.inum;
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* The family of a TCP socket over IPv4 or IPv6; 0 for any other socket. */
static __always_inline __u16 nw_tcp_family(const struct sock *sk, bool direct)
{
	if (NW_RD(direct, sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u16 family = NW_RD(direct, sk, __sk_common.skc_family);
	return family == AF_INET || family == AF_INET6 ? family : 0;
}

/* Fill family, ports, addresses and netns from a socket (host-order ports). */
static __always_inline void nw_fill_tuple(struct nw_conn *c, const struct sock *sk, bool direct)
{
	c->family = NW_RD(direct, sk, __sk_common.skc_family);
	c->sport = NW_RD(direct, sk, __sk_common.skc_num);
	c->dport = bpf_ntohs(NW_RD(direct, sk, __sk_common.skc_dport));
	c->netns = nw_sk_netns(sk, direct);
	if (c->family == AF_INET) {
		__u32 s = NW_RD(direct, sk, __sk_common.skc_rcv_saddr);
		__u32 d = NW_RD(direct, sk, __sk_common.skc_daddr);
		__builtin_memcpy(c->saddr, &s, 4);
		__builtin_memcpy(c->daddr, &d, 4);
	} else if (direct) {
		__builtin_memcpy(c->saddr, sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(c->daddr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
	} else {
		BPF_CORE_READ_INTO(&c->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&c->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

/* Both filters (-s/-d, -S/-D) on a tuple filled by nw_fill_tuple. */
static __always_inline bool nw_conn_wanted(const struct nw_conn *c)
{
	return nw_ports_wanted(c->sport, c->dport) && nw_addrs_wanted(c->family, c->saddr, c->daddr);
}

/* -x values of a TCP socket. */
static __always_inline void nw_read_stats(struct nw_conn_stats *st, const struct sock *sk, bool direct)
{
	const struct tcp_sock *tp = (const void *)sk;
	if (direct) {
		/* tp_btf: sk is a BTF pointer; bpf_skc_to_tcp_sock gives a BTF
		 * pointer to the tcp_sock around it, so every field is a plain
		 * load. */
		tp = bpf_skc_to_tcp_sock((void *)sk);
		if (!tp)
			return;
	}
	st->sndbuf = NW_RD(direct, sk, sk_sndbuf);
	st->wmem_queued = NW_RD(direct, sk, sk_wmem_queued);
	st->backlog = NW_RD(direct, sk, sk_ack_backlog);
	st->max_backlog = NW_RD(direct, sk, sk_max_ack_backlog);
	st->state = NW_RD(direct, sk, __sk_common.skc_state);
	st->srtt_us8 = NW_RD(direct, tp, srtt_us);
	st->cwnd = NW_RD(direct, tp, snd_cwnd);
	st->ssthresh = NW_RD(direct, tp, snd_ssthresh);
	st->rcv_wnd = NW_RD(direct, tp, rcv_wnd);
	st->snd_wnd = NW_RD(direct, tp, snd_wnd);
	st->total_retrans = NW_RD(direct, tp, total_retrans);
	st->bytes_received = NW_RD(direct, tp, bytes_received);
	st->bytes_acked = NW_RD(direct, tp, bytes_acked);
	const struct inet_connection_sock *icsk = (const void *)tp;
	if (direct)
		st->ca_state = BPF_CORE_READ_BITFIELD(icsk, icsk_ca_state);
	else
		st->ca_state = BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
}

/* The current task as owner (process context only). */
static __always_inline void nw_owner_current(struct nw_owner *o, __u8 src)
{
	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->src = src;
	bpf_get_current_comm(&o->comm, sizeof(o->comm));
}

/* The current task as owner in a program whose type may lack the task
 * helpers (cgroup_skb, netfilter: bpf_get_current_pid_tgid from Linux 6.10,
 * bpf_get_current_comm later): have_pid/have_comm are the object's volatile
 * const flags the loader sets from kernel.TaskHelpers, so the verifier never
 * sees a call its kernel refuses. pid 0 / empty comm: unknown. */
static __always_inline void nw_owner_current_if(struct nw_owner *o, __u8 src, bool have_pid, bool have_comm)
{
	o->pid = have_pid ? bpf_get_current_pid_tgid() >> 32 : 0;
	o->src = have_pid ? src : NW_OWNER_NONE;
	if (have_comm)
		bpf_get_current_comm(&o->comm, sizeof(o->comm));
	else
		__builtin_memset(&o->comm, 0, sizeof(o->comm));
}

#endif /* NW_SOCK_H */
