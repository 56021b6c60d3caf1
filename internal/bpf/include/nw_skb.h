/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw_skb.h — a packet's IP header and the namespace it travels in, read
 * from an sk_buff at any hook (rejected segments, resets, drops). The
 * headers are read from skb->head with probe reads: their layout is the
 * RFC's, not the kernel's (no CO-RE). Included by nw.h.
 */
#ifndef NW_SKB_H
#define NW_SKB_H

#ifndef NW_H
#error "include nw.h"
#endif

/* The IP header of a packet (its addresses go to the caller's arrays). */
struct nw_skb_ip {
	const unsigned char *head;
	__u16 nh;        /* network header offset from head */
	__u16 th;        /* transport header offset; NW_NO_HEADER: not set yet */
	__u16 toff;      /* where the transport header follows the IP header: IPv4
			  * nh + ihl * 4, IPv6 nh + 40 (before any extension header) */
	__u16 family;    /* AF_INET, AF_INET6 */
	__u8 proto;      /* IPv4 protocol, IPv6 (first) next header */
	__u8 later_frag; /* IPv4: a fragment after the first (no transport header) */
};

#define NW_NO_HEADER ((__u16)~0U)

/* Read skb's IP header into p and its addresses into saddr/daddr (16 bytes
 * each; IPv4 fills the first 4 and leaves the rest): 0, or -1 when it has
 * none (no network header yet, not IPv4 or IPv6, unreadable). Field by
 * field: the programs that call it are short of stack. */
static __always_inline int nw_skb_ip(const struct sk_buff *skb, struct nw_skb_ip *p, __u8 *saddr, __u8 *daddr,
				     bool direct)
{
	p->head = NW_RD(direct, skb, head);
	p->nh = NW_RD(direct, skb, network_header);
	p->th = NW_RD(direct, skb, transport_header);
	p->later_frag = 0;
	if (!p->head || p->nh == NW_NO_HEADER)
		return -1;
	const unsigned char *ip = p->head + p->nh;
	__u8 vhl = 0;
	if (bpf_probe_read_kernel(&vhl, 1, ip))
		return -1;
	if (vhl >> 4 == 4) {
		__be16 frag = 0;
		p->family = AF_INET;
		bpf_probe_read_kernel(&p->proto, 1, ip + 9);
		bpf_probe_read_kernel(&frag, 2, ip + 6);
		p->later_frag = (frag & bpf_htons(0x1fff)) != 0;
		bpf_probe_read_kernel(saddr, 4, ip + 12);
		bpf_probe_read_kernel(daddr, 4, ip + 16);
		p->toff = p->nh + (vhl & 0x0f) * 4;
		return 0;
	}
	if (vhl >> 4 == 6) {
		p->family = AF_INET6;
		bpf_probe_read_kernel(&p->proto, 1, ip + 6);
		bpf_probe_read_kernel(saddr, 16, ip + 8);
		bpf_probe_read_kernel(daddr, 16, ip + 24);
		p->toff = p->nh + 40;
		return 0;
	}
	return -1;
}

/* The namespace a packet travels in: its device's, else (TCP may have
 * cleared skb->dev) its route's device's; 0 when neither is left. */
static __always_inline __u32 nw_skb_netns(const struct sk_buff *skb)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	if (!dev) {
		unsigned long refdst = BPF_CORE_READ(skb, _skb_refdst) & ~1UL; /* SKB_DST_NOREF */
		if (refdst)
			dev = BPF_CORE_READ((struct dst_entry *)refdst, dev);
	}
	if (dev)
		return BPF_CORE_READ(dev, nd_net.net, ns.inum);
	return 0;
}

#endif /* NW_SKB_H */
