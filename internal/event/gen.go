package event

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target amd64 -type nw_event_type -type nw_stat -type nw_owner_src -type tcp_ca_state event kernel.bpf.c -- -I../bpf/include
