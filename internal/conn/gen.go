package conn

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target amd64 -type nw_conn_event -type nw_iter_rec -type nw_conn_stats -type nw_adopt_args -type nw_conn_set -type nw_listen_rec -type nw_conn_ctr conn conn.bpf.c -- -I../bpf/include
