package icmp

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target amd64 -type nw_icmp_event -type nw_icmp_echo_key icmp icmp.bpf.c -- -I../bpf/include
