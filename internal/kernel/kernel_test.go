package kernel

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// TestAtomics: this host (6.x) has BPF compare-and-swap, so the connection
// table keeps its fast set-associative variant here.
func TestAtomics(t *testing.T) {
	root(t)
	if err := HaveAtomics(); err != nil {
		t.Fatalf("HaveAtomics on a 6.x kernel: %v", err)
	}
	if err := RemoveMemlock(); err != nil {
		t.Logf("RemoveMemlock: %v (harmless on memcg-accounted kernels)", err)
	}
}

// TestAtomicsProbeEncoding: the probe's compare-and-swap reaches the kernel
// as one (imm 0xf1 = BPF_CMPXCHG), not as the plain atomic add every
// kernel accepts.
func TestAtomicsProbeEncoding(t *testing.T) {
	var b bytes.Buffer
	if err := atomicsProbeInsns().Marshal(&b, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	raw := b.Bytes()
	found := false
	for i := 0; i+8 <= len(raw); i += 8 {
		if raw[i] == 0xdb { // BPF_STX | BPF_ATOMIC | BPF_DW
			found = true
			if imm := binary.LittleEndian.Uint32(raw[i+4:]); imm != 0xf1 {
				t.Errorf("atomic instruction with imm %#x, want 0xf1 (BPF_CMPXCHG)", imm)
			}
		}
	}
	if !found {
		t.Error("no atomic instruction in the probe")
	}
}

func TestEnumNames(t *testing.T) {
	en := &btf.Enum{Name: "x", Values: []btf.EnumValue{
		{Name: "X_A", Value: 0}, {Name: "X_C", Value: 2}, {Name: "X_MAX", Value: 3},
		{Name: "X_SUBSYS", Value: 1 << 16}, {Name: "OTHER", Value: 1},
	}}
	got := EnumNames(en, "X_", 1<<12)
	if want := []string{"A", "", "C"}; !slices.Equal(got, want) {
		t.Errorf("EnumNames = %q, want %q", got, want)
	}
}
