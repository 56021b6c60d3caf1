package packet

import (
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// TestSummaryAddDelta: per-CPU values are summed (max: the larger), and
// an interval is the totals minus the previous totals.
func TestSummaryAddDelta(t *testing.T) {
	var cpu [2]packetNwPktSum
	cpu[0].Segs, cpu[0].Bytes = 3, 300
	cpu[0].L[event.LayerTCP].Buckets[10], cpu[0].L[event.LayerTCP].SumNs, cpu[0].L[event.LayerTCP].MaxNs = 3, 3000, 1500
	cpu[1].Segs, cpu[1].Bytes = 2, 200
	cpu[1].L[event.LayerTCP].Buckets[11], cpu[1].L[event.LayerTCP].SumNs, cpu[1].L[event.LayerTCP].MaxNs = 1, 2500, 2500
	cpu[1].L[event.LayerMac].Missing = 2
	var tot event.LayerSumInfo
	for i := range cpu {
		addSum(&tot, &cpu[i])
	}
	tcp := &tot.L[event.LayerTCP]
	if tot.Segs != 5 || tot.Bytes != 500 || tcp.Count() != 4 || tcp.SumNs != 5500 || tcp.MaxNs != 2500 || tot.L[event.LayerMac].Missing != 2 {
		t.Fatalf("sum: %+v", tot)
	}
	prev := tot
	cpu[0].Segs++
	cpu[0].L[event.LayerTCP].Buckets[10]++
	cpu[0].L[event.LayerTCP].SumNs += 1000
	var tot2 event.LayerSumInfo
	for i := range cpu {
		addSum(&tot2, &cpu[i])
	}
	var d event.LayerSumInfo
	Delta(&d, &tot2, &prev)
	if d.Segs != 1 || d.Bytes != 0 || d.L[event.LayerTCP].Count() != 1 || d.L[event.LayerTCP].Buckets[10] != 1 ||
		d.L[event.LayerTCP].SumNs != 1000 || d.L[event.LayerMac].Missing != 0 || d.L[event.LayerTCP].MaxNs != 2500 {
		t.Fatalf("delta: %+v", d)
	}
}
