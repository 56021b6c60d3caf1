//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * No programs and no maps: this object exists for its BTF. It names the
 * enums user space mirrors, so that bpf2go emits them as Go constants
 * (gen.go, -type); event.go defines its constants from those. The C enums
 * (internal/bpf/include/nw_types.h; tcp_ca_state: the kernel's) are the
 * one source of truth.
 */
#include "vmlinux.h"
#include "nw_types.h"

/* An enum is in the BTF (and so in bpf2go's reach) only when something
 * uses it. */
const enum nw_event_type *nw_abi_event_type __attribute__((unused));
const enum nw_stat *nw_abi_stat __attribute__((unused));
const enum nw_owner_src *nw_abi_owner_src __attribute__((unused));
const enum tcp_ca_state *nw_abi_ca_state __attribute__((unused));
