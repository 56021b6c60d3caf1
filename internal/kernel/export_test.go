package kernel

import "github.com/cilium/ebpf"

func emptyColl() *ebpf.Collection { return &ebpf.Collection{Programs: map[string]*ebpf.Program{}} }
