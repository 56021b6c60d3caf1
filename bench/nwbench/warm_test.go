package main

import "testing"

// warmMemory touches whole 256 MiB chunks of what is free above keep, and
// nothing when keep is above what is free.
func TestWarmMemory(t *testing.T) {
	free, err := memFree()
	if err != nil || free < 2<<30 {
		t.Skipf("MemFree %d (%v): too little to test", free, err)
	}
	if n, _, err := warmMemory(free + 1<<30); err != nil || n != 0 {
		t.Fatalf("keep above free: touched %d, err %v", n, err)
	}
	n, _, err := warmMemory(free - 600<<20)
	if err != nil {
		t.Fatal(err)
	}
	// 600 MiB above keep: two chunks (free moves a little meanwhile)
	if n < 256<<20 || n > 768<<20 || n%(256<<20) != 0 {
		t.Errorf("touched %d bytes, want two 256 MiB chunks", n)
	}
}
