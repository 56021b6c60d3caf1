/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw_types.h — the types and enums of the kernel <-> Go interface, shared
 * by every object (see nw.h). Needs vmlinux.h only: internal/event's
 * object includes just this, to generate Go constants from the enums.
 */
#ifndef NW_TYPES_H
#define NW_TYPES_H

#define AF_INET 2
#define AF_INET6 10

/* Event types (the first byte of every ring record). */
enum nw_event_type {
	NW_EV_CONN_OPEN = 1,   /* struct nw_conn_event: reached ESTABLISHED */
	NW_EV_CONN_OWNER = 2,  /* struct nw_conn_event: owner learned/changed */
	NW_EV_CONN_CLOSE = 3,  /* struct nw_conn_event: reached CLOSE, final stats */
	NW_EV_STATE = 4,       /* internal/tcpstate: a TCP state transition */
	NW_EV_RST = 5,         /* internal/rst: a TCP reset sent or received */
	NW_EV_RTT = 6,         /* internal/rtt (--rtt): a connection's RTT histogram at close */
	NW_EV_PACKET = 10,     /* internal/packet */
	NW_EV_UDP = 11,        /* internal/udp (-u): a UDP datagram (packet ring) */
	NW_EV_UDP_FLOW = 12,   /* internal/udp (-u): a UDP flow's counters */
	NW_EV_ICMP = 13,       /* internal/icmp (-I): an ICMP message (packet ring) */
	NW_EV_DNS = 14,        /* internal/dns (-N): a DNS message (packet ring) */
	NW_EV_NF = 15,         /* internal/netfilter (-n): a packet's netfilter hook times (packet ring) */
	NW_EV_REDIS = 16,      /* -R: a Redis payload (application capture, packet ring) */
	NW_EV_MYSQL = 17,      /* -M: a MySQL/MariaDB payload (application capture, packet ring) */
	NW_EV_RETRANS = 20,    /* internal/retrans */
	NW_EV_CONG = 21,       /* internal/retrans */
	NW_EV_ERROR = 30,      /* internal/drops */
	NW_EV_DROP = 31,       /* internal/dropreason (-k): any dropped packet */
	NW_EV__MAX = 32,
};

/* Counters in the `nw_stats` per-CPU array. */
enum nw_stat {
	NW_STAT_RB_FULL = 0,        /* + event type: ring reservation failed */
	NW_STAT_CONN_MAP_FULL = 32, /* a connection could not be tracked: table full */
	NW_STAT_CONN_FILTERED = 33, /* a connection not tracked: -s/-d/-S/-D */
	/* internal/packet (-t), one condition each: */
	NW_STAT_PKT_MAP_FULL = 34,     /* sent segments waiting in a qdisc: nw_pkt_txpend full */
	NW_STAT_PKT_QUEUE_ALLOC = 35,  /* a socket's stamp queue could not be made (storage, hash full) */
	NW_STAT_PKT_RX_UNREAD = 36,    /* a socket's receive stamps queue full: the application does not read */
	NW_STAT_PKT_TX_CHUNKS = 37,    /* a socket's send chunk ring full: the oldest chunk's time forgotten */
	NW_STAT_LISTEN_MAP_FULL = 38,  /* internal/conn: a listener not in nw_listen_socks (-x lines): map full */
	NW_STAT_UDP_FLOW_FULL = 39,    /* internal/udp (-u): a UDP flow not counted: nw_udp_flows full */
	NW_STAT_UDP_RX_UNREAD = 40,    /* -u -t: a socket's receive FIFO full (or not made): record without copy time */
	NW_STAT_UDP_TX_FULL = 41,      /* -u -t: a sent datagram's stamps not kept: nw_udp_txpend full */
	/* internal/icmp (-I): */
	NW_STAT_ICMP_RX_PEND_FULL = 42, /* a received echo recorded at ICMP entry, without its end: nw_icmp_rxpend full (or a duplicate waiting) */
	NW_STAT_ICMP_TX_PEND_FULL = 43, /* a sent ICMP message recorded at IP entry, without queue/driver stamps: nw_icmp_txpend full */
	/* internal/netfilter (-n): */
	NW_STAT_NF_UNMATCHED = 48,     /* a hook's end found another packet's start stamp (nested or migrated traversal): not timed */
	NW_STAT_NF_EVICTED = 49,       /* a packet's pending hook times evicted before its last hook or a drop: no record */
	/* internal/conn with --metrics-addr: */
	NW_STAT_CONN_AGG_FULL = 59,    /* a connection counted under port class 0, or not at all: nw_conn_agg full */
	/* internal/conn with -r (internal/retrans): */
	NW_STAT_RETRANS_UNSEEN = 60,   /* segments a closed connection's kernel counted as retransmitted (total_retrans) that -r did not see */
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
	__u32 rtx_base;        /* -r: tp->total_retrans - retrans_segs when the entry began to count
				* (conn.bpf.c): at close, total_retrans - rtx_base - retrans_segs is what
				* -r did not see (NW_STAT_RETRANS_UNSEEN) */
	__u32 _pad2;
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

/* Ring records of the connection, retransmission and error concerns start
 * with this (packet records have their own, shorter start). */
struct nw_hdr {
	__u8 type;  /* enum nw_event_type */
	__u8 _pad[3];
	__u32 netns;
	__u64 ts;   /* bpf_ktime_get_ns() */
	__u64 sk;   /* struct sock * */
};

#endif /* NW_TYPES_H */
