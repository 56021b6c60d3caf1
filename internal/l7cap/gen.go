package l7cap

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target amd64 -type nw_l7_event l7cap l7cap.bpf.c -- -I../bpf/include
