package udp

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target amd64 -type nw_udp_event -type nw_udp_key -type nw_udp_flow -type tx_pend udp udp.bpf.c -- -I../bpf/include
