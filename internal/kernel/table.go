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
)

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
