/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw.h — what every netwatcher BPF object shares: the event header, the maps
 * several concerns use (ring buffer, connection table, counters), the
 * load-time configuration, and small helpers.
 *
 * Rule: BPF records raw values (timestamps, pointers, counters); user space
 * gives them meaning. Every object that includes this header declares the
 * same maps; the Go loader replaces them with the instances owned by the
 * connections object (CollectionOptions.MapReplacements), so all concerns
 * see one connection table and one ring buffer.
 *
 * Layout changes here must be mirrored in internal/event (Go decoders); the
 * Go side checks sizes against the generated types in its tests.
 */
#ifndef NW_H
#define NW_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_MPTCP 262

/* TCP states (include/net/tcp_states.h) */
#define NW_TCP_ESTABLISHED 1
#define NW_TCP_SYN_SENT 2
#define NW_TCP_SYN_RECV 3
#define NW_TCP_FIN_WAIT1 4
#define NW_TCP_CLOSE 7
#define NW_TCP_CLOSE_WAIT 8
#define NW_TCP_LAST_ACK 9
#define NW_TCP_LISTEN 10

/* Event types. Keep in sync with internal/event/types.go. */
enum nw_event_type {
	NW_EV_CONN_OPEN = 1,   /* struct nw_conn_event: reached ESTABLISHED */
	NW_EV_CONN_OWNER = 2,  /* struct nw_conn_event: owner learned/changed */
	NW_EV_CONN_CLOSE = 3,  /* struct nw_conn_event: reached CLOSE, final stats */
	NW_EV_PACKET = 10,     /* internal/packet */
	NW_EV_RETRANS = 20,    /* internal/retrans */
	NW_EV_CONG = 21,       /* internal/retrans */
	NW_EV_ERROR = 30,      /* internal/drops */
	NW_EV__MAX = 32,
};

/* Counters in the `nw_stats` per-CPU array. Keep in sync with internal/event. */
enum nw_stat {
	NW_STAT_RB_FULL = 0,        /* + event type: ring reservation failed */
	NW_STAT_CONN_MAP_FULL = 32, /* a connection could not be tracked: table full */
	NW_STAT_PKT_MAP_FULL = 34,  /* packet stamp table full (internal/packet) */
	NW_STAT__MAX = 64,
};

/* Owner provenance, best last. */
enum nw_owner_src {
	NW_OWNER_NONE = 0,
	NW_OWNER_LISTENER = 1, /* provisional: the process that owns the listener */
	NW_OWNER_IO = 2,       /* first process-context I/O on the socket */
	NW_OWNER_PREEXIST = 3, /* file table walk at start-up */
	NW_OWNER_SYSCALL = 4,  /* connect() (SYN_SENT) or accept() return */
};

struct nw_owner {
	__u32 pid; /* tgid */
	__u8 src;  /* enum nw_owner_src */
	__u8 _pad[3];
	char comm[16];
};

/* Connection table value, keyed by the kernel `struct sock *` (u64). */
struct nw_conn {
	__u64 est_ns;   /* bpf_ktime_get_ns() when seen ESTABLISHED (0: not yet) */
	__u32 netns;    /* network namespace inode */
	__u16 family;   /* AF_INET / AF_INET6 */
	__u16 sport;    /* local port, host order */
	__u16 dport;    /* remote port, host order */
	__u8 is_server; /* 1: accepted side */
	__u8 _pad;
	__u8 saddr[16]; /* local address (v4 in the first 4 bytes) */
	__u8 daddr[16]; /* remote address */
	struct nw_owner owner;
	/* -r: maintained by internal/retrans */
	__u32 fast_retrans;    /* entries into TCP_CA_Recovery */
	__u32 timeout_retrans; /* entries into TCP_CA_Loss */
	__u32 retrans_segs;    /* tcp_retransmit_skb calls */
	__u64 owner_pending;   /* 1: owner provisional, counted in conn's nw_owner_waiting
				* (64 bits: atomic exchange needs them on older LLVM/kernels) */
};

/* -x values read from struct tcp_sock (raw units; user space formats). */
struct nw_conn_stats {
	__u32 srtt_us8;  /* tp->srtt_us (<<3 scaled) */
	__u32 cwnd;      /* tp->snd_cwnd */
	__u32 ssthresh;  /* tp->snd_ssthresh */
	__u32 rcv_wnd;   /* tp->rcv_wnd: window we advertise */
	__u32 snd_wnd;   /* tp->snd_wnd: peer's advertised window */
	__u32 sndbuf;    /* sk->sk_sndbuf */
	__u32 wmem_queued;
	__u32 backlog;     /* sk->sk_ack_backlog */
	__u32 max_backlog; /* sk->sk_max_ack_backlog */
	__u32 total_retrans;
	__u64 bytes_received;
	__u64 bytes_acked;
	__u8 state;
	__u8 ca_state;
	__u8 _pad[6];
};

/* Every ring-buffer record starts with this. */
struct nw_hdr {
	__u8 type;  /* enum nw_event_type */
	__u8 _pad[3];
	__u32 netns;
	__u64 ts;   /* bpf_ktime_get_ns() */
	__u64 sk;   /* struct sock * */
};

struct nw_conn_event {
	struct nw_hdr hdr;
	struct nw_conn conn;
	struct nw_conn_stats stats; /* filled for CLOSE */
};

/* Iterator record (pre-existing sockets at start-up; -x sampling). */
struct nw_iter_rec {
	__u64 sk;
	struct nw_conn conn;   /* for the task_file walk: tuple + owner */
	struct nw_conn_stats stats;
};

/* ---- load-time configuration (set by the Go loader before load) ---- */
volatile const __u16 cfg_sport = 0;  /* 0: any local port */
volatile const __u16 cfg_dport = 0;  /* 0: any remote port */
/* Sets in nw_conn_keys - 1 (a power of two), or NW_CONN_HASH_MASK: the
 * connection table is the hash variant (nw_conn_hash; kernels without BPF
 * compare-and-swap), see nw_conn_find. Set by the Go loader
 * (internal/conn) in every object, from the one variant it chose. */
volatile const __u32 cfg_conn_mask = 16384 - 1;
#define NW_CONN_HASH_MASK 0xffffffffu

/* ---- shared maps ---- */
/* Lifecycle, retransmission and error events. Kept apart from packets so a
 * packet flood can never crowd out a connection open/close. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* resized by the loader */
} nw_events SEC(".maps");

/* Per-packet records (internal/packet): high volume, own ring. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 12); /* resized by the loader when packets are traced */
} nw_pkt_events SEC(".maps");

/*
 * Connection table: set-associative, keyed by `struct sock *`.
 *
 * nw_conn_keys[set] holds the sockets of one set (NW_WAYS of them, one cache
 * line); the value of way w of set s is nw_conns[s * NW_WAYS + w]. A
 * socket's set is a hash of its address. Why not a BPF hash map: an insert
 * and a delete per connection took a bucket lock with interrupts off, an
 * allocation and an RCU-deferred free each (measured on connection churn:
 * most of the tracker's kernel cost). Here a lookup is a multiply, two array
 * loads and NW_WAYS compares; a claim is one compare-and-swap; a release one
 * store. Both arrays are preallocated (loader: Options.MaxConns).
 *
 * A set with NW_WAYS live connections refuses a new one: it is counted
 * (NW_STAT_CONN_MAP_FULL), like a full hash map was. With the table at 10%
 * of its capacity that is about one set in 10^8.
 *
 * Writers: a claimed slot belongs to its socket; the socket's own state
 * changes (serialized by the kernel: socket lock or its softirq) fill and
 * release it, so slots need no lock. A reader that races with a release
 * reads the slot as it was or, if another socket claimed it meanwhile, that
 * socket's values (as with a preallocated BPF hash map). Packet records
 * carry the connection's establishment time, so user space attributes such
 * a record to no connection rather than to the wrong one.
 */
#define NW_WAYS 8

struct nw_conn_set {
	__u64 sk[NW_WAYS]; /* 0: free */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384); /* sets; resized by the loader */
	__type(key, __u32);
	__type(value, struct nw_conn_set);
} nw_conn_keys SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384 * NW_WAYS); /* sets * NW_WAYS; resized by the loader */
	__type(key, __u32);
	__type(value, struct nw_conn);
} nw_conns SEC(".maps");

/*
 * The hash variant of the table, for kernels without BPF atomics (CAS and
 * exchange need 5.12; "BPF_STX uses reserved fields" before): a
 * preallocated BPF hash map keyed by the socket number, value as in
 * nw_conns. A claim is an insert with BPF_NOEXIST (the bucket lock makes it
 * atomic), a release a delete: the cost the arrays above avoid, paid only
 * where they cannot work. Exactly one variant holds connections; the other
 * one's maps are left at their minimal size (1 set, 1 entry) by the loader.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* resized by the loader in the hash variant */
	__type(key, __u64);
	__type(value, struct nw_conn);
} nw_conn_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NW_STAT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} nw_stats SEC(".maps");

static __always_inline void nw_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&nw_stats, &idx);
	if (v)
		(*v)++;
}

/* Reserve a ring record; a failed reservation is counted per event type. */
static __always_inline void *nw_reserve(__u64 size, __u8 type)
{
	void *p = bpf_ringbuf_reserve(&nw_events, size, 0);
	if (!p)
		nw_count(NW_STAT_RB_FULL + type);
	return p;
}

/*
 * Batched wakeups: waking the reader for every record costs an irq_work
 * (a self-IPI: in a VM an APIC write, i.e. an exit to the hypervisor) and a
 * context switch per event, which dominated the cost at packet rates. A
 * record wakes the reader only when it makes the backlog cross a multiple of
 * NW_WAKEUP_BYTES; the reader also polls every few milliseconds
 * (internal/engine), so a lone event is never stuck.
 *
 * Not "whenever the backlog is over the threshold": while the reader is
 * behind (both CPUs busy with the traced load) that queued an irq_work for
 * nearly every record (measured: 3% of a request/response load in
 * native_write_msr alone).
 */
#define NW_WAKEUP_BYTES (64 << 10)
#define NW_RB_HDR 8

static __always_inline __u64 nw_wake_flag(__u64 avail, __u64 size)
{
	__u64 used = (size + NW_RB_HDR + 7) & ~7ULL; /* the record's room in the ring */
	if (avail < used)
		return BPF_RB_NO_WAKEUP;
	return (avail / NW_WAKEUP_BYTES) != ((avail - used) / NW_WAKEUP_BYTES) ? BPF_RB_FORCE_WAKEUP
									       : BPF_RB_NO_WAKEUP;
}

/* size: what was reserved for rec. */
static __always_inline void nw_submit(void *rec, __u64 size)
{
	__u64 avail = bpf_ringbuf_query(&nw_events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(rec, nw_wake_flag(avail, size));
}

static __always_inline void nw_submit_pkt(void *rec, __u64 size)
{
	__u64 avail = bpf_ringbuf_query(&nw_pkt_events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(rec, nw_wake_flag(avail, size));
}

/* Same, on the packet ring. */
static __always_inline void *nw_reserve_pkt(__u64 size)
{
	void *p = bpf_ringbuf_reserve(&nw_pkt_events, size, 0);
	if (!p)
		nw_count(NW_STAT_RB_FULL + NW_EV_PACKET);
	return p;
}

/*
 * NW_RD reads a field of a kernel object. `direct` is a compile-time
 * constant: true in tp_btf programs, whose arguments are BTF pointers the
 * verifier lets us load from directly (a plain CO-RE-relocated load, ~1 ns),
 * false for raw_tp/kprobe fallbacks, which need bpf_probe_read_kernel
 * (a helper call, tens of ns). Both branches are CO-RE relocated; the dead
 * one is compiled out.
 */
#define NW_RD(direct, p, path) ((direct) ? (p)->path : BPF_CORE_READ(p, path))

static __always_inline __u32 nw_sk_netns_d(const struct sock *sk, bool direct)
{
	if (direct)
		return sk->__sk_common.skc_net.net->ns.inum;
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline __u32 nw_sk_netns(const struct sock *sk)
{
	return nw_sk_netns_d(sk, false);
}

/* Fill family, ports and addresses from a socket (host-order ports). */
static __always_inline void nw_fill_tuple_d(struct nw_conn *c, const struct sock *sk, bool direct)
{
	c->family = NW_RD(direct, sk, __sk_common.skc_family);
	c->sport = NW_RD(direct, sk, __sk_common.skc_num);
	c->dport = bpf_ntohs(NW_RD(direct, sk, __sk_common.skc_dport));
	c->netns = nw_sk_netns_d(sk, direct);
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

static __always_inline void nw_fill_tuple(struct nw_conn *c, const struct sock *sk)
{
	nw_fill_tuple_d(c, sk, false);
}

/* Kernel-side port filter (-s/-d); ports in host order. */
static __always_inline bool nw_ports_wanted(__u16 sport, __u16 dport)
{
	if (cfg_sport && cfg_sport != sport)
		return false;
	if (cfg_dport && cfg_dport != dport)
		return false;
	return true;
}

static __always_inline void nw_read_stats_d(struct nw_conn_stats *st, const struct sock *sk, bool direct)
{
	const struct tcp_sock *tp = (const void *)sk;
	const struct inet_connection_sock *icsk = (const void *)sk;

	if (direct) {
		/* tp_btf: sk is a BTF pointer; bpf_skc_to_tcp_sock gives a BTF
		 * pointer to the tcp_sock around it, so every field is a plain
		 * load. */
		struct tcp_sock *t = bpf_skc_to_tcp_sock((void *)sk);
		if (!t)
			return;
		struct inet_connection_sock *ic = (void *)t;
		st->sndbuf = sk->sk_sndbuf;
		st->wmem_queued = sk->sk_wmem_queued;
		st->backlog = sk->sk_ack_backlog;
		st->max_backlog = sk->sk_max_ack_backlog;
		st->state = sk->__sk_common.skc_state;
		st->srtt_us8 = t->srtt_us;
		st->cwnd = t->snd_cwnd;
		st->ssthresh = t->snd_ssthresh;
		st->rcv_wnd = t->rcv_wnd;
		st->snd_wnd = t->snd_wnd;
		st->total_retrans = t->total_retrans;
		st->bytes_received = t->bytes_received;
		st->bytes_acked = t->bytes_acked;
		st->ca_state = BPF_CORE_READ_BITFIELD(ic, icsk_ca_state);
		return;
	} else {
		st->sndbuf = BPF_CORE_READ(sk, sk_sndbuf);
		st->wmem_queued = BPF_CORE_READ(sk, sk_wmem_queued);
		st->backlog = BPF_CORE_READ(sk, sk_ack_backlog);
		st->max_backlog = BPF_CORE_READ(sk, sk_max_ack_backlog);
		st->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	}
	st->srtt_us8 = BPF_CORE_READ(tp, srtt_us);
	st->cwnd = BPF_CORE_READ(tp, snd_cwnd);
	st->ssthresh = BPF_CORE_READ(tp, snd_ssthresh);
	st->rcv_wnd = BPF_CORE_READ(tp, rcv_wnd);
	st->snd_wnd = BPF_CORE_READ(tp, snd_wnd);
	st->total_retrans = BPF_CORE_READ(tp, total_retrans);
	st->bytes_received = BPF_CORE_READ(tp, bytes_received);
	st->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	st->ca_state = BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
}

static __always_inline void nw_read_stats(struct nw_conn_stats *st, const struct sock *sk)
{
	nw_read_stats_d(st, sk, false);
}

static __always_inline void nw_owner_current(struct nw_owner *o, __u8 src)
{
	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->src = src;
	bpf_get_current_comm(&o->comm, sizeof(o->comm));
}

/* ---- connection table (see nw_conn_keys) ---- */

/*
 * The connection table is keyed by the socket's address as a number (it is
 * hashed). tp_btf, cgroup_skb and netfilter programs hold `struct sock *` as
 * typed pointers, on which the verifier allows no arithmetic but +/-; raw_tp
 * and kprobe programs hold plain numbers. Two ways to get the number:
 *
 * nw_ptr_num(p), p a typed pointer (fast, a few instructions): the
 * verifier allows root the difference of two pointers, a number. So
 * p - v + v, with v a pointer to a map value that holds its own numeric
 * address (every program stores the same address there, so concurrent users
 * cannot disturb each other). Per-CPU: a store on every lookup into one
 * shared value would move its cache line between CPUs each time.
 *
 * nw_num(x), x either kind (a helper call, ~25 ns): copy the 8 bytes. For
 * the rare paths (retransmits, drops) that have both kinds of callers.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nw_base SEC(".maps");

static __always_inline __u64 nw_ptr_num(const void *p)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&nw_base, &zero);
	if (!v)
		return 0;
	*(volatile __u64 *)v = (__u64)v;
	__u64 vnum = *(volatile __u64 *)v; /* loaded from memory: a number */
	__u64 d = (__u64)p;
	/* d = p - v, in asm so that clang cannot turn it into p + (vnum - v),
	 * which the verifier refuses */
	asm volatile("%[d] -= %[v]" : [d] "+r"(d) : [v] "r"(v));
	return d + vnum;
}

static __always_inline __u64 nw_num(__u64 x)
{
	__u64 r = 0;
	bpf_probe_read_kernel(&r, sizeof(r), &x);
	return r;
}

static __always_inline __u32 nw_conn_set_of_m(__u64 sk, __u32 mask)
{
	/* struct sock comes from slabs of ~2 KiB objects: the low bits say
	 * little; a multiplicative hash spreads the rest. */
	return (__u32)(((sk >> 6) * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
}

static __always_inline __u32 nw_conn_set_of(__u64 sk)
{
	return nw_conn_set_of_m(sk, cfg_conn_mask);
}

static __always_inline struct nw_conn *nw_conn_at(__u32 set, __u32 way)
{
	__u32 idx = set * NW_WAYS + way;
	return bpf_map_lookup_elem(&nw_conns, &idx);
}

/* The set of sk (its index in *set), or 0. */
static __always_inline struct nw_conn_set *nw_conn_set(__u64 sk, __u32 *set)
{
	*set = nw_conn_set_of(sk);
	return bpf_map_lookup_elem(&nw_conn_keys, set);
}

/* The way of s that holds sk, or -1. */
static __always_inline int nw_conn_way(struct nw_conn_set *s, __u64 sk)
{
#pragma unroll
	for (int i = 0; i < NW_WAYS; i++) {
		if (*(volatile __u64 *)&s->sk[i] == sk)
			return i;
	}
	return -1;
}

/*
 * The table entry of sk (a number: nw_ptr_num/nw_num), or 0.
 *
 * Every object reads the variant the loader chose from cfg_conn_mask, the
 * load-time constant the array path loads anyway: the verifier knows its
 * value and drops the other branch, so the array path costs what it did.
 * Claims and releases are only made by the connection object, which
 * carries each program twice (conn.bpf.c, "_na" twins): the hash-variant
 * twins hold no atomic instruction at all, which kernels before 5.12
 * refuse even in dead code.
 */
static __always_inline struct nw_conn *nw_conn_find(__u64 sk)
{
	__u32 mask = cfg_conn_mask;
	if (mask == NW_CONN_HASH_MASK) {
		__u64 k = sk; /* on the stack in this branch only */
		return k ? bpf_map_lookup_elem(&nw_conn_hash, &k) : 0;
	}
	if (!sk)
		return 0;
	__u32 set = nw_conn_set_of_m(sk, mask);
	struct nw_conn_set *s = bpf_map_lookup_elem(&nw_conn_keys, &set);
	if (!s)
		return 0;
	int w = nw_conn_way(s, sk);
	return w < 0 ? 0 : nw_conn_at(set, w);
}

/* Hash variant of nw_conn_claim: no atomic instruction (an insert that
 * loses a race finds the winner's entry; 0: the table is full). */
static __always_inline struct nw_conn *nw_conn_claim_hash(__u64 sk)
{
	if (!sk)
		return 0;
	struct nw_conn *c = bpf_map_lookup_elem(&nw_conn_hash, &sk);
	if (c)
		return c;
	struct nw_conn zero = {};
	bpf_map_update_elem(&nw_conn_hash, &sk, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&nw_conn_hash, &sk);
}

static __always_inline void nw_conn_release_hash(__u64 sk)
{
	if (sk)
		bpf_map_delete_elem(&nw_conn_hash, &sk);
}

/* The entry of sk, claimed if it has none (0: its set is full). The caller
 * fills a freshly claimed entry: its value is whatever the slot held.
 * Array variant only (compare-and-swap: 5.12+); see nw_conn_claim_hash. */
static __always_inline struct nw_conn *nw_conn_claim(__u64 sk)
{
	__u32 set;
	struct nw_conn_set *s = sk ? nw_conn_set(sk, &set) : 0;
	if (!s)
		return 0;
	int w = nw_conn_way(s, sk);
	if (w >= 0)
		return nw_conn_at(set, w);
#pragma unroll
	for (int i = 0; i < NW_WAYS; i++) {
		if (*(volatile __u64 *)&s->sk[i] == 0 &&
		    __sync_val_compare_and_swap(&s->sk[i], 0, sk) == 0)
			return nw_conn_at(set, i);
	}
	return 0;
}

/* Forget sk: the slot is free for the next claim of its set. */
static __always_inline void nw_conn_release(__u64 sk)
{
	__u32 set;
	struct nw_conn_set *s = sk ? nw_conn_set(sk, &set) : 0;
	if (!s)
		return;
	int w = nw_conn_way(s, sk);
	if (w < 0)
		return;
	struct nw_conn *c = nw_conn_at(set, w);
	if (c)
		c->est_ns = 0;
	__sync_val_compare_and_swap(&s->sk[w & (NW_WAYS - 1)], sk, 0);
}

#endif /* NW_H */
