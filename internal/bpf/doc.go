// Package bpf holds what every BPF object of netwatcher shares: the C
// headers in include/ (nw.h: event header, shared maps, helpers; vmlinux.h
// generated from this project's kernel BTF with bpftool). Each kernel
// concern (internal/conn, packet, retrans, drops) compiles its own object
// with bpf2go against these headers; the generated .o and .go files are
// committed so that a plain `go build` needs no clang.
package bpf
