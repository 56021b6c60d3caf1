package dns

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target amd64 -type nw_dns_event dns dns.bpf.c -- -I../bpf/include
