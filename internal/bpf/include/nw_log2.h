/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw_log2.h — the log2 bucket index of the in-kernel histograms (--summary
 * -t layer times, -n hook times): floor(log2(v)), 0 for 0 and 1. Bucket i
 * counts values in [2^i, 2^(i+1)); Go's event.log2Quantile reads them back.
 */
#ifndef NW_LOG2_H
#define NW_LOG2_H

static __always_inline __u32 nw_log2_u64(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

#endif /* NW_LOG2_H */
