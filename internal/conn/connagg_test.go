package conn

import (
	"testing"
	"unsafe"

	"github.com/cilium/ebpf/btf"
)

// TestConnAggLayout: the Go types of nw_conn_agg (connagg.go, written by
// hand) match the object's, member by member, and cfg_agg_ports holds
// MaxAggPorts ports.
func TestConnAggLayout(t *testing.T) {
	spec, err := loadConn()
	if err != nil {
		t.Fatal(err)
	}
	m := spec.Maps[ConnAggMap]
	if m == nil {
		t.Fatalf("no map %s", ConnAggMap)
	}
	if m.KeySize != uint32(unsafe.Sizeof(aggKey{})) || m.ValueSize != uint32(unsafe.Sizeof(aggVal{})) {
		t.Fatalf("%s: key %d value %d bytes, Go %d %d", ConnAggMap, m.KeySize, m.ValueSize, unsafe.Sizeof(aggKey{}), unsafe.Sizeof(aggVal{}))
	}
	var k aggKey
	var v aggVal
	for _, x := range []struct {
		typ  btf.Type
		offs map[string]uintptr
	}{
		{m.Key, map[string]uintptr{"netns": unsafe.Offsetof(k.Netns), "port": unsafe.Offsetof(k.Port), "server": unsafe.Offsetof(k.Server)}},
		{m.Value, map[string]uintptr{"opened": unsafe.Offsetof(v.Opened), "closed": unsafe.Offsetof(v.Closed)}},
	} {
		s, ok := btf.UnderlyingType(x.typ).(*btf.Struct)
		if !ok {
			t.Fatalf("%s: %v is not a struct", ConnAggMap, x.typ)
		}
		seen := 0
		for _, mb := range s.Members {
			if off, ok := x.offs[mb.Name]; ok {
				seen++
				if uintptr(mb.Offset.Bytes()) != off {
					t.Errorf("%s.%s at %d, Go at %d", s.Name, mb.Name, mb.Offset.Bytes(), off)
				}
			}
		}
		if seen != len(x.offs) {
			t.Errorf("%s: %d of the members %v", s.Name, seen, x.offs)
		}
	}
	if vs := spec.Variables["cfg_agg_ports"]; vs == nil || vs.Size() != MaxAggPorts*2 {
		t.Fatalf("cfg_agg_ports: %v, want %d bytes", vs, MaxAggPorts*2)
	}
	for _, name := range []string{"cfg_conn_agg", "cfg_agg_ports"} {
		if !spec.Variables[name].Constant() {
			t.Errorf("%s is not a constant", name)
		}
	}
}

// TestSetConnAgg: service ports above 1023, once each; too many is an
// error at Load.
func TestSetConnAgg(t *testing.T) {
	var p Probe
	p.SetConnAgg([]uint16{3306, 6379, 0, 80, 3306, 7000})
	if got := p.opts.ConnAgg.ports; len(got) != 3 || got[0] != 3306 || got[1] != 6379 || got[2] != 7000 {
		t.Fatalf("ports %v", got)
	}
	spec, err := loadConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.opts.ConnAgg.setConsts(spec); err != nil {
		t.Fatal(err)
	}
	var ports [MaxAggPorts]uint16
	if err := spec.Variables["cfg_agg_ports"].Get(&ports); err != nil || ports != [MaxAggPorts]uint16{3306, 6379, 7000} {
		t.Fatalf("cfg_agg_ports %v %v", ports, err)
	}
	if spec.Maps[ConnAggMap].MaxEntries < 1024 {
		t.Fatalf("on: %s has %d entries", ConnAggMap, spec.Maps[ConnAggMap].MaxEntries)
	}
	var off *connAgg
	var on bool
	if err := off.setConsts(spec); err != nil || spec.Maps[ConnAggMap].MaxEntries != 1 {
		t.Fatalf("off: %v, %s has %d entries", err, ConnAggMap, spec.Maps[ConnAggMap].MaxEntries)
	}
	if err := spec.Variables["cfg_conn_agg"].Get(&on); err != nil || on {
		t.Fatalf("off: cfg_conn_agg %v %v", on, err)
	}
	var many []uint16
	for i := range MaxAggPorts + 1 {
		many = append(many, uint16(2000+i))
	}
	p.SetConnAgg(many)
	if err := p.opts.ConnAgg.setConsts(spec); err == nil {
		t.Fatal("no error for too many ports")
	}
}
