// Package fault injects TCP faults into live connections that run between
// network namespaces joined by veth pairs, so that netwatcher's error and
// retransmit tracing can be tested against real kernel behaviour.
//
// Four faults are provided:
//
//   - BadCsum: data segments with a deliberately wrong TCP checksum, written
//     with a raw socket from the sender's namespace, using the connection's
//     4-tuple and the sequence/ack numbers learned by sniffing the flow.
//     The receiver only verifies checksums when its veth does not trust
//     them: see SetRxChecksum.
//   - OutOfWindow: data segments with a valid checksum and a sequence number
//     far in the future (rcv_nxt+2^30), far in the past (rcv_nxt-2^30) or
//     in the receive window but out of order (rcv_nxt+offset).
//   - Drop: an nft rule at the receiver's ingress drops one in N packets of
//     the flow (fast retransmits).
//   - Blackout: an nft rule drops every packet of the flow for a short time,
//     possibly repeated (RTO timeouts).
//
// Safety. Every operation acts inside a named network namespace
// (/run/netns/NAME) that must not be the root namespace, and refuses to run
// (with a *UsageError) otherwise. The segment writers additionally check that
// the sender's address is local in that namespace, that there is a live TCP
// socket with the flow's 4-tuple there, and that the route to the
// destination either stays inside the namespace or leaves through a veth
// whose peer sits in another named, non-root namespace in which the
// destination address is local. Nothing is ever sent anywhere else. The nft
// based faults only install drop rules, inside the given namespace, in a
// table of their own that is removed when they return.
package fault
