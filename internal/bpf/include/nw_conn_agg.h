/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw_conn_agg.h — the connection metrics (--metrics-addr) counted in the
 * kernel: connections opened and closed by network namespace, side and
 * service port class, in a hash map user space reads on each scrape
 * (internal/conn ConnAgg, internal/metrics connagg.go). Included after
 * nw.h by the connection object only.
 *
 * Counted at exactly the places a tracked connection's OPEN and CLOSE
 * records are (or, when the kernel is quiet, would be) emitted, so the
 * counts are those of the records, without a record: -q --metrics-addr
 * keeps the kernel quiet. The increments are atomic adds whose result is
 * not used (BPF_XADD, every kernel; the _na twins may use them): the state
 * hook can interrupt itself on one CPU (process context and softirq).
 */
#ifndef NW_CONN_AGG_H
#define NW_CONN_AGG_H

#ifndef NW_H
#error "include nw.h"
#endif

/* Set by the loader with --metrics-addr (conn.Options.ConnAgg). */
volatile const bool cfg_conn_agg = false;

/* The service ports above 1023 that have a port class of their own
 * (metrics.PortClasses: --mysql-port, --redis-port and their defaults);
 * 0 = unused slot. 1..1023 always have theirs. Constants, not a map: a
 * classification is at most a few compares, no lookup. */
#define NW_AGG_PORTS 8
volatile const __u16 cfg_agg_ports[NW_AGG_PORTS] = {};

/* Key of nw_conn_agg: port is the server's port (local port of the server
 * side, remote port of the client side) if it has a class, else 0. */
struct nw_conn_agg_key {
	__u32 netns;
	__u16 port;
	__u8 server;
	__u8 _pad;
};

struct nw_conn_agg_val {
	__u64 opened;
	__u64 closed;
};

/* Bounded by its key: namespaces x 2 sides x (1023 + service ports + 1);
 * a key it refuses falls back to port 0 (counted: conn_agg_full).
 * Preallocated (tracing programs on kernels before 6.1 need that); never
 * deleted from. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct nw_conn_agg_key);
	__type(value, struct nw_conn_agg_val);
} nw_conn_agg SEC(".maps");

static __always_inline __u16 nw_agg_port(__u16 p)
{
	if (p > 0 && p < 1024)
		return p;
#pragma unroll
	for (int i = 0; i < NW_AGG_PORTS; i++)
		if (cfg_agg_ports[i] && cfg_agg_ports[i] == p)
			return p;
	return 0;
}

static __always_inline struct nw_conn_agg_val *nw_agg_get(const struct nw_conn_agg_key *k)
{
	struct nw_conn_agg_val *v = bpf_map_lookup_elem(&nw_conn_agg, k);
	if (v)
		return v;
	struct nw_conn_agg_val zero = {};
	/* EEXIST: another CPU made it first, fine */
	bpf_map_update_elem(&nw_conn_agg, k, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&nw_conn_agg, k);
}

/* A tracked connection c opened (close false) or closed (close true). */
static __always_inline void nw_conn_agg_add(const struct nw_conn *c, bool close)
{
	if (!cfg_conn_agg)
		return;
	struct nw_conn_agg_key k = {
		.netns = c->netns,
		.server = c->is_server ? 1 : 0,
	};
	k.port = nw_agg_port(c->is_server ? c->sport : c->dport);
	struct nw_conn_agg_val *v = nw_agg_get(&k);
	if (!v) {
		/* full: under the same namespace and side, port class 0
		 * ("ephemeral"), if that key exists or can be made */
		nw_count(NW_STAT_CONN_AGG_FULL);
		k.port = 0;
		v = nw_agg_get(&k);
		if (!v)
			return;
	}
	if (close)
		__sync_fetch_and_add(&v->closed, 1);
	else
		__sync_fetch_and_add(&v->opened, 1);
}

#endif /* NW_CONN_AGG_H */
