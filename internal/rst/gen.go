package rst

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target amd64 -type nw_rst_event rst rst.bpf.c -- -I../bpf/include
