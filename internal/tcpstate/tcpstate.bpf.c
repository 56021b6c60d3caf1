//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * -P: TCP state transitions, with the time spent in the previous state.
 *
 * sock/inet_sock_set_state fires for every state change of every TCP
 * socket (the connection tracker, conn.bpf.c, hooks the same tracepoint and
 * is attached first, so its entry for the socket is up to date here). One
 * NW_EV_STATE record per transition of a TCP socket (v4/v6) whose ports
 * pass -s/-d. A listener's own transitions are left out (a listener is not a
 * connection); the birth of each of its children (LISTEN -> SYN_RECV) is kept.
 *
 * Time in the previous state: the time of the socket's previous transition
 * is kept in nw_state_last (an LRU hash by socket, removed at CLOSE). A
 * socket's first transition seen has none (0: unknown): a connection that
 * existed before netwatcher started, or a child socket, born in SYN_RECV
 * from its listener when the handshake's last ACK arrived. So the handshake
 * latency of the connecting side is exact (CLOSE -> SYN_SENT at connect(),
 * SYN_SENT -> ESTABLISHED when the SYN-ACK arrives); the accepted side's
 * SYN_RECV -> ESTABLISHED is the time from the child's creation to its
 * establishment (the request socket before it has no state transitions).
 *
 * Attribution: est_lo names the connection (socket + establishment time,
 * as packet records do) once the tracker has it established, and is kept in
 * nw_state_last so the transitions after the tracker dropped the entry (the
 * close) still carry it, with the local port (the kernel releases it
 * before the CLOSE transition). The owner is the tracker's entry's; at connect()
 * (CLOSE -> SYN_SENT, process context) it is the current task. The local
 * port is not bound yet at that moment: that record has port 0, and the -s
 * filter lets it through.
 */
#include "nw.h"

char LICENSE[] SEC("license") = "GPL";

/* NW_EV_STATE. */
struct nw_state_event {
	struct nw_hdr hdr;
	__u64 in_old_ns; /* time in the old state (0: unknown) */
	__u32 est_lo;    /* low 32 bits of the tracker's est_ns (0: not established yet) */
	__u8 old_state;  /* TCP_* */
	__u8 new_state;
	__u16 family;
	__u16 sport;     /* local port, host order (0: not bound yet) */
	__u16 dport;     /* remote port, host order */
	__u8 _pad[4];
	__u8 saddr[16];
	__u8 daddr[16];
	struct nw_owner owner;
};

struct nw_state_last {
	__u64 ts;     /* the socket's previous transition */
	__u32 est_lo; /* as in the record, once known */
	__u16 sport;  /* the local port, once bound (the kernel lets it go before CLOSE) */
	__u16 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072); /* sockets in transition; sized by the loader (--max-conns) */
	__type(key, __u64);
	__type(value, struct nw_state_last);
} nw_state_last SEC(".maps");

static __always_inline int on_transition(const struct sock *sk, int old, int new, bool direct)
{
	/* a listener's own transitions (CLOSE -> LISTEN -> CLOSE); its
	 * children's births (LISTEN -> SYN_RECV) are kept */
	if (new == TCP_LISTEN || (old == TCP_LISTEN && new != TCP_SYN_RECV))
		return 0;
	__u16 family = nw_tcp_family(sk, direct);
	if (!family)
		return 0;
	struct nw_conn t = {};
	nw_fill_tuple(&t, sk, direct);
	__u64 now = bpf_ktime_get_ns();
	__u64 key = direct ? nw_ptr_num(sk) : (__u64)sk;
	struct nw_state_last *last = bpf_map_lookup_elem(&nw_state_last, &key);
	if (!t.sport && last)
		t.sport = last->sport;
	if (!nw_ports_wanted(t.sport ? t.sport : cfg_sport, t.dport) || !nw_addrs_wanted(family, t.saddr, t.daddr))
		return 0;

	const struct nw_conn *c = nw_conn_find(key);
	__u32 est_lo = last ? last->est_lo : 0;
	if (c && c->est_ns)
		est_lo = (__u32)c->est_ns;

	struct nw_state_event *e = nw_reserve(&nw_events, sizeof(*e), NW_EV_STATE);
	if (e) {
		e->hdr.type = NW_EV_STATE;
		e->hdr.netns = t.netns;
		e->hdr.ts = now;
		e->hdr.sk = key;
		e->in_old_ns = last && last->ts ? now - last->ts : 0;
		e->est_lo = est_lo;
		e->old_state = old;
		e->new_state = new;
		e->family = family;
		e->sport = t.sport;
		e->dport = t.dport;
		__builtin_memcpy(e->saddr, t.saddr, 16);
		__builtin_memcpy(e->daddr, t.daddr, 16);
		if (c && c->owner.pid)
			e->owner = c->owner;
		else if (old == TCP_CLOSE && new == TCP_SYN_SENT)
			nw_owner_current(&e->owner, NW_OWNER_SYSCALL);
		else
			__builtin_memset(&e->owner, 0, sizeof(e->owner));
		nw_submit(&nw_events, e, sizeof(*e));
	}

	if (new == TCP_CLOSE) {
		bpf_map_delete_elem(&nw_state_last, &key);
	} else if (last) {
		last->ts = now;
		last->est_lo = est_lo;
		last->sport = t.sport;
	} else {
		struct nw_state_last n = {.ts = now, .est_lo = est_lo, .sport = t.sport};
		bpf_map_update_elem(&nw_state_last, &key, &n, BPF_ANY);
	}
	return 0;
}

NW_TP_TWINS(inet_sock_set_state, nw_tcpstate_btf, nw_tcpstate_raw, const struct sock *sk, int old, int new)
{
	return on_transition(sk, old, new, direct);
}

/* for bpf2go -type (Go decodes the record through the generated type) */
const struct nw_state_event *nw_unused_state_event __attribute__((unused));
