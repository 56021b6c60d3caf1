package packet

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target amd64 -type nw_pkt_event -type tx_key -type tx_pend -type nw_pkt_sum packet packet.bpf.c -- -I../bpf/include
