package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// warmMemory touches the host's free memory once (anonymous pages, written
// and unmapped in 256 MiB chunks), leaving keep bytes untouched.
//
// Why: in a virtual machine, memory the guest has never touched since boot
// is backed by the host only on first touch, and that first touch is a
// host fault. netwatcher's log writes allocate new page-cache pages; on a
// fresh VM most of them are such first touches. Measured here (issue 17):
// writing 200 MB with dd cost 1.05 ms of system time per MB on a fresh VM
// and 0.22 once the memory had been touched; copy_folio_from_iter_atomic
// (the page-cache copy) was 35% of the tool's CPU on churn -q before and
// 7.5% after. A host that has run for a while has touched its memory (the
// page cache fills it), so the bench measures that steady state, and the
// same for every configuration whatever ran before it.
func warmMemory(keep uint64) (touched uint64, took time.Duration, err error) {
	free, err := memFree()
	if err != nil || free <= keep {
		return 0, 0, err
	}
	start := time.Now()
	const chunk = 256 << 20
	page := os.Getpagesize()
	for left := free - keep; left >= chunk; left -= chunk {
		b, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return touched, time.Since(start), err
		}
		for i := 0; i < len(b); i += page {
			b[i] = 1
		}
		if err := unix.Munmap(b); err != nil {
			return touched, time.Since(start), err
		}
		touched += chunk
	}
	return touched, time.Since(start), nil
}

// memFree is MemFree of /proc/meminfo in bytes: pages on the free lists
// (the page cache is not in it: those pages were touched).
func memFree() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemFree:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/meminfo: no MemFree")
}
