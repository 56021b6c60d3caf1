package engine

import (
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
)

// BenchmarkPipelineTimeload is BenchmarkPipeline's JSON case with -L: the
// cost of judging every packet record (compare with BenchmarkPipeline/json).
func BenchmarkPipelineTimeload(b *testing.B) {
	p := benchPipeline(b, &config.Config{Time: true, HTTP: true, Extra: true, Retrans: true, Output: config.JSON, DataDir: "x",
		TimeLoad: true, TimeLoadFactor: config.DefaultTimeLoadFactor})
	if p.tl.det == nil {
		b.Fatal("-L: no detector")
	}
	evs := synthetic(4096)
	for i := range evs {
		p.handle(&evs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := evs[i%len(evs)]
		p.handle(&ev)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// -L off: no detector, nothing judged; on: packet records are judged and
// a closed connection is forgotten; no allocation per packet record.
func TestTimeloadPipeline(t *testing.T) {
	p := benchPipeline(t, &config.Config{Time: true, Output: config.JSON, DataDir: "x"})
	if p.tl.det != nil {
		t.Fatal("detector without -L")
	}
	p = benchPipeline(t, &config.Config{Time: true, Output: config.JSON, DataDir: "x", TimeLoad: true, TimeLoadFactor: 5})
	evs := synthetic(1024)
	for i := range evs {
		p.handle(&evs[i])
	}
	if p.tl.det.Len() == 0 {
		t.Fatal("no connection followed")
	}
	i := 0
	n := testing.AllocsPerRun(2000, func() {
		ev := evs[1+i%1023]
		if ev.Type == event.ConnOpen {
			ev = evs[1]
		}
		p.handle(&ev)
		i++
	})
	if n != 0 {
		t.Errorf("%v allocations per packet event with -L", n)
	}
}
