package conn

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// ConnSumMap is the per-CPU map of --summary's counts (conn.bpf.c): key 0,
// the final tcp_sock counters of every tracked connection that closed;
// key 1, the counters the adopted connections had when adopted (user
// space writes it once, at start-up, into the first CPU's value). Values:
// struct nw_conn_ctr (nw_conn_sum.h). Shared with the packet concern
// (SharedMaps), which adds the open connections' current counters.
const ConnSumMap = "nw_conn_sum"

// ConnSumAdopted is the key of ConnSumMap that holds the adopted
// connections' counters at adoption.
const ConnSumAdopted = uint32(1)

// addBase remembers that the connection sk, found by Existing, is adopted:
// its counters until now are not netwatcher's to count.
func (p *Probe) addBase(sk uint64) {
	if p.base == nil {
		return
	}
	b, ok := p.base[sk]
	if !ok {
		return
	}
	delete(p.base, sk)
	p.adopted.SegsIn += b.SegsIn
	p.adopted.SegsOut += b.SegsOut
	p.adopted.BytesIn += b.BytesIn
	p.adopted.BytesOut += b.BytesOut
}

// flushBase adds what addBase gathered to ConnSumMap's key 1 (first CPU).
// BPF never writes that key: a read-modify-write from here is exact.
func (p *Probe) flushBase() error {
	if p.base == nil {
		return nil
	}
	clear(p.base) // the connections not adopted: counted from 0 by their own entry, or not at all
	a := p.adopted
	p.adopted = connNwConnCtr{}
	if a == (connNwConnCtr{}) {
		return nil
	}
	m := p.Coll.Maps[ConnSumMap]
	var per []connNwConnCtr
	if err := m.Lookup(ConnSumAdopted, &per); err != nil || len(per) == 0 {
		return fmt.Errorf("conn: %s[%d]: %w", ConnSumMap, ConnSumAdopted, err)
	}
	per[0].SegsIn += a.SegsIn
	per[0].SegsOut += a.SegsOut
	per[0].BytesIn += a.BytesIn
	per[0].BytesOut += a.BytesOut
	if err := m.Update(ConnSumAdopted, per, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("conn: %s[%d]: %w", ConnSumMap, ConnSumAdopted, err)
	}
	return nil
}
