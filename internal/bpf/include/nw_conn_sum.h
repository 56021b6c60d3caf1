/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw_conn_sum.h — --summary's data segments and bytes per direction, from
 * the kernel's own per-socket counters (the ones `ss -ti` shows) instead of
 * a program run per packet. Included after nw.h by the connection object
 * (conn.bpf.c): a closing connection's final counters into nw_conn_sum,
 * and the walk that adds up the open ones (nw_iter_sum) into
 * nw_sum_open.
 *
 * What the counters count (struct tcp_sock, all since 4.19; 5.10+ here):
 *   segs_in   data_segs_in:  data segments received, a GRO packet counts its
 *             segments (gso_segs); counted at TCP entry, so duplicates and
 *             out-of-window segments that reach the socket count too
 *   bytes_in  bytes_received: sequence space the receiver advanced over
 *             (rcv_nxt): payload once, duplicates not, and the FIN's one
 *             sequence number
 *   segs_out  data_segs_out: data segments sent, a TSO/GSO skb counts its
 *             segments (tcp_skb_pcount); retransmissions included
 *   bytes_out bytes_sent:    payload bytes sent, retransmissions included
 */
#ifndef NW_CONN_SUM_H
#define NW_CONN_SUM_H

#ifndef NW_H
#error "include nw.h"
#endif

/* Map value of nw_conn_sum and nw_sum_open (conn.bpf.c). */
struct nw_conn_ctr {
	__u64 segs_in;
	__u64 segs_out;
	__u64 bytes_in;
	__u64 bytes_out;
};

/* The counters of a TCP socket; direct: as NW_RD (nw_sock.h). */
static __always_inline void nw_read_ctr(struct nw_conn_ctr *o, const struct sock *sk, bool direct)
{
	const struct tcp_sock *tp = (const void *)sk;
	if (direct) {
		tp = bpf_skc_to_tcp_sock((void *)sk);
		if (!tp)
			return;
	}
	o->segs_in = NW_RD(direct, tp, data_segs_in);
	o->segs_out = NW_RD(direct, tp, data_segs_out);
	o->bytes_in = NW_RD(direct, tp, bytes_received);
	o->bytes_out = NW_RD(direct, tp, bytes_sent);
}

#endif /* NW_CONN_SUM_H */
