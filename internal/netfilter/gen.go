package netfilter

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target amd64 -type nw_nf_event -type nw_nf_hook_hist netfilter netfilter.bpf.c -- -I../bpf/include
