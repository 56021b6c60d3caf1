/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw_listeners.h — the owners of listening sockets, by namespace and port:
 * written by the connection object at listen() (and by the start-up walk),
 * read by it to give an accepted connection its provisional owner, and by
 * internal/dropreason to name the owner of a listener's drops. Not part of
 * nw.h: include it after nw.h in the objects that use it; the Go loader
 * shares the connection object's instance (conn.Probe.SharedMaps).
 */
#ifndef NW_LISTENERS_H
#define NW_LISTENERS_H

#ifndef NW_H
#error "include nw.h"
#endif

/* (netns << 16 | port) -> owner of the listener. Preallocated (~1.3 MiB):
 * before 6.1 a tracing program using a hash map that allocates at run time
 * makes the verifier print a kernel WARNING with a call trace (seen on 5.10
 * in the kernel matrix). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct nw_owner);
} nw_listeners SEC(".maps");

static __always_inline __u64 nw_listener_key(__u32 netns, __u16 port)
{
	return ((__u64)netns << 16) | port;
}

#endif /* NW_LISTENERS_H */
