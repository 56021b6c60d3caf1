package metrics_test

import (
	"testing"

	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// bpfWitness is the shared BPF witness (internal/testsupport/witness) of
// the tracepoints netwatcher counts retransmitted segments and drops on:
// what the kernel handed to BPF programs. The kernel counters
// (TcpRetransSegs, nft's counter) count some events whose tracepoint runs
// no BPF program at all: under load, in bursts of a few ms, the tracepoint
// fires (an ftrace event on it sees every one) but no BPF program attached
// to it runs (netwatcher's tp_btf programs, a bpftrace tracepoint program
// and this witness miss the same ones) and no program's recursion_misses
// counts it. netwatcher cannot see those; everything BPF was given, it must
// report: the oracle checks netwatcher against the witness exactly, and
// against the kernel's counters with the witness's shortfall as the only
// allowance.
type bpfWitness struct{ w *witness.Witness }

// startWitness attaches the witness programs (drops, retransmissions);
// they count events of the network namespaces ns (inode numbers, up to 2).
func startWitness(t *testing.T, ns ...uint32) *bpfWitness {
	t.Helper()
	return &bpfWitness{witness.Start(t, witness.NfDrops|witness.Retrans, ns...)}
}

// counts returns the witness's counters: NETFILTER_DROP drops,
// retransmissions, retransmitted segments, and the runs it could not count
// (failed reads; must be 0) plus the runs the kernel skipped of it
// (recursion_misses).
func (w *bpfWitness) counts(t *testing.T) (nfDrops, rtx, rtxSegs, unsure uint64) {
	t.Helper()
	c := w.w.Counts(t)
	return c.NfDrops, c.Rtx, c.RtxSegs, c.Unsure
}
