package conn

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/netwatcher/netwatcher/internal/event"
)

// ConnAggMap is the hash map of the connection metrics counted in the
// kernel (nw_conn_agg.h): opened and closed connections by network
// namespace, side and service port class.
const ConnAggMap = "nw_conn_agg"

// MaxAggPorts is NW_AGG_PORTS: the service ports above 1023 the kernel
// classifies (SetConnAgg).
const MaxAggPorts = 8

// aggKey is struct nw_conn_agg_key, aggVal struct nw_conn_agg_val
// (checked against the object's BTF by TestConnAggLayout).
type aggKey struct {
	Netns  uint32
	Port   uint16
	Server uint8
	_      uint8
}

type aggVal struct {
	Opened, Closed uint64
}

// connAgg: the in-kernel connection counts are on (--metrics-addr), and
// what user space adds to them: the connections open before the start
// that Adopt put into the kernel table (their close is counted there).
type connAgg struct {
	ports []uint16 // service ports above 1023 with a class of their own

	mu       sync.Mutex
	existing map[aggKey]uint64 // Port: the server's port, unclassified
}

// SetConnAgg turns the in-kernel connection counts on (before Load):
// services are the service ports that have a port class of their own
// (metrics.PortClasses); 0s, duplicates and ports below 1024 (always
// classed) are ignored. More than MaxAggPorts is an error at Load.
func (p *Probe) SetConnAgg(services []uint16) {
	a := &connAgg{existing: map[aggKey]uint64{}}
	for _, s := range services {
		if s >= 1024 && !slices.Contains(a.ports, s) {
			a.ports = append(a.ports, s)
		}
	}
	p.opts.ConnAgg = a
}

// setConsts sets cfg_conn_agg and cfg_agg_ports of spec (Load); off, the
// map is made minimal (it is preallocated: ~600 KiB at full size).
func (a *connAgg) setConsts(spec *ebpf.CollectionSpec) error {
	on := a != nil
	var ports [MaxAggPorts]uint16
	if !on {
		spec.Maps[ConnAggMap].MaxEntries = 1
	} else {
		if len(a.ports) > MaxAggPorts {
			return fmt.Errorf("conn: %d service ports for the connection metrics, at most %d", len(a.ports), MaxAggPorts)
		}
		copy(ports[:], a.ports)
	}
	if err := spec.Variables["cfg_conn_agg"].Set(on); err != nil {
		return fmt.Errorf("conn: set cfg_conn_agg: %w", err)
	}
	if err := spec.Variables["cfg_agg_ports"].Set(ports); err != nil {
		return fmt.Errorf("conn: set cfg_agg_ports: %w", err)
	}
	return nil
}

// aggAdopted counts c, a connection open before the start that Adopt put
// into the kernel table: it was never counted opened there, its close
// will be counted.
func (p *Probe) aggAdopted(c *event.Conn) {
	a := p.opts.ConnAgg
	if a == nil {
		return
	}
	port := c.Dst.Port()
	if c.IsServer {
		port = c.Src.Port()
	}
	k := aggKey{Netns: c.Netns, Port: port}
	if c.IsServer {
		k.Server = 1
	}
	a.mu.Lock()
	a.existing[k]++
	a.mu.Unlock()
}

// ConnAggOn: the connection metrics are counted in the kernel (SetConnAgg
// before Load).
func (p *Probe) ConnAggOn() bool {
	return p.opts.ConnAgg != nil && p.Coll != nil && p.Coll.Maps[ConnAggMap] != nil
}

// ConnAgg calls fn for every key of the in-kernel connection counts
// (metrics.ConnAggSource): port is the server's port (the local port of
// the server side, the remote one of the client side) or 0 for a port
// without a class of its own; opened and closed count since the start
// (closed includes the connections open before it), existing the
// connections open before the start that are tracked. A key may come
// twice (once classified by the kernel, once with the raw port of an
// existing connection): the caller sums by its own classes. Safe to call
// concurrently with everything else.
func (p *Probe) ConnAgg(fn func(netns uint32, server bool, port uint16, opened, closed, existing uint64)) error {
	a := p.opts.ConnAgg
	if !p.ConnAggOn() {
		return errors.New("conn: connection counts not on")
	}
	var k aggKey
	var v aggVal
	it := p.Coll.Maps[ConnAggMap].Iterate()
	for it.Next(&k, &v) {
		fn(k.Netns, k.Server != 0, k.Port, v.Opened, v.Closed, 0)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("conn: %s: %w", ConnAggMap, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, n := range a.existing {
		fn(k.Netns, k.Server != 0, k.Port, 0, 0, n)
	}
	return nil
}
