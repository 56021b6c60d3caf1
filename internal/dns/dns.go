// Package dns is the -N concern: DNS queries and responses over UDP and
// TCP, at both ends (the client's socket and the server's), every network
// namespace; each query paired with its response (latency, rcode, qname,
// qtype, answer count) and per-process counters. dns.bpf.c copies the
// first bytes of every packet to or from the DNS port; Parse reads the
// header and question; Tracker takes TCP streams apart and pairs.
package dns

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/output"
)

// Boundaries of this concern (rows of the hook table, internal/kernel/table.go).
var Boundaries = []string{kernel.DNSEgress, kernel.DNSIngress}

// Port is the DNS port watched (cfg_dns_port).
const Port = 53

// Concern implements engine.Concern (and engine.Ticker, engine.LogNamer,
// engine.PacketRinger, engine.CounterSource) for -N.
type Concern struct {
	kernel.Live
	interval time.Duration
	tracker  *Tracker
}

// New returns the -N concern (not loaded yet).
func New(cfg *config.Config) *Concern {
	return &Concern{interval: cfg.Interval, tracker: NewTracker()}
}

// Name implements engine.Concern.
func (c *Concern) Name() string { return "DNS (-N)" }

// Types implements engine.Concern.
func (c *Concern) Types() []event.Type { return []event.Type{event.DNS} }

// LogNames implements engine.LogNamer.
func (c *Concern) LogNames() []string { return []string{output.DNSLogName} }

// PacketRingBytes implements engine.PacketRinger: a record is at most
// 608 bytes; 4 MiB hold ~7,000 of them while user space catches up.
func (c *Concern) PacketRingBytes() uint32 { return 4 << 20 }

// Tracker is the pairing state; the pipeline owns it (one goroutine).
func (c *Concern) Tracker() *Tracker { return c.tracker }

// Counters implements engine.CounterSource (read after the pipeline stopped).
func (c *Concern) Counters() map[string]uint64 { return c.tracker.Counters() }

// Interval implements engine.Ticker.
func (c *Concern) Interval() time.Duration { return c.interval }

// Tick implements engine.Ticker: a record without packet (DNSInfo.Tick)
// that has the pipeline expire unanswered queries and print the counters
// that changed.
func (c *Concern) Tick(now uint64, emit func(*event.Event)) {
	var x event.Ext
	x.DNS.Tick = true
	emit(&event.Event{Type: event.DNS, TS: now, Ext: &x})
}

// Load loads the object, reusing the connection object's maps.
func (c *Concern) Load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	spec, err := loadDns()
	if err != nil {
		return fmt.Errorf("dns: parse object: %w", err)
	}
	coll, err := conn.LoadShared(spec, cfg, shared)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	c.Coll = coll
	return nil
}

// Attach implements engine.Concern: both directions or nothing.
func (c *Concern) Attach(log *slog.Logger) error {
	for _, b := range Boundaries {
		if _, err := c.Live.Attach(log, b); err != nil {
			c.Live.Detach()
			return fmt.Errorf("dns: %w", err)
		}
	}
	return nil
}

// RecordSize is the size of an NW_EV_DNS record without its payload bytes.
const RecordSize = int(unsafe.Sizeof(dnsNwDnsEvent{}))

// Decode implements engine.Concern.
func (c *Concern) Decode(raw []byte, ev *event.Event) bool { return Decode(raw, ev) }

// Decode fills ev from an NW_EV_DNS record (false for anything else).
// Stateless; no allocation.
func Decode(raw []byte, ev *event.Event) bool {
	r := event.Record[dnsNwDnsEvent](raw)
	x := ev.Ext
	if r == nil || event.Type(r.Type) != event.DNS || x == nil {
		return false
	}
	n := int(r.Len)
	if n > event.DNSMax || len(raw) < RecordSize+n {
		return false
	}
	*ev = event.Event{Type: event.DNS, TS: r.Ts, Conn: event.Conn{Sock: r.Sk, Netns: r.Netns}, Ext: x}
	d := &x.DNS
	d.Rx, d.TCP, d.Tick = r.Rx != 0, r.Proto == unix.IPPROTO_TCP, false
	d.Src = netip.AddrPortFrom(conn.Addr(r.Family, &r.Saddr), r.Sport)
	d.Dst = netip.AddrPortFrom(conn.Addr(r.Family, &r.Daddr), r.Dport)
	d.Seq, d.PayLen, d.Len = r.Seq, r.Paylen, r.Len
	copy(d.Data[:n], raw[RecordSize:RecordSize+n])
	if r.Owner.Pid != 0 {
		ev.Conn.SetOwner(r.Owner.Pid, r.Owner.Src, &r.Owner.Comm)
	}
	return true
}
