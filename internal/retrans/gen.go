package retrans

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type nw_retrans_event retrans retrans.bpf.c -- -I../bpf/include
