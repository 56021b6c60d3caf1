//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * Connection tracking: lifecycle, owner attribution, pre-existing sockets and
 * -x sampling. Owns the shared maps of nw.h (ring buffer, connection table,
 * counters); other concerns reuse them.
 *
 * Owner attribution (pid/comm): the state-change hook often runs in softirq,
 * where the current task is whoever happened to be on the CPU. So the owner is
 * only ever taken in process context: connect() (CLOSE->SYN_SENT) for the
 * connecting side; for the accepted side the first send/recv on the socket
 * (sock_send_length / sock_recv_length), or, on kernels without those
 * tracepoints, accept() return (fd -> file -> socket -> sock). Until then a
 * server-side socket carries the listener's owner, marked provisional.
 *
 * Why not accept() first: a syscall tracepoint puts every syscall of every
 * task on the host on the slow path (measured here: getppid 167 -> 224 ns),
 * a cost paid by all traffic, not only by new connections. The send/recv
 * tracepoints fire per socket operation instead, and leave after one look
 * into the connection table (a hash, then one cache line of keys) unless the
 * socket is tracked and its owner still provisional.
 */
#include "nw.h"
#include "nw_listeners.h"
#include "nw_conn_sum.h"
#include "nw_conn_agg.h"

char LICENSE[] SEC("license") = "GPL";

/* NW_EV_CONN_OPEN, NW_EV_CONN_OWNER, NW_EV_CONN_CLOSE. */
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
	__u16 proto;           /* task_file walk: sk_protocol */
	__u8 _pad[6];
	struct nw_conn_ctr ctr; /* task_file walk with --summary: the counters
				 * at adoption (nw_conn_sum's key 1) */
};

/* Listener iterator record (-x): one listening TCP socket, read live. */
struct nw_listen_rec {
	__u64 sk;
	struct nw_conn conn; /* local side (family, sport, saddr, netns) + owner */
	__u32 backlog;       /* sk->sk_ack_backlog: accept queue length */
	__u32 max_backlog;   /* sk->sk_max_ack_backlog: its limit */
	__u32 drops;         /* sk->sk_drops: every tcp_listendrop() */
	__u8 state;          /* skc_state: not TCP_LISTEN = a stale entry */
	__u8 _pad[3];
};

/*
 * Two table variants (nw.h): every program that claims, releases or swaps
 * is built twice from the same code, with a compile-time `na` (no atomics)
 * argument like `direct`: NAME for the set-associative arrays (one
 * compare-and-swap per claim; 5.12+), NAME_na for the hash map (no atomic
 * instruction with a fetch anywhere: 5.10/5.11 refuse those even in dead
 * code). The loader keeps one of each pair under NAME (conn.Load), so the
 * hook table and the rest of the loader know one name per program.
 */

/* -q without -a... see conn.Options.Quiet: no OPEN/OWNER records; user
 * space learns open connections from the once-a-second table walk instead. */
volatile const bool cfg_quiet = false;
/* ... and without -a/-i nobody needs the close either: the walk that finds
 * open connections also finds the ones gone (conn.Options.NoClose). */
volatile const bool cfg_no_close = false;
/* --summary: a closing connection's counters go into nw_conn_sum. */
volatile const bool cfg_conn_sum = false;
/* -r: a closing connection's retransmitted segments that -r did not see
 * go into NW_STAT_RETRANS_UNSEEN (below, "What -r did not see"). */
volatile const bool cfg_rtx_unseen = false;
/* Neither -x nor -r shows the once-a-second walk's tcp_sock values
 * (conn.Options.WalkNoStats): the walk reports the entries only. */
volatile const bool cfg_walk_no_stats = false;

/*
 * --summary's per-direction counts (nw_conn_sum.h) of the connections
 * that closed: key 0, per CPU, the final counters of every tracked
 * connection at its close. Key 1 is user space's: the counters the
 * adopted connections (older than netwatcher) had at adoption, which do
 * not count. A walk (nw_iter_sum, below) adds up the open connections'
 * current counters; user space subtracts key 1. Nothing here is written
 * by a walk: a walk that races with a close or with a slot's reuse can
 * only misread one total, never change what later totals add up to.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct nw_conn_ctr);
} nw_conn_sum SEC(".maps");

/* fin into nw_conn_sum[0]: atomic adds without fetch (BPF_XADD, every
 * kernel): before 6.10 nothing stops the state hook from interrupting
 * itself on one CPU (process context and softirq). */
static __always_inline void conn_sum_add(const struct nw_conn_ctr *fin)
{
	__u32 zero = 0;
	struct nw_conn_ctr *s = bpf_map_lookup_elem(&nw_conn_sum, &zero);
	if (!s)
		return;
	__sync_fetch_and_add(&s->segs_in, fin->segs_in);
	__sync_fetch_and_add(&s->segs_out, fin->segs_out);
	__sync_fetch_and_add(&s->bytes_in, fin->bytes_in);
	__sync_fetch_and_add(&s->bytes_out, fin->bytes_out);
}

/*
 * What -r did not see (cfg_rtx_unseen). The kernel counts every
 * retransmitted segment of a socket in tp->total_retrans; internal/retrans
 * counts those its tcp_retransmit_skb hook saw in the entry's retrans_segs.
 * They differ where no program ran: before 6.14 a retransmission whose
 * transmit failed (counted, not traced), a hook skipped by the kernel
 * (README, "Events no BPF program sees"). An entry records rtx_base =
 * total_retrans - retrans_segs when it begins to count; at close,
 * total_retrans - rtx_base - retrans_segs is what was not seen, added to
 * NW_STAT_RETRANS_UNSEEN when positive (negative: -r saw more than the
 * kernel counted, not counted). When it begins:
 *  - connect() (SYN_SENT): the SYN's retransmissions are in both counts
 *    (internal/retrans counts them before ESTABLISHED, "pre_est");
 *  - a listener's child, at ESTABLISHED: the kernel starts the child's
 *    total_retrans at its request socket's SYN-ACK retransmissions
 *    (tcp_create_openreq_child: total_retrans = req->num_retrans), which
 *    tcp_retransmit_skb never sees (they are tcp_retransmit_synack); at
 *    SYN_RECV total_retrans is still the listener's copy;
 *  - an entry claimed late (at ESTABLISHED: refused at SYN time, or
 *    connecting before netwatcher started): its handshake was not counted;
 *  - adopted at start-up (nw_iter_files, nw_adopt): what it had then.
 * State changes and retransmissions of a socket are serialized by its
 * lock, so each of these is exact; only user space's adoption races (see
 * nw_adopt). Connections still open at exit are not compared.
 */
static __always_inline __u32 total_retrans(const struct sock *sk, bool direct)
{
	const struct tcp_sock *tp = (const void *)sk;
	if (direct) {
		tp = bpf_skc_to_tcp_sock((void *)sk);
		if (!tp)
			return 0;
	}
	return NW_RD(direct, tp, total_retrans);
}

/* The entry c begins to count what -r does not see (above). */
static __always_inline void rtx_begin(struct nw_conn *c, const struct sock *sk, bool direct)
{
	__u32 seen = c->retrans_segs; /* first: a retransmission in between cancels out */
	c->rtx_base = total_retrans(sk, direct) - seen;
}

/* At close: what -r did not see of the connection (c still its entry). */
static __always_inline void rtx_unseen(const struct nw_conn *c, const struct sock *sk, bool direct)
{
	__s32 d = (__s32)(total_retrans(sk, direct) - c->rtx_base - c->retrans_segs);
	if (d <= 0)
		return;
	__u32 idx = NW_STAT_RETRANS_UNSEEN;
	__u64 *v = bpf_map_lookup_elem(&nw_stats, &idx);
	if (v)
		__sync_fetch_and_add(v, (__u64)d); /* no fetch: every kernel (see conn_sum_add) */
}

/* Listening TCP sockets for -x: the socket (pointer as number, like the
 * connection table's keys) -> the listener's owner. Inserted at the
 * TCP_LISTEN transition (and by the start-up walk for listeners older than
 * netwatcher), deleted at LISTEN -> CLOSE, in the state hook, before the
 * socket can be freed. nw_iter_listeners reads each socket's accept queue
 * and drop counter with probe reads (see there why that is safe). A listener
 * this full map refuses is counted (listener_table_full). Preallocated for
 * the reason above. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct nw_owner);
} nw_listen_socks SEC(".maps");

/* How many tracked connections wait for their owner (owner_pending set):
 * while none does, the first-I/O hooks leave after reading this counter,
 * so long-lived connections pay nothing per send/recv. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
} nw_owner_waiting SEC(".maps");

static __always_inline void waiting_add(__s64 d)
{
	__u32 zero = 0;
	__s64 *w = bpf_map_lookup_elem(&nw_owner_waiting, &zero);
	if (w)
		__sync_fetch_and_add(w, d);
}

/* Write n into the (claimed) table entry c, keeping nw_owner_waiting exact.
 * Entries are written when a connection starts (or is adopted), before any
 * process can send or receive on it; the flag is still swapped atomically
 * because the slot may hold a stale entry of the same socket. */
static __always_inline void put_conn(struct nw_conn *c, struct nw_conn *n, bool na)
{
	__u64 pending = n->owner.src < NW_OWNER_IO;
	n->owner_pending = pending;
	__u64 was;
	if (na) {
		/* no exchange before 5.12: the counter may drift by a race,
		 * so first_io does not trust it there (its tracepoints,
		 * sock_recv_length/sock_send_length, are newer than 6.1) */
		was = c->owner_pending;
		c->owner_pending = pending;
	} else {
		was = __sync_lock_test_and_set(&c->owner_pending, pending);
	}
	*c = *n;
	if (pending != was)
		waiting_add((__s64)pending - (__s64)was);
}

/* The owner is final (or the connection goes): no longer waiting. */
static __always_inline void owner_done(struct nw_conn *c, bool na)
{
	if (na) {
		if (c->owner_pending) {
			c->owner_pending = 0;
			waiting_add(-1);
		}
		return;
	}
	if (__sync_lock_test_and_set(&c->owner_pending, 0))
		waiting_add(-1);
}

static __always_inline struct nw_conn *claim(__u64 key, bool na)
{
	return na ? nw_conn_claim_hash(key) : nw_conn_claim(key);
}

static __always_inline void release(__u64 key, bool na)
{
	if (na)
		nw_conn_release_hash(key);
	else
		nw_conn_release(key);
}


/* OPEN and OWNER records end before `stats` (only CLOSE carries them): a
 * cache line less to write into the ring per event. */
#define NW_CONN_SHORT __builtin_offsetof(struct nw_conn_event, stats)

static __always_inline void emit_conn(__u8 type, __u64 key, const struct nw_conn *c,
				      const struct sock *sk, bool direct)
{
	struct nw_conn_event *e;
	__u64 size = type == NW_EV_CONN_CLOSE ? sizeof(*e) : NW_CONN_SHORT;
	if (type == NW_EV_CONN_CLOSE)
		e = nw_reserve(&nw_events, sizeof(*e), type);
	else
		e = nw_reserve(&nw_events, NW_CONN_SHORT, type);
	if (!e)
		return;
	e->hdr.type = type;
	e->hdr.netns = c->netns;
	e->hdr.ts = bpf_ktime_get_ns();
	e->hdr.sk = key;
	__builtin_memcpy(&e->conn, c, sizeof(*c));
	if (type == NW_EV_CONN_CLOSE)
		nw_read_stats(&e->stats, sk, direct);
	nw_submit(&nw_events, e, size);
}

/* direct: called from tp_btf (BTF pointer, direct loads), see NW_RD. */
static __always_inline int on_state(const struct sock *sk, int old, int new, bool direct, bool na)
{
	/* Half of all transitions (FIN_WAIT*, TIME_WAIT, CLOSE_WAIT, LAST_ACK,
	 * CLOSING) mean nothing here: leave before reading anything. */
	switch (new) {
	case TCP_LISTEN:
	case TCP_SYN_SENT:
	case TCP_SYN_RECV:
	case TCP_ESTABLISHED:
	case TCP_CLOSE:
		break;
	default:
		return 0;
	}
	__u16 family = nw_tcp_family(sk, direct);
	if (!family)
		return 0;

	/* the table key: the socket's address as a number (see nw_ptr_num) */
	__u64 key = direct ? nw_ptr_num(sk) : (__u64)sk;
	struct nw_conn *c;

	switch (new) {
	case TCP_LISTEN: {
		/* process context: listen() */
		struct nw_owner o = {};
		nw_owner_current(&o, NW_OWNER_SYSCALL);
		__u64 lk = nw_listener_key(nw_sk_netns(sk, direct), NW_RD(direct, sk, __sk_common.skc_num));
		bpf_map_update_elem(&nw_listeners, &lk, &o, BPF_ANY);
		if (bpf_map_update_elem(&nw_listen_socks, &key, &o, BPF_ANY))
			nw_count(NW_STAT_LISTEN_MAP_FULL);
		return 0;
	}
	case TCP_SYN_SENT: {
		/* process context: connect(); the local port is not bound yet.
		 * A full set is not counted here: see TCP_ESTABLISHED. */
		c = claim(key, na);
		if (!c)
			return 0;
		struct nw_conn n = {};
		nw_owner_current(&n.owner, NW_OWNER_SYSCALL);
		if (cfg_rtx_unseen)
			rtx_begin(&n, sk, direct);
		put_conn(c, &n, na);
		return 0;
	}
	case TCP_SYN_RECV: {
		/* softirq: a child socket of a listener */
		if (old != TCP_LISTEN)
			return 0;
		struct nw_conn n = {};
		nw_fill_tuple(&n, sk, direct);
		if (!nw_conn_wanted(&n))
			return 0;
		__u64 lk = nw_listener_key(n.netns, n.sport);
		struct nw_owner *lo = bpf_map_lookup_elem(&nw_listeners, &lk);
		if (lo) {
			n.owner = *lo;
			n.owner.src = NW_OWNER_LISTENER;
		}
		n.is_server = 1;
		c = claim(key, na);
		if (!c)
			return 0; /* not counted: see TCP_ESTABLISHED */
		put_conn(c, &n, na);
		return 0;
	}
	case TCP_ESTABLISHED: {
		c = nw_conn_find(key);
		if (c) {
			/* usual case: the entry made at SYN_SENT / SYN_RECV. Filled
			 * again: at SYN_SENT the port is not bound yet, and a child
			 * enters SYN_RECV (inet_csk_clone_lock) before its remote
			 * port and addresses are set. */
			nw_fill_tuple(c, sk, direct);
			if (!nw_conn_wanted(c)) {
				owner_done(c, na);
				release(key, na);
				nw_count(NW_STAT_CONN_FILTERED);
				return 0;
			}
			c->is_server = old == TCP_SYN_RECV;
			c->est_ns = bpf_ktime_get_ns();
			if (cfg_rtx_unseen && c->is_server)
				rtx_begin(c, sk, direct); /* a child: not at SYN_RECV (see rtx_begin) */
			if (!cfg_quiet)
				emit_conn(NW_EV_CONN_OPEN, key, c, sk, direct);
			nw_conn_agg_add(c, false);
			return 0;
		}
		struct nw_conn n = {};
		nw_fill_tuple(&n, sk, direct);
		if (!nw_conn_wanted(&n)) {
			nw_count(NW_STAT_CONN_FILTERED);
			return 0;
		}
		n.is_server = old == TCP_SYN_RECV;
		n.est_ns = bpf_ktime_get_ns();
		if (cfg_rtx_unseen)
			rtx_begin(&n, sk, direct);
		/* Refused at SYN time (or started before we did): a second
		 * chance now. conn_table_full counts connections, and only
		 * here: a refusal at SYN_SENT/SYN_RECV followed by one here
		 * was counted twice (--max-conns=64 with 100 connections:
		 * 36 untracked, 72 counted), a slot found here means the
		 * connection is tracked after all, and a SYN that never
		 * establishes is no connection. */
		c = claim(key, na);
		if (!c) {
			nw_count(NW_STAT_CONN_MAP_FULL);
			return 0;
		}
		put_conn(c, &n, na);
		if (!cfg_quiet)
			emit_conn(NW_EV_CONN_OPEN, key, &n, sk, direct);
		nw_conn_agg_add(&n, false);
		return 0;
	}
	case TCP_CLOSE: {
		if (old == TCP_LISTEN) {
			__u64 lk = nw_listener_key(nw_sk_netns(sk, direct), NW_RD(direct, sk, __sk_common.skc_num));
			bpf_map_delete_elem(&nw_listeners, &lk);
			bpf_map_delete_elem(&nw_listen_socks, &key);
			return 0;
		}
		c = nw_conn_find(key);
		if (!c)
			return 0;
		bool est = c->est_ns != 0;
		if (est && !cfg_no_close)
			emit_conn(NW_EV_CONN_CLOSE, key, c, sk, direct);
		if (est)
			nw_conn_agg_add(c, true); /* before the release: c is still this connection's */
		if (cfg_rtx_unseen && est)
			rtx_unseen(c, sk, direct);
		struct nw_conn_ctr fin = {};
		if (cfg_conn_sum && est)
			nw_read_ctr(&fin, sk, direct);
		owner_done(c, na);
		release(key, na);
		/* after the release: a walk that starts once these adds are
		 * visible cannot find the connection any more (counted once) */
		if (cfg_conn_sum && est)
			conn_sum_add(&fin);
		return 0;
	}
	}
	return 0;
}

/* --- state change: candidates in internal/kernel hook table --- */

NW_TP_TWINS(inet_sock_set_state, nw_state_btf, nw_state_raw, const struct sock *sk, int old, int new)
{
	return on_state(sk, old, new, direct, false);
}

NW_TP_TWINS(inet_sock_set_state, nw_state_btf_na, nw_state_raw_na, const struct sock *sk, int old, int new)
{
	return on_state(sk, old, new, direct, true);
}

/* No kprobe on tcp_set_state for kernels without the tracepoint (< 4.16):
 * they have no BPF ring buffer (5.8) either, so it could never run. */

/* --- owner attribution in process context --- */

static __always_inline void set_owner(__u64 key, __u8 src, bool na)
{
	struct nw_conn *c = nw_conn_find(key);
	if (!c || c->owner.src >= src)
		return;
	__u32 was = c->owner.pid;
	nw_owner_current(&c->owner, src);
	owner_done(c, na);
	/* Tell user space only when the owner really changed (the common
	 * case, accept() by the listener's own process, needs no event: the
	 * sampler picks up the better provenance within a second). */
	if (!cfg_quiet && c->est_ns && c->owner.pid != was)
		emit_conn(NW_EV_CONN_OWNER, key, c, 0, false);
}

struct sys_exit_ctx {
	__u64 common;
	int nr;
	int _pad;
	long ret;
};

/* accept()/accept4() return: the accepted socket's owner. */
static __always_inline int on_accept_ret(struct sys_exit_ctx *ctx, bool na)
{
	long fd = ctx->ret;
	if (fd < 0)
		return 0;
	struct task_struct *task = (void *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
	if (!fds || fd >= max)
		return 0;
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return 0;
	struct socket *so = BPF_CORE_READ(f, private_data);
	if (!so)
		return 0;
	struct sock *sk = BPF_CORE_READ(so, sk);
	if (!sk)
		return 0;
	set_owner((__u64)sk, NW_OWNER_SYSCALL, na);
	return 0;
}

NW_CTX_TWINS("tracepoint/syscalls/sys_exit_accept4", struct sys_exit_ctx,
	     nw_accept4_exit, false, nw_accept4_exit_na, true, na)
{
	return on_accept_ret(ctx, na);
}

NW_CTX_TWINS("tracepoint/syscalls/sys_exit_accept", struct sys_exit_ctx,
	     nw_accept_exit, false, nw_accept_exit_na, true, na)
{
	return on_accept_ret(ctx, na);
}

/* Accepted side (and any connection whose connect() was not seen): the first
 * send/recv in process context. Every other socket operation of the host
 * leaves after one look into the connection table. */
static __always_inline void first_io(struct sock *sk, bool na)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return;
	__u32 zero = 0;
	__s64 *w = bpf_map_lookup_elem(&nw_owner_waiting, &zero);
	if (!na && w && *w <= 0)
		return; /* no connection waits for its owner (exact only with atomics) */
	set_owner(nw_ptr_num(sk), NW_OWNER_IO, na);
}

NW_PROG_TWINS("tp_btf/sock_recv_length", nw_recv_len, false, "tp_btf/sock_recv_length", nw_recv_len_na, true,
	      na, struct sock *sk, int ret, int flags)
{
	first_io(sk, na);
	return 0;
}

NW_PROG_TWINS("tp_btf/sock_send_length", nw_send_len, false, "tp_btf/sock_send_length", nw_send_len_na, true,
	      na, struct sock *sk, int ret, int flags)
{
	first_io(sk, na);
	return 0;
}

/* --- iterators --- */

/* Start-up: every TCP socket that some process holds open, on the whole host
 * (the task list is not per network namespace). */
#define NW_S_IFMT 00170000
#define NW_S_IFSOCK 0140000

/* The socket of file, or 0. helper: bpf_sock_from_file (5.11+); without
 * it (the _na twin, for 5.10): a socket inode whose struct socket points
 * back to this very file. */
static __always_inline struct socket *sock_of(struct file *file, bool helper)
{
	if (helper)
		return bpf_sock_from_file(file);
	struct inode *ino = BPF_CORE_READ(file, f_inode);
	if (!ino || (BPF_CORE_READ(ino, i_mode) & NW_S_IFMT) != NW_S_IFSOCK)
		return 0;
	struct socket *so = BPF_CORE_READ(file, private_data);
	if (!so || (__u64)BPF_CORE_READ(so, file) != (__u64)file)
		return 0;
	return so;
}

NW_CTX_TWINS("iter/task_file", struct bpf_iter__task_file, nw_iter_files, true, nw_iter_files_na, false, helper)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	if (!task || !file)
		return 0;
	struct socket *so = sock_of(file, helper);
	if (!so)
		return 0;
	struct sock *sk = BPF_CORE_READ(so, sk);
	if (!sk)
		return 0;
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	/* MPTCP listeners count too (Go >= 1.24 listens with MPTCP by default;
	 * what they accept from plain-TCP clients is TCP): they tell which
	 * pre-existing connections are the accepted side. */
	if (proto != IPPROTO_TCP && !(proto == IPPROTO_MPTCP && state == TCP_LISTEN))
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;

	struct nw_iter_rec r = {};
	r.sk = (__u64)sk;
	nw_fill_tuple(&r.conn, sk, false);
	r.conn.owner.pid = BPF_CORE_READ(task, tgid);
	r.conn.owner.src = NW_OWNER_PREEXIST;
	BPF_CORE_READ_STR_INTO(&r.conn.owner.comm, task, comm);
	r.stats.state = state;
	r.proto = proto;
	if (cfg_conn_sum && proto == IPPROTO_TCP)
		nw_read_ctr(&r.ctr, sk, false);
	if (cfg_rtx_unseen && proto == IPPROTO_TCP)
		rtx_begin(&r.conn, sk, false); /* the hash variant adopts with this (conn.go) */
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}

/* One record of the walks below: connection sk, its entry c, and its
 * current tcp_sock values. */
static __always_inline void iter_conn(struct seq_file *seq, __u64 sk, const struct nw_conn *c)
{
	struct nw_iter_rec r = {};
	r.sk = sk;
	__builtin_memcpy(&r.conn, c, sizeof(r.conn));
	if (!cfg_walk_no_stats)
		nw_read_stats(&r.stats, (const struct sock *)sk, false);
	bpf_seq_write(seq, &r, sizeof(r));
}

/*
 * --summary's count of the open connections (nw_conn_sum.h): one walk of
 * the table adds up the current tcp_sock counters of every tracked
 * connection into nw_sum_open (user space zeroes it before each walk and
 * reads it after; one walk at a time). nw_conn_sum has the closed ones;
 * user space adds both and subtracts what the adopted connections had at
 * adoption (connsum.go). Read only: a walk that races with a close or a
 * slot's reuse misreads this one total (a connection seen both open here
 * and closed there, or in neither), never a later one.
 *
 * Not loaded with the connection object itself: the concern that makes
 * --summary's records (internal/packet) gets the shared maps only, so it
 * loads these two from this object into a collection of their own
 * (conn.LoadSumWalk). Iterators, CO-RE reads and array lookups: 5.10 has
 * them all (unlike the packet object, which needs bpf_loop).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nw_conn_ctr);
} nw_sum_open SEC(".maps");

static __always_inline void sum_open_add(struct nw_conn_ctr *s, __u64 sk)
{
	struct nw_conn_ctr v = {};
	nw_read_ctr(&v, (const struct sock *)sk, false);
	s->segs_in += v.segs_in;
	s->segs_out += v.segs_out;
	s->bytes_in += v.bytes_in;
	s->bytes_out += v.bytes_out;
}

/*
 * The two walks of the set-associative table: the once-a-second one
 * (nw_iter_conns: every tracked connection with its current tcp_sock
 * values, for -q's table, -x and the sweep) and --summary's
 * (nw_iter_sum). One iterator call per NW_WALK_SETS sets: the iterator
 * runs over nw_walk_chunks, whose element k stands for sets
 * [k * NW_WALK_SETS, (k + 1) * NW_WALK_SETS) (the loader sizes it:
 * sets / NW_WALK_SETS, at least 1; Go's walkSets). One call per set cost
 * ~52 ns of iterator machinery per set, 3.4 ms per walk of the default
 * 65,536 sets, most of it for empty sets; the loop costs a few ns per set.
 * A bounded loop, not bpf_loop: it loads wherever the arrays do (5.12+;
 * bpf_loop is 5.17+), so there is one program per walk on every kernel.
 *
 * Why not all sets in one call: what one call writes with bpf_seq_write
 * must fit the iterator's buffer (8 pages): 16 full sets are 128 records
 * of 216 bytes, 27,648 bytes. The verifier walks the 16 x 8 slots one by
 * one (6.18: ~50,000 instructions for nw_iter_conns, ~23,000 for
 * nw_iter_sum, of the 1,000,000 allowed); nw_sum_open is looked up once
 * per call: looked up per slot, nw_iter_sum took ~238,000.
 */
#define NW_WALK_SETS 16

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* sets / NW_WALK_SETS; resized by the loader */
	__type(key, __u32);
	__type(value, __u8);
} nw_walk_chunks SEC(".maps");

enum nw_walk { NW_WALK_SAMPLE, NW_WALK_SUM };

static __always_inline void walk_sets(struct bpf_iter__bpf_map_elem *ctx, enum nw_walk what)
{
	struct seq_file *seq = ctx->meta->seq;
	__u32 *key = ctx->key;
	if (!key)
		return;
	struct nw_conn_ctr *sum = 0;
	if (what == NW_WALK_SUM) {
		__u32 zero = 0;
		sum = bpf_map_lookup_elem(&nw_sum_open, &zero);
		if (!sum)
			return;
	}
	__u32 first = *key * NW_WALK_SETS;
	for (__u32 j = 0; j < NW_WALK_SETS; j++) {
		__u32 si = first + j;
		struct nw_conn_set *set = bpf_map_lookup_elem(&nw_conn_keys, &si);
		if (!set)
			return; /* past the last set (a table of fewer sets) */
		for (int i = 0; i < NW_WAYS; i++) {
			__u64 sk = set->sk[i];
			if (!sk)
				continue;
			struct nw_conn *c = nw_conn_at(si, i);
			if (!c)
				continue;
			if (what == NW_WALK_SAMPLE)
				iter_conn(seq, sk, c);
			else if (c->est_ns && sum)
				sum_open_add(sum, sk);
		}
	}
}

/* The once-a-second walk (see above). */
SEC("iter/bpf_map_elem")
int nw_iter_conns(struct bpf_iter__bpf_map_elem *ctx)
{
	walk_sets(ctx, NW_WALK_SAMPLE);
	return 0;
}

/* The same walk over the hash variant, one connection per call. */
SEC("iter/bpf_map_elem")
int nw_iter_conns_na(struct bpf_iter__bpf_map_elem *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	__u64 *key = ctx->key;
	struct nw_conn *c = ctx->value;
	if (key && c)
		iter_conn(seq, *key, c);
	return 0;
}

/* --summary's walk of the open connections (see above). */
SEC("iter/bpf_map_elem")
int nw_iter_sum(struct bpf_iter__bpf_map_elem *ctx)
{
	walk_sets(ctx, NW_WALK_SUM);
	return 0;
}

/* The hash variant: one connection per call. */
SEC("iter/bpf_map_elem")
int nw_iter_sum_na(struct bpf_iter__bpf_map_elem *ctx)
{
	__u64 *key = ctx->key;
	struct nw_conn *c = ctx->value;
	__u32 zero = 0;
	struct nw_conn_ctr *sum = bpf_map_lookup_elem(&nw_sum_open, &zero);
	if (key && c && c->est_ns && sum)
		sum_open_add(sum, *key);
	return 0;
}

/* The -x listener walk: every listening TCP socket with its accept queue
 * and drop counter, one per call.
 *
 * Why the probe reads on a pointer taken from a map are safe enough: the
 * entry is deleted in the LISTEN -> CLOSE transition (tcp_close, or
 * tcp_disconnect for shutdown()), while the caller still holds its
 * reference; TCP listeners are freed only after an RCU grace period
 * (SOCK_RCU_FREE, set when they are hashed, 4.7+), and this program runs
 * inside the iterator's RCU read section, so a socket whose entry the walk
 * still finds cannot be freed before the walk is past it. Probe reads
 * never fault in any case; a stale entry (a listener closed between the
 * start-up walk and user space's insert) reads a state other than
 * TCP_LISTEN, which user space skips. */
SEC("iter/bpf_map_elem")
int nw_iter_listeners(struct bpf_iter__bpf_map_elem *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	__u64 *key = ctx->key;
	struct nw_owner *o = ctx->value;
	if (!key || !o)
		return 0;
	const struct sock *sk = (const struct sock *)*key;
	struct nw_listen_rec r = {};
	r.sk = *key;
	nw_fill_tuple(&r.conn, sk, false);
	__builtin_memcpy(&r.conn.owner, o, sizeof(r.conn.owner));
	r.backlog = BPF_CORE_READ(sk, sk_ack_backlog);
	r.max_backlog = BPF_CORE_READ(sk, sk_max_ack_backlog);
	r.drops = BPF_CORE_READ(sk, sk_drops.counter);
	r.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		r.state = 0;
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}

/* Adopt a connection found by the start-up walk (user space runs this with
 * BPF_PROG_RUN): claimed atomically, like the hooks claim theirs. Array
 * variant only: the hash variant's user space inserts with BPF_NOEXIST,
 * which is atomic without a program (and works before 5.14).
 * Returns one of NW_ADOPT_*. */
enum {
	NW_ADOPT_OK = 0,
	NW_ADOPT_EXISTS = 1, /* already tracked (a hook saw it first) */
	NW_ADOPT_FULL = 2,   /* its set is full */
};

struct nw_adopt_args {
	__u64 sk;
	struct nw_conn conn;
};

SEC("syscall")
int nw_adopt(struct nw_adopt_args *a)
{
	__u64 sk = a->sk;
	if (nw_conn_find(sk))
		return NW_ADOPT_EXISTS;
	struct nw_conn *c = nw_conn_claim(sk);
	if (!c) {
		nw_count(NW_STAT_CONN_MAP_FULL);
		return NW_ADOPT_FULL;
	}
	struct nw_conn n;
	__builtin_memcpy(&n, &a->conn, sizeof(n));
	put_conn(c, &n, false);
	/* The walk's rtx_base is some milliseconds old: a retransmission since
	 * then, unseen (no entry yet), would count as unseen at close. Read
	 * now, once the entry is claimed, it is exact. The socket may have
	 * gone since the walk (probe reads never fault; its close was not
	 * seen by this entry, which a new socket at this address overwrites). */
	if (cfg_rtx_unseen)
		rtx_begin(c, (const struct sock *)sk, false);
	return NW_ADOPT_OK;
}

/* Make the record types visible in BTF for bpf2go -type. */
const struct nw_conn_event *nw_unused_conn_event __attribute__((unused));
const struct nw_iter_rec *nw_unused_iter_rec __attribute__((unused));
const struct nw_adopt_args *nw_unused_adopt_args __attribute__((unused));
const struct nw_listen_rec *nw_unused_listen_rec __attribute__((unused));
const struct nw_conn_ctr *nw_unused_conn_ctr __attribute__((unused));
