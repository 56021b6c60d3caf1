/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw_ring.h — the ring buffers records go out through, and the counters.
 * Included by nw.h.
 *
 * Two rings: nw_events (lifecycle, retransmission and error records) and
 * nw_pkt_events (per-packet records: high volume), so that a packet flood
 * can never crowd out a connection open/close. Both go through one pair of
 * helpers that take the ring as an argument (always inlined: the map
 * reference is a constant in the generated code):
 *
 *	e = nw_reserve(&nw_events, sizeof(*e), NW_EV_...);
 *	if (!e) return;  (counted: NW_STAT_RB_FULL + type)
 *	... fill e ...
 *	nw_submit(&nw_events, e, sizeof(*e));
 */
#ifndef NW_RING_H
#define NW_RING_H

#ifndef NW_H
#error "include nw.h"
#endif

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* resized by the loader */
} nw_events SEC(".maps");

/* Per-packet records (internal/packet). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 12); /* resized by the loader when packets are traced */
} nw_pkt_events SEC(".maps");

/* Counters, indexed by enum nw_stat. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NW_STAT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} nw_stats SEC(".maps");

static __always_inline void nw_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&nw_stats, &idx);
	if (v)
		(*v)++;
}

/* Reserve a record of size bytes on ring; a failed reservation is counted
 * per event type. */
static __always_inline void *nw_reserve(void *ring, __u64 size, __u8 type)
{
	void *p = bpf_ringbuf_reserve(ring, size, 0);
	if (!p)
		nw_count(NW_STAT_RB_FULL + type);
	return p;
}

/*
 * Batched wakeups: waking the reader for every record costs an irq_work
 * (a self-IPI: in a VM an APIC write, i.e. an exit to the hypervisor) and a
 * context switch per event, which dominated the cost at packet rates. A
 * record wakes the reader only when it makes the backlog cross a multiple of
 * the wakeup step (nw_wake_flag); the reader also polls every few milliseconds
 * (internal/engine), so a lone event is never stuck.
 *
 * Not "whenever the backlog is over the threshold": while the reader is
 * behind (both CPUs busy with the traced load) that queued an irq_work for
 * nearly every record (measured: 3% of a request/response load in
 * native_write_msr alone).
 */
#define NW_WAKEUP_BYTES (64 << 10)
#define NW_RB_HDR 8

/* The wakeup step is NW_WAKEUP_BYTES or 1/32 of the ring, the larger (both
 * powers of two): 512 KiB on the 16 MiB packet ring, 128 KiB on the 4 MiB
 * lifecycle ring. At 64 KiB a request/response load woke each reader
 * ~500 times a second, and every wakeup is an irq_work here plus a
 * goroutine handoff in the tool (measured, http -q -tixre, 5 s A/B/A/B:
 * tool CPU -30%, its context switches 17k -> 6k; rr -q: -19%, 9k -> 5k).
 * A full ring is still 31 steps away when the reader is woken.
 *
 * cfg_wake_shift is the log2 of the ring's steps: 5 (1/32) by default; the
 * loader sets 3 (1/8: 512 KiB of the lifecycle ring, 2 MiB of the packet
 * ring) when nothing shows records as they come (-q: the files are flushed
 * once a second). Each wakeup still costs the tool a chain of goroutine
 * and thread handoffs (measured, churn -q -ax, A/B/A/B/A/B: the lifecycle
 * reader woken 300 -> 80 times in 4 s, context switches 2,150 -> 1,480,
 * tool CPU -12%). A full ring is then still 7 steps away. */
volatile const __u32 cfg_wake_shift = 5;

static __always_inline __u64 nw_wake_flag(__u64 avail, __u64 size, __u64 ring_size)
{
	__u64 used = (size + NW_RB_HDR + 7) & ~7ULL; /* the record's room in the ring */
	__u64 step = ring_size >> (cfg_wake_shift & 31);
	if (step < NW_WAKEUP_BYTES)
		step = NW_WAKEUP_BYTES;
	if (avail < used)
		return BPF_RB_NO_WAKEUP;
	return (avail & ~(step - 1)) != ((avail - used) & ~(step - 1)) ? BPF_RB_FORCE_WAKEUP
								       : BPF_RB_NO_WAKEUP;
}

/* The wakeup flag for a record of size bytes about to be committed on ring
 * (bpf_ringbuf_submit, bpf_ringbuf_output). */
static __always_inline __u64 nw_wake(void *ring, __u64 size)
{
	__u64 avail = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	return nw_wake_flag(avail, size, bpf_ringbuf_query(ring, BPF_RB_RING_SIZE));
}

/* Submit rec, reserved on ring with size bytes. */
static __always_inline void nw_submit(void *ring, void *rec, __u64 size)
{
	bpf_ringbuf_submit(rec, nw_wake(ring, size));
}

#endif /* NW_RING_H */
