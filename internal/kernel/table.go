package kernel

// THE hook table: every observation point ("boundary") of every concern,
// with its candidate hooks best first. Kernel variation lives here and only
// here: a concern attaches a boundary by name and Attach picks the first
// candidate the running kernel offers (Available: attach point present,
// kind supported, Needs met). To read what netwatcher needs of a kernel,
// and what it falls back to, read this file.
//
// A concern with hooks adds its boundary names below and its rows to table;
// the programs (Prog) live in the concern's BPF object. Tests in each
// concern load every candidate's program (the verifier checks them all, even
// the ones this kernel would not attach), and the kernel matrix
// (scripts/kernels, cmd/nwkcheck hooks) checks every candidate runs on some
// kernel.

// Boundary names, by concern.
const (
	// conn: connection lifecycle and owners (always on).
	ConnState   = "conn/state"   // every TCP state change: open, close
	ConnRecv    = "conn/recv"    // owner learned from a receive
	ConnSend    = "conn/send"    // owner learned from a send
	ConnAccept4 = "conn/accept4" // owner of an accepted connection
	ConnAccept  = "conn/accept"

	// packet: record makers (always attached with packets on) ...
	PktRxTCP = "packet/rx-tcp" // receive: TCP entry, makes received records
	PktTxOut = "packet/tx-out" // send: IP output, makes sent records
	// ... host-wide layer boundaries (-t) ...
	PktRxLink  = "packet/rx-link"  // receive: link arrival
	PktRxCopy  = "packet/rx-copy"  // receive: copy to the application
	PktRxTaken = "packet/rx-taken" // receive: consumed without a user copy (splice)
	PktClose   = "packet/close"    // flush of uncopied segments at close
	PktTxTCP   = "packet/tx-tcp"   // send: TCP entry
	PktTxQueue = "packet/tx-queue" // send: device queue
	PktTxXmit  = "packet/tx-xmit"  // send: driver transmit
	// ... and the IP entry, per network namespace where it is a netfilter link (-t).
	PktRxIP = "packet/rx-ip"
	PktTxIP = "packet/tx-ip"

	// tcpstate (-P).
	StateChange = "tcpstate/change" // every TCP state change

	// rst (--rst).
	RstSend  = "rst/send"  // a reset sent (reason 6.10+)
	RstRecv  = "rst/recv"  // a reset received by a full socket
	RstClose = "rst/close" // transitions to CLOSE: the state an active reset aborted

	// rtt (--rtt).
	RttSockOps = "rtt/sockops" // RTT samples, established and state callbacks

	// retrans (-r).
	RtxSkb  = "retrans/skb"  // a retransmitted skb
	RtxCong = "retrans/cong" // a congestion-state change

	// drops (-e).
	DropKfree     = "drops/kfree_skb"
	DropCsum      = "drops/bad_csum"
	DropCsumEntry = "drops/bad_csum-entry" // keeps the skb for DropCsum's kretprobe (before 5.14)
	DropRxSock    = "drops/rx-sock"        // socket of a received segment where kfree_skb has no rx_sk (before 6.11)

	// dropreason (-k).
	DropReason = "dropreason/kfree_skb" // every dropped packet, any protocol

	// l7cap (-N, -R, -M): every UDP datagram / TCP segment to or from an
	// application port (DNS, Redis, MySQL).
	L7Egress  = "l7cap/egress"  // sent by a local socket (UDP: the sender's process context)
	L7Ingress = "l7cap/ingress" // received by a local socket
	L7Owner   = "l7cap/owner"   // UDP sendmsg entry: the sender (where cgroup_skb lacks bpf_get_current_comm)

	// udp (-u): flows ...
	UDPRx      = "udp/rx"       // receive: UDP entry (flows)
	UDPTx      = "udp/tx"       // send: IP output (flows)
	UDPOwner   = "udp/owner"    // owner of a socket: recvmsg returned
	UDPOwnerTx = "udp/owner-tx" // owner of a socket: sendmsg returned
	UDPDrop    = "udp/drop"     // a datagram dropped for a socket
	// ... and with -t the layer boundaries of each datagram
	UDPRxLink  = "udp/rx-link"  // receive: link arrival
	UDPRxIP    = "udp/rx-ip"    // receive: IP entry (per netns)
	UDPRxCopy  = "udp/rx-copy"  // receive: recvmsg returned the datagram
	UDPTxIP    = "udp/tx-ip"    // send: IP entry (per netns)
	UDPTxQueue = "udp/tx-queue" // send: device queue
	UDPTxXmit  = "udp/tx-xmit"  // send: driver transmit

	// netfilter (-n): each hook's first and last BPF-link priority (per
	// network namespace), and drops inside a hook.
	NfPreFirst  = "netfilter/PRE_ROUTING-first"
	NfPreLast   = "netfilter/PRE_ROUTING-last"
	NfInFirst   = "netfilter/LOCAL_IN-first"
	NfInLast    = "netfilter/LOCAL_IN-last"
	NfFwdFirst  = "netfilter/FORWARD-first"
	NfFwdLast   = "netfilter/FORWARD-last"
	NfOutFirst  = "netfilter/LOCAL_OUT-first"
	NfOutLast   = "netfilter/LOCAL_OUT-last"
	NfPostFirst = "netfilter/POST_ROUTING-first"
	NfPostLast  = "netfilter/POST_ROUTING-last"
	NfDrop      = "netfilter/kfree_skb"
	NfSlow      = "netfilter/hook-slow"     // before netfilter links: a hook's traversal, entry ...
	NfSlowRet   = "netfilter/hook-slow-ret" // ... and return (verdict)

	// icmp (-I): receive ...
	ICMPRxLink = "icmp/rx-link" // link arrival
	ICMPRxIP   = "icmp/rx-ip"   // IP entry (per netns)
	ICMPRxICMP = "icmp/rx-icmp" // ICMP entry (per netns): makes received records
	ICMPRxCopy = "icmp/rx-copy" // an echo copied to an application
	// ... and send
	ICMPTxIP    = "icmp/tx-ip"    // IP entry (per netns): makes sent records; the kernel's echo replies
	ICMPTxQueue = "icmp/tx-queue" // device queue
	ICMPTxXmit  = "icmp/tx-xmit"  // driver transmit
)

// UDPNetfilterPriority: udp's netfilter links (-u -t), after packet's.
const UDPNetfilterPriority = NetfilterPriority + 5

// Features some programs need beyond their attach point.
var (
	castCtx = KfuncFeature("bpf_cast_to_kern_ctx", "Linux 6.2+")
)

var table = []Boundary{
	// conn
	{ConnState, []Candidate{
		{Kind: TpBTF, Target: "inet_sock_set_state", Prog: "nw_state_btf"},
		{Kind: RawTP, Target: "inet_sock_set_state", Prog: "nw_state_raw"},
	}},
	{ConnAccept4, []Candidate{{Kind: Tracepoint, Target: "syscalls/sys_exit_accept4", Prog: "nw_accept4_exit"}}},
	{ConnAccept, []Candidate{{Kind: Tracepoint, Target: "syscalls/sys_exit_accept", Prog: "nw_accept_exit"}}},
	{ConnRecv, []Candidate{{Kind: TpBTF, Target: "sock_recv_length", Prog: "nw_recv_len"}}},
	{ConnSend, []Candidate{{Kind: TpBTF, Target: "sock_send_length", Prog: "nw_send_len"}}},

	// packet
	{PktRxLink, []Candidate{{Kind: TpBTF, Target: "netif_receive_skb", Prog: "nw_pkt_rx_mac"}}},
	{PktRxCopy, []Candidate{{Kind: TpBTF, Target: "skb_copy_datagram_iovec", Prog: "nw_pkt_rx_copy"}}},
	{PktRxTaken, []Candidate{{Kind: TpBTF, Target: "tcp_rcv_space_adjust", Prog: "nw_pkt_rx_consumed"}}},
	{PktClose, []Candidate{{Kind: TpBTF, Target: "inet_sock_set_state", Prog: "nw_pkt_close"}}},
	// tcp/tcp_sendmsg_locked is a 6.13+ tracepoint; before it, a kprobe on
	// the function (chunks kept by socket in a hash map: see cfg_txq_hash),
	// and before 6.5 also on do_tcp_sendpages, where sendfile() and splice()
	// to a TCP socket went instead.
	{PktTxTCP, []Candidate{
		{Kind: TpBTF, Target: "tcp_sendmsg_locked", Prog: "nw_pkt_tx_tcp"},
		{Kind: Kprobe, Target: "tcp_sendmsg_locked,do_tcp_sendpages", Prog: "nw_pkt_tx_tcp_kp"},
		{Kind: Kprobe, Target: "tcp_sendmsg_locked", Prog: "nw_pkt_tx_tcp_kp"},
	}},
	{PktTxQueue, []Candidate{{Kind: TpBTF, Target: "net_dev_queue", Prog: "nw_pkt_tx_queue"}}},
	{PktTxXmit, []Candidate{{Kind: TpBTF, Target: "net_dev_start_xmit", Prog: "nw_pkt_tx_xmit"}}},
	// cgroup_skb on the cgroup v2 root sees every namespace: tcp_filter() on
	// receive (before the socket backlog may coalesce segments),
	// ip_finish_output() on send. Two variants: through the kernel's sk_buff
	// (bpf_cast_to_kern_ctx, 6.2+), else through the context.
	{PktRxTCP, []Candidate{
		{Kind: CgroupSKB, Target: "ingress", Prog: "nw_pkt_rx_tcp", Needs: []Feature{castCtx}},
		{Kind: CgroupSKB, Target: "ingress", Prog: "nw_pkt_rx_tcp_ctx"},
	}},
	{PktTxOut, []Candidate{
		{Kind: CgroupSKB, Target: "egress", Prog: "nw_pkt_tx_out", Needs: []Feature{castCtx}},
		{Kind: CgroupSKB, Target: "egress", Prog: "nw_pkt_tx_out_ctx"},
	}},
	// There is no tracepoint at IP entry: netfilter links (6.4+), one set
	// per network namespace (attached by the namespace manager); before 6.4,
	// kprobes on the first IP function, host-wide.
	{PktRxIP, []Candidate{
		{Kind: Netfilter, Target: "PRE_ROUTING", Prog: "nw_pkt_rx_ip"},
		{Kind: Kprobe, Target: "ip_rcv_core,ip6_rcv_core", Prog: "nw_pkt_rx_ip_kp"},
	}},
	{PktTxIP, []Candidate{
		{Kind: Netfilter, Target: "LOCAL_OUT", Prog: "nw_pkt_tx_ip"},
		{Kind: Kprobe, Target: "ip_queue_xmit,inet6_csk_xmit", Prog: "nw_pkt_tx_ip_kp"},
	}},

	// tcpstate
	{StateChange, []Candidate{
		{Kind: TpBTF, Target: "inet_sock_set_state", Prog: "nw_tcpstate_btf"},
		{Kind: RawTP, Target: "inet_sock_set_state", Prog: "nw_tcpstate_raw"},
	}},

	// rst
	{RstSend, []Candidate{
		{Kind: TpBTF, Target: "tcp_send_reset", Prog: "nw_rst_tx_btf"},
		{Kind: RawTP, Target: "tcp_send_reset", Prog: "nw_rst_tx_raw"},
	}},
	{RstRecv, []Candidate{
		{Kind: TpBTF, Target: "tcp_receive_reset", Prog: "nw_rst_rx_btf"},
		{Kind: RawTP, Target: "tcp_receive_reset", Prog: "nw_rst_rx_raw"},
	}},
	{RstClose, []Candidate{
		{Kind: TpBTF, Target: "inet_sock_set_state", Prog: "nw_rst_close_btf"},
		{Kind: RawTP, Target: "inet_sock_set_state", Prog: "nw_rst_close_raw"},
	}},

	// rtt: sock_ops is the only place the kernel hands out its RTT samples
	// (tcp_bpf_rtt in tcp_rtt_estimator); the samples themselves need 6.10+
	// (before, the program records srtt, flagged so: internal/rtt)
	{RttSockOps, []Candidate{{Kind: SockOps, Target: "root", Prog: "nw_rtt_sockops"}}},

	// retrans
	{RtxSkb, []Candidate{
		{Kind: TpBTF, Target: "tcp_retransmit_skb", Prog: "nw_rtx_btf"},
		{Kind: RawTP, Target: "tcp_retransmit_skb", Prog: "nw_rtx_raw"},
	}},
	// before 5.15 there is no tcp_cong_state_set: episodes are counted at
	// retransmit time instead (retrans.Concern, cfg_cong_from_rtx)
	{RtxCong, []Candidate{
		{Kind: TpBTF, Target: "tcp_cong_state_set", Prog: "nw_cong_btf"},
		{Kind: RawTP, Target: "tcp_cong_state_set", Prog: "nw_cong_raw"},
	}},

	// drops
	{DropKfree, []Candidate{
		{Kind: TpBTF, Target: "kfree_skb", Prog: "nw_kfree_btf"},
		{Kind: RawTP, Target: "kfree_skb", Prog: "nw_kfree_raw"},
	}},
	{DropCsum, []Candidate{
		{Kind: TpBTF, Target: "tcp_bad_csum", Prog: "nw_csum_btf"},
		{Kind: RawTP, Target: "tcp_bad_csum", Prog: "nw_csum_raw"},
		// before 5.14: a bad sum returned by __skb_checksum_complete (with
		// DropCsumEntry, which keeps its skb)
		{Kind: Kretprobe, Target: "__skb_checksum_complete", Prog: "nw_csum_ret_kp"},
	}},
	{DropCsumEntry, []Candidate{{Kind: Kprobe, Target: "__skb_checksum_complete", Prog: "nw_csum_entry_kp"}}},
	{DropRxSock, []Candidate{
		{Kind: TpBTF, Target: "tcp_probe", Prog: "nw_drop_rxsk_btf"},
		{Kind: RawTP, Target: "tcp_probe", Prog: "nw_drop_rxsk_raw"},
	}},

	// dropreason
	{DropReason, []Candidate{
		{Kind: TpBTF, Target: "kfree_skb", Prog: "nw_dropr_btf"},
		{Kind: RawTP, Target: "kfree_skb", Prog: "nw_dropr_raw"},
	}},

	// l7cap: cgroup_skb on the cgroup v2 root (every namespace, the local
	// socket in the context); no kfunc: one candidate for every kernel
	{L7Egress, []Candidate{{Kind: CgroupSKB, Target: "egress", Prog: "nw_l7_tx"}}},
	{L7Ingress, []Candidate{{Kind: CgroupSKB, Target: "ingress", Prog: "nw_l7_rx"}}},
	// the sender of a UDP datagram where cgroup_skb may not call
	// bpf_get_current_comm (before 6.18): kprobes (not on every kernel)
	{L7Owner, []Candidate{{Kind: Kprobe, Target: "udp_sendmsg,udpv6_sendmsg", Prog: "nw_l7_owner_kp"}}},

	// udp: cgroup_skb on the cgroup v2 root sees every namespace; UDP runs
	// the ingress program for the receiving socket (sk_filter in
	// udp_queue_rcv_one_skb), the egress one in ip_finish_output in the
	// sender's context. Variants as for packet/rx-tcp.
	{UDPRx, []Candidate{
		{Kind: CgroupSKB, Target: "ingress", Prog: "nw_udp_rx", Needs: []Feature{castCtx}},
		{Kind: CgroupSKB, Target: "ingress", Prog: "nw_udp_rx_ctx"},
	}},
	{UDPTx, []Candidate{
		{Kind: CgroupSKB, Target: "egress", Prog: "nw_udp_tx", Needs: []Feature{castCtx}},
		{Kind: CgroupSKB, Target: "egress", Prog: "nw_udp_tx_ctx"},
	}},
	// sock_recv_length and sock_send_length are 6.3+; before, kprobes at
	// the entry of UDP's recvmsg/sendmsg (where the kernel has kprobes; a
	// socket's first send has no cookie yet: noted from the next one on)
	{UDPOwner, []Candidate{
		{Kind: TpBTF, Target: "sock_recv_length", Prog: "nw_udp_owner_btf"},
		{Kind: RawTP, Target: "sock_recv_length", Prog: "nw_udp_owner_raw"},
		{Kind: Kprobe, Target: "udp_recvmsg,udpv6_recvmsg", Prog: "nw_udp_owner_kp"},
	}},
	{UDPOwnerTx, []Candidate{
		{Kind: TpBTF, Target: "sock_send_length", Prog: "nw_udp_owner_tx_btf"},
		{Kind: RawTP, Target: "sock_send_length", Prog: "nw_udp_owner_tx_raw"},
		{Kind: Kprobe, Target: "udp_sendmsg,udpv6_sendmsg", Prog: "nw_udp_owner_tx_kp"},
	}},
	// a datagram dropped for a socket: the flow's rx_drops, and with -t
	// it leaves the socket's FIFO (kfree_skb's rx_sk, 6.11+, names the
	// socket; socket storage needs tp_btf)
	{UDPDrop, []Candidate{{Kind: TpBTF, Target: "kfree_skb", Prog: "nw_udp_rx_drop"}}},
	{UDPRxLink, []Candidate{{Kind: TpBTF, Target: "netif_receive_skb", Prog: "nw_udp_rx_link"}}},
	// netfilter BPF links of one hook may not share a priority (EBUSY):
	// packet's are at NetfilterPriority, udp's just after (still before
	// defragmentation and conntrack)
	{UDPRxIP, []Candidate{{Kind: Netfilter, Target: "PRE_ROUTING", Prog: "nw_udp_rx_ip", Priority: UDPNetfilterPriority}}},
	// the datagram's copy ends recvmsg: UDP copies linear skbs without the
	// skb_copy_datagram_iovec tracepoint (copy_linear_skb); socket storage
	// (the FIFO) needs tp_btf
	{UDPRxCopy, []Candidate{{Kind: TpBTF, Target: "sock_recv_length", Prog: "nw_udp_rx_copy"}}},
	{UDPTxIP, []Candidate{{Kind: Netfilter, Target: "LOCAL_OUT", Prog: "nw_udp_tx_ip", Priority: UDPNetfilterPriority}}},
	{UDPTxQueue, []Candidate{{Kind: TpBTF, Target: "net_dev_queue", Prog: "nw_udp_tx_queue"}}},
	{UDPTxXmit, []Candidate{{Kind: TpBTF, Target: "net_dev_start_xmit", Prog: "nw_udp_tx_xmit"}}},

	// netfilter: the same two programs at every hook, v4 and v6, at the
	// first and the last priority a BPF link may take (NF_IP_PRI_FIRST and
	// NF_IP_PRI_LAST themselves are refused); netfilter links are 6.4+
	{NfPreFirst, []Candidate{{Kind: Netfilter, Target: "PRE_ROUTING", Prog: "nw_nf_first", Priority: NfFirstPriority}}},
	{NfPreLast, []Candidate{{Kind: Netfilter, Target: "PRE_ROUTING", Prog: "nw_nf_last", Priority: NfLastPriority}}},
	{NfInFirst, []Candidate{{Kind: Netfilter, Target: "LOCAL_IN", Prog: "nw_nf_first", Priority: NfFirstPriority}}},
	{NfInLast, []Candidate{{Kind: Netfilter, Target: "LOCAL_IN", Prog: "nw_nf_last", Priority: NfLastPriority}}},
	{NfFwdFirst, []Candidate{{Kind: Netfilter, Target: "FORWARD", Prog: "nw_nf_first", Priority: NfFirstPriority}}},
	{NfFwdLast, []Candidate{{Kind: Netfilter, Target: "FORWARD", Prog: "nw_nf_last", Priority: NfLastPriority}}},
	{NfOutFirst, []Candidate{{Kind: Netfilter, Target: "LOCAL_OUT", Prog: "nw_nf_first", Priority: NfFirstPriority}}},
	{NfOutLast, []Candidate{{Kind: Netfilter, Target: "LOCAL_OUT", Prog: "nw_nf_last", Priority: NfLastPriority}}},
	{NfPostFirst, []Candidate{{Kind: Netfilter, Target: "POST_ROUTING", Prog: "nw_nf_first", Priority: NfFirstPriority}}},
	{NfPostLast, []Candidate{{Kind: Netfilter, Target: "POST_ROUTING", Prog: "nw_nf_last", Priority: NfLastPriority}}},
	{NfDrop, []Candidate{
		{Kind: TpBTF, Target: "kfree_skb", Prog: "nw_nf_kfree_btf"},
		{Kind: RawTP, Target: "kfree_skb", Prog: "nw_nf_kfree_raw"},
	}},
	// before 6.4 (no netfilter links): nf_hook_slow, host-wide, entry and
	// return: the whole traversal of a hook that has functions
	{NfSlow, []Candidate{{Kind: Kprobe, Target: "nf_hook_slow", Prog: "nw_nf_slow_kp"}}},
	{NfSlowRet, []Candidate{{Kind: Kretprobe, Target: "nf_hook_slow", Prog: "nw_nf_slow_ret_kp"}}},

	// icmp: there is no tracepoint at IP or ICMP entry nor at IP output:
	// netfilter links (6.4+), one set per network namespace; without
	// them -I does not run.
	{ICMPRxLink, []Candidate{
		{Kind: TpBTF, Target: "netif_receive_skb", Prog: "nw_icmp_rx_link"},
		{Kind: RawTP, Target: "netif_receive_skb", Prog: "nw_icmp_rx_link_raw"},
	}},
	{ICMPRxIP, []Candidate{{Kind: Netfilter, Target: "PRE_ROUTING", Prog: "nw_icmp_rx_ip"}}},
	{ICMPRxICMP, []Candidate{{Kind: Netfilter, Target: "LOCAL_IN", Prog: "nw_icmp_rx_icmp"}}},
	{ICMPRxCopy, []Candidate{
		{Kind: TpBTF, Target: "skb_copy_datagram_iovec", Prog: "nw_icmp_rx_copy"},
		{Kind: RawTP, Target: "skb_copy_datagram_iovec", Prog: "nw_icmp_rx_copy_raw"},
	}},
	{ICMPTxIP, []Candidate{{Kind: Netfilter, Target: "LOCAL_OUT", Prog: "nw_icmp_tx_ip"}}},
	{ICMPTxQueue, []Candidate{
		{Kind: TpBTF, Target: "net_dev_queue", Prog: "nw_icmp_tx_queue"},
		{Kind: RawTP, Target: "net_dev_queue", Prog: "nw_icmp_tx_queue_raw"},
	}},
	{ICMPTxXmit, []Candidate{
		{Kind: TpBTF, Target: "net_dev_start_xmit", Prog: "nw_icmp_tx_xmit"},
		{Kind: RawTP, Target: "net_dev_start_xmit", Prog: "nw_icmp_tx_xmit_raw"},
	}},
}

// Hooks is the table by boundary name.
var Hooks = func() map[string]Boundary {
	m := make(map[string]Boundary, len(table))
	for _, b := range table {
		if _, dup := m[b.Name]; dup {
			panic("kernel: boundary " + b.Name + " twice in the hook table")
		}
		m[b.Name] = b
	}
	return m
}()

// Table returns the boundaries in table order (a copy).
func Table() []Boundary { return append([]Boundary(nil), table...) }
