package metrics

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type aggEntry struct {
	netns                    uint32
	server                   bool
	port                     uint16
	opened, closed, existing uint64
}

type fakeAgg struct {
	es  []aggEntry
	err error
}

func (f *fakeAgg) ConnAgg(fn func(netns uint32, server bool, port uint16, opened, closed, existing uint64)) error {
	for _, e := range f.es {
		fn(e.netns, e.server, e.port, e.opened, e.closed, e.existing)
	}
	return f.err
}

// TestConnAgg: entries add up by label (a kernel key and an existing
// connection's raw port of the same class), active = existing + opened -
// closed, never negative; names, help texts and labels are Records'.
func TestConnAgg(t *testing.T) {
	src := &fakeAgg{es: []aggEntry{
		{7, true, 80, 5, 3, 0},
		{7, true, 80, 0, 0, 2},     // existing, same class
		{7, false, 0, 4, 4, 0},     // ephemeral (kernel key 0)
		{7, false, 40000, 0, 0, 1}, // existing, raw port: ephemeral too
		{8, false, 6379, 1, 3, 1},  // a close seen before its existing count: 0
		{8, true, 6380, 2, 0, 0},   // a port the kernel classes but Go does not: ephemeral
	}}
	c := NewConnAgg(src, NewPortClasses(6379))
	want := `
# HELP netwatcher_connections_active ` + connActiveHelp + `
# TYPE netwatcher_connections_active gauge
netwatcher_connections_active{netns="7",port="80",side="server"} 4
netwatcher_connections_active{netns="7",port="ephemeral",side="client"} 1
netwatcher_connections_active{netns="8",port="6379",side="client"} 0
netwatcher_connections_active{netns="8",port="ephemeral",side="server"} 2
# HELP netwatcher_connections_closed_total ` + connClosedHelp + `
# TYPE netwatcher_connections_closed_total counter
netwatcher_connections_closed_total{netns="7",port="80",side="server"} 3
netwatcher_connections_closed_total{netns="7",port="ephemeral",side="client"} 4
netwatcher_connections_closed_total{netns="8",port="6379",side="client"} 3
netwatcher_connections_closed_total{netns="8",port="ephemeral",side="server"} 0
# HELP netwatcher_connections_opened_total ` + connOpenedHelp + `
# TYPE netwatcher_connections_opened_total counter
netwatcher_connections_opened_total{netns="7",port="80",side="server"} 5
netwatcher_connections_opened_total{netns="7",port="ephemeral",side="client"} 4
netwatcher_connections_opened_total{netns="8",port="6379",side="client"} 1
netwatcher_connections_opened_total{netns="8",port="ephemeral",side="server"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// the same families as Records': registering both fails
	r := NewRecords(NewPortClasses(6379), On{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(r.Collectors()...)
	r.ConnOpened(conn(7, true, "10.0.0.1:80", "10.0.0.2:40000"))
	if err := reg.Register(c); err == nil {
		t.Fatal("ConnAgg registered next to Records' connection metrics")
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	// KernelConns: Records leaves them to ConnAgg, and counts nothing
	r = NewRecords(NewPortClasses(6379), On{KernelConns: true})
	reg = prometheus.NewPedanticRegistry()
	reg.MustRegister(r.Collectors()...)
	reg.MustRegister(c)
	r.ConnOpened(conn(7, true, "10.0.0.1:80", "10.0.0.2:40000"))
	r.ConnExisting(conn(7, true, "10.0.0.1:80", "10.0.0.2:40001"))
	r.ConnClosed(conn(7, true, "10.0.0.1:80", "10.0.0.2:40000"))
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// an error of the source is the scrape's
	src.err = errors.New("map gone")
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "map gone") {
		t.Fatalf("gather: %v", err)
	}
}

// TestConnAggNetnsBounded: as Records, past MaxNetns namespaces the others
// share "other", and a namespace keeps its label across scrapes.
func TestConnAggNetnsBounded(t *testing.T) {
	src := &fakeAgg{}
	for i := range MaxNetns + 10 {
		src.es = append(src.es, aggEntry{uint32(i + 1), false, 80, 1, 0, 0})
	}
	c := NewConnAgg(src, NewPortClasses())
	for range 2 {
		if n := testutil.CollectAndCount(c, "netwatcher_connections_opened_total"); n != MaxNetns+1 {
			t.Fatalf("%d series, want %d", n, MaxNetns+1)
		}
	}
	want := `
# HELP netwatcher_connections_opened_total ` + connOpenedHelp + `
# TYPE netwatcher_connections_opened_total counter
netwatcher_connections_opened_total{netns="1",port="80",side="client"} 1
netwatcher_connections_opened_total{netns="other",port="80",side="client"} 10
`
	src.es = append(src.es[:1], src.es[MaxNetns:]...)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "netwatcher_connections_opened_total"); err != nil {
		t.Fatal(err)
	}
}
