/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nw_prog.h — twin programs: two programs from one body. Included by nw.h.
 *
 * Many hooks exist in two forms for kernels of different ages, or for the
 * two connection-table variants; their bodies are the same code with one
 * compile-time flag. The macros below emit both programs (under the names
 * the Go side attaches by) and give the body the flag as a constant
 * argument, so each program compiles to what a hand-written one did.
 *
 * NW_TP_TWINS(tp, btf_name, raw_name, args...) { body }
 *	SEC("tp_btf/tp") btf_name and SEC("raw_tp/tp") raw_name, arguments as
 *	with BPF_PROG; the body sees `ctx` and `direct` (true in the tp_btf
 *	program: BTF pointers, see nw_sock.h).
 *
 * NW_PROG_TWINS(sec_a, name_a, val_a, sec_b, name_b, val_b, flag, args...) { body }
 *	The general form over BPF_PROG-style programs (u64 array context):
 *	name_a runs body with `flag` = val_a, name_b with val_b.
 *
 * NW_CTX_TWINS(sec, ctx_type, name_a, val_a, name_b, val_b, flag) { body }
 *	The same for programs with a typed context (cgroup_skb, iterators,
 *	tracepoints): the body sees `ctx_type *ctx` and `flag`.
 */
#ifndef NW_PROG_H
#define NW_PROG_H

#ifndef NW_H
#error "include nw.h"
#endif

/* One BPF_PROG-style program that runs body with the flag value val. */
#define ___nw_twin(sec, name, body, val, args...)                          \
	SEC(sec) int name(unsigned long long *ctx)                         \
	{                                                                  \
		_Pragma("GCC diagnostic push")                             \
		_Pragma("GCC diagnostic ignored \"-Wint-conversion\"")     \
		return body(val, ___bpf_ctx_cast(args));                   \
		_Pragma("GCC diagnostic pop")                              \
	}

#define NW_PROG_TWINS(sec_a, name_a, val_a, sec_b, name_b, val_b, flag, args...)            \
	static __always_inline int ____##name_a(bool flag, unsigned long long *ctx, ##args); \
	___nw_twin(sec_a, name_a, ____##name_a, val_a, ##args)                              \
	___nw_twin(sec_b, name_b, ____##name_a, val_b, ##args)                              \
	static __always_inline int ____##name_a(bool flag, unsigned long long *ctx, ##args)

#define NW_TP_TWINS(tp, btf_name, raw_name, args...) \
	NW_PROG_TWINS("tp_btf/" #tp, btf_name, true, "raw_tp/" #tp, raw_name, false, direct, ##args)

#define NW_CTX_TWINS(sec, ctx_type, name_a, val_a, name_b, val_b, flag)    \
	static __always_inline int ____##name_a(ctx_type *ctx, bool flag); \
	SEC(sec) int name_a(ctx_type *ctx)                                  \
	{                                                                   \
		return ____##name_a(ctx, val_a);                            \
	}                                                                   \
	SEC(sec) int name_b(ctx_type *ctx)                                  \
	{                                                                   \
		return ____##name_a(ctx, val_b);                            \
	}                                                                   \
	static __always_inline int ____##name_a(ctx_type *ctx, bool flag)

#endif /* NW_PROG_H */
