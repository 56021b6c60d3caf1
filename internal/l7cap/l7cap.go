// Package l7cap is the application capture: ONE kernel capture (l7cap.bpf.c,
// two cgroup_skb programs on the cgroup v2 root) copies the first bytes of
// the payload of every packet a local socket sends or receives to or from
// an application port, for every protocol that is on: DNS (-N,
// internal/dns), Redis (-R, internal/redis), MySQL (-M, internal/mysql).
// One engine.Concern (Concern) serves them all; each protocol's package
// keeps what is its own (parser, per-connection state, pairing, counters,
// log names) and the pipeline has a records_<proto>.go for it.
//
// # Adding a protocol
//
//  1. A record type: NW_EV_<PROTO> in internal/bpf/include/nw_types.h
//     (under 32) and its constant in internal/event/event.go (event.Redis,
//     event.MySQL are there). The BPF object does not change: the port
//     map says which type a packet is.
//  2. A Protocol (below) in internal/<proto>: its record type, service
//     ports, how many payload bytes its parser needs per packet (at most
//     event.AppMax), its log files and exit counters. Optional: Ticker
//     (a tick record, App.Tick, every --interval) and Finisher (a last
//     one at exit, App.Tick and App.Final: flush, exit summaries).
//     internal/redis is the complete example (Proto in redis.go, Tracker
//     in tracker.go; the pipeline side in engine/records_redis.go).
//  3. Add it to the list cmd/netwatcher hands New (cmd/netwatcher/l7.go,
//     one line under the protocol's flag).
//  4. The pipeline: a `case event.<Proto>:` in pipeline.handle calling
//     records_<proto>.go, which finds its Protocol with
//     (*pipeline).l7proto(event.<Proto>) (records_l7.go) and type-asserts
//     it to its package's type. A record's ev.Ext.App holds the packet
//     (AppInfo: direction, transport, addresses, TCP sequence number,
//     payload length, the bytes copied); ev.Conn the socket, namespace and
//     owner. A tick record has App.Tick set and no packet.
//  5. TCP: follow each direction with a stream.Follower and a Framer
//     (internal/l7cap/stream: messages in order, split ones kept until
//     whole, losses counted; Follower.OnLoss tells when a direction lost
//     its place, before any later message, so that in-order pairing can
//     give up what waits); pair requests and responses per connection
//     (the socket and the addresses); name the connection by the
//     pipeline's table (p.table.Current(sock): conn_id), the side by which
//     port is the service port (local: server). Keep no pointer to the
//     event (the pipeline's Ext slots are reused; a stored pointer also
//     makes every event escape to the heap).
//
// Only TCP segments with a payload are captured, and UDP datagrams for
// DNS only. Bytes beyond a protocol's CapLen in one packet are not seen
// (the stream follower counts what that loses).
package l7cap

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
)

// Boundaries of the capture (rows of the hook table, internal/kernel/table.go).
var Boundaries = []string{kernel.L7Egress, kernel.L7Ingress}

// Protocol is one application protocol of the capture.
type Protocol interface {
	// Name for people, with its flag: "DNS (-N)".
	Name() string
	// Type is the protocol's record type: every packet to or from one of
	// its ports makes a record of this type.
	Type() event.Type
	// Ports are its service ports (a packet's local port is looked up
	// first, then the remote one).
	Ports() []uint16
	// CapLen is how many payload bytes of a packet its parser needs (at
	// most event.AppMax).
	CapLen() int
	// LogNames are its files in --data-dir (engine.LogNamer).
	LogNames() []string
	// Counters are its exit counters (engine.CounterSource), read after
	// the pipeline stopped.
	Counters() map[string]uint64
}

// Ticker is a Protocol that wants a tick record every interval (a record
// of its type with App.Tick set, handled by its records_<proto>.go).
type Ticker interface{ Ticks() bool }

// Finisher is a Protocol that wants a last tick record at exit (App.Tick
// and App.Final set), after the rings are drained.
type Finisher interface{ Finishes() bool }

// Concern implements engine.Concern (and engine.Ticker, engine.Finisher,
// engine.LogNamer, engine.PacketRinger, engine.CounterSource) for every
// protocol that is on.
type Concern struct {
	kernel.Live
	interval time.Duration
	protos   []Protocol
	mine     [event.MaxRingType]bool // record types of protos (Decode)
}

// New returns the capture of protos (not loaded yet).
func New(cfg *config.Config, protos ...Protocol) *Concern {
	c := &Concern{interval: cfg.Interval, protos: protos}
	for _, p := range protos {
		if t := p.Type(); t < event.MaxRingType {
			c.mine[t] = true
		}
	}
	return c
}

// Protocols are the protocols served, in the order given to New.
func (c *Concern) Protocols() []Protocol { return c.protos }

// Protocol is the protocol of record type t, nil if none.
func (c *Concern) Protocol(t event.Type) Protocol {
	for _, p := range c.protos {
		if p.Type() == t {
			return p
		}
	}
	return nil
}

// Name implements engine.Concern.
func (c *Concern) Name() string {
	var n []string
	for _, p := range c.protos {
		n = append(n, p.Name())
	}
	return "application capture: " + strings.Join(n, ", ")
}

// Types implements engine.Concern.
func (c *Concern) Types() []event.Type {
	var t []event.Type
	for _, p := range c.protos {
		t = append(t, p.Type())
	}
	return t
}

// LogNames implements engine.LogNamer.
func (c *Concern) LogNames() []string {
	var l []string
	for _, p := range c.protos {
		l = append(l, p.LogNames()...)
	}
	return l
}

// PacketRingBytes implements engine.PacketRinger: a record is at most
// ~2.1 KiB (DNS ~600 bytes); 8 MiB hold ~4,000 full ones while user space
// catches up.
func (c *Concern) PacketRingBytes() uint32 {
	for _, p := range c.protos {
		if p.CapLen() > event.DNSMax {
			return 8 << 20
		}
	}
	return 4 << 20
}

// Counters implements engine.CounterSource.
func (c *Concern) Counters() map[string]uint64 {
	m := map[string]uint64{}
	for _, p := range c.protos {
		for k, v := range p.Counters() {
			m[k] = v
		}
	}
	return m
}

// Interval implements engine.Ticker.
func (c *Concern) Interval() time.Duration { return c.interval }

// Tick implements engine.Ticker: one tick record per protocol that wants
// it (Ticker).
func (c *Concern) Tick(now uint64, emit func(*event.Event)) {
	for _, p := range c.protos {
		if t, ok := p.(Ticker); ok && t.Ticks() {
			x := new(event.Ext)
			x.App.Tick = true
			emit(&event.Event{Type: p.Type(), TS: now, Ext: x})
		}
	}
}

// Finish implements engine.Finisher: one final tick record per protocol
// that wants it (Finisher).
func (c *Concern) Finish(now uint64, emit func(*event.Event)) {
	for _, p := range c.protos {
		if f, ok := p.(Finisher); ok && f.Finishes() {
			x := new(event.Ext)
			x.App.Tick, x.App.Final = true, true
			emit(&event.Event{Type: p.Type(), TS: now, Ext: x})
		}
	}
}

// Load loads the object, reusing the connection object's maps, with the
// port map and the copy lengths of the protocols.
func (c *Concern) Load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	spec, err := loadL7cap()
	if err != nil {
		return fmt.Errorf("l7cap: parse object: %w", err)
	}
	ports, caps := spec.Maps["nw_l7_ports"], spec.Maps["nw_l7_caps"]
	seen := map[uint16]string{}
	for _, p := range c.protos {
		t := uint32(p.Type())
		if t == 0 || t >= event.MaxRingType {
			return fmt.Errorf("l7cap: %s: record type %d", p.Name(), t)
		}
		for _, port := range p.Ports() {
			if o, dup := seen[port]; dup {
				return fmt.Errorf("l7cap: port %d is %s's and %s's", port, o, p.Name())
			}
			seen[port] = p.Name()
			ports.Contents = append(ports.Contents, ebpf.MapKV{Key: uint32(port), Value: uint8(t)})
		}
		caps.Contents = append(caps.Contents, ebpf.MapKV{Key: t, Value: uint16(min(max(p.CapLen(), 1), event.AppMax))})
	}
	if err := kernel.SetTaskHelpers(spec, ebpf.CGroupSKB, "cfg_skb_pid", "cfg_skb_comm"); err != nil {
		return fmt.Errorf("l7cap: %w", err)
	}
	coll, err := conn.LoadShared(spec, cfg, shared)
	if err != nil {
		return fmt.Errorf("l7cap: %w", err)
	}
	c.Coll = coll
	return nil
}

// Attach implements engine.Concern: both directions or nothing.
func (c *Concern) Attach(log *slog.Logger) error {
	for _, b := range Boundaries {
		if _, err := c.Live.Attach(log, b); err != nil {
			c.Live.Detach()
			return fmt.Errorf("l7cap: %w", err)
		}
	}
	// cgroup_skb without bpf_get_current_comm (before 6.18): a UDP
	// sender's owner from a kprobe, else its pid alone (6.10+) or unknown
	if pid, comm := kernel.TaskHelpers(ebpf.CGroupSKB); !comm {
		if _, err := c.Live.Attach(log, kernel.L7Owner); err != nil {
			what := "unknown (pid -)"
			if pid {
				what = "its pid without comm"
			}
			log.Warn("owner of a UDP datagram sent: "+what, "err", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	}
	return nil
}

// RecordSize is the size of a record without its payload bytes.
const RecordSize = int(unsafe.Sizeof(l7capNwL7Event{}))

// Decode implements engine.Concern.
func (c *Concern) Decode(raw []byte, ev *event.Event) bool {
	if len(raw) == 0 || int(raw[0]) >= len(c.mine) || !c.mine[raw[0]] {
		return false
	}
	return Decode(raw, ev)
}

// Decode fills ev from a capture record (any record type; false for a
// record too short). Stateless; no allocation.
func Decode(raw []byte, ev *event.Event) bool {
	r := event.Record[l7capNwL7Event](raw)
	x := ev.Ext
	if r == nil || r.Type == 0 || x == nil {
		return false
	}
	n := int(r.Len)
	if n > event.AppMax || len(raw) < RecordSize+n {
		return false
	}
	*ev = event.Event{Type: event.Type(r.Type), TS: r.Ts, Conn: event.Conn{Sock: r.Sk, Netns: r.Netns}, Ext: x}
	d := &x.App
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
