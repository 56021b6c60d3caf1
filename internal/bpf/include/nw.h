/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw.h — what every netwatcher BPF object shares. Each object (one .bpf.c
 * per concern) includes this header only; it includes the rest, one
 * concern per file:
 *
 *   nw_types.h      common defines, enums (event types, stat indices, owner
 *                   sources) and the records several objects share
 *   nw_ring.h       the two ring buffers and the counters: record
 *                   reserve/submit (the ring is an argument), batched
 *                   wakeups, ring-full counting
 *   nw_ptr.h        a kernel pointer as a number (the table key)
 *   nw_conn_table.h the connection table (both variants): find, claim,
 *                   release
 *   nw_sock.h       socket readers (tuple, netns, tcp_sock values), the
 *                   -s/-d port and -S/-D address filters, the current task
 *                   as owner
 *   nw_skb.h        a packet's IP header and namespace, read from an skb
 *   nw_prog.h       macros that emit twin programs from one body
 *
 * Rule: BPF records raw values (timestamps, pointers, counters); user space
 * gives them meaning. Every object that includes this header declares the
 * same maps; the Go loader replaces them with the instances owned by the
 * connections object (CollectionOptions.MapReplacements), so all concerns
 * see one connection table and one ring buffer.
 *
 * The enums of nw_types.h are the source of truth for Go: internal/event
 * generates its constants from them (internal/event/gen.go, bpf2go -type).
 * Record layouts reach Go as generated types of each concern (bpf2go -type).
 *
 * From vmlinux.h, not redefined here: TCP states (TCP_ESTABLISHED, ...),
 * congestion states (TCP_CA_Recovery, ...), IPPROTO_*. Defined in
 * nw_types.h: what the kernel has as #define only (AF_INET, AF_INET6;
 * vmlinux.h carries types and enums).
 */
#ifndef NW_H
#define NW_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "nw_types.h"
#include "nw_ring.h"
#include "nw_ptr.h"
#include "nw_conn_table.h"
#include "nw_sock.h"
#include "nw_skb.h"
#include "nw_prog.h"

#endif /* NW_H */
