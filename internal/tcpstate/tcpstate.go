// Package tcpstate is the -P concern: every TCP state transition of a
// connection (v4/v6, every network namespace), with the time spent in the
// state it leaves; SYN_SENT/SYN_RECV -> ESTABLISHED is the handshake
// latency. See tcpstate.bpf.c for what is measured and its limits.
package tcpstate

import (
	"fmt"
	"log/slog"
	"net/netip"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/output"
)

// Boundary of this concern (a row of the hook table, internal/kernel/table.go).
const Boundary = kernel.StateChange

// Concern implements engine.Concern for -P.
type Concern struct {
	kernel.Live
}

// New returns the -P concern (not loaded yet).
func New(cfg *config.Config) *Concern { return &Concern{} }

// Name implements engine.Concern.
func (c *Concern) Name() string { return "TCP states (-P)" }

// Types implements engine.Concern.
func (c *Concern) Types() []event.Type { return []event.Type{event.State} }

// LogNames implements engine.LogNamer.
func (c *Concern) LogNames() []string { return []string{output.StateLogName} }

// Load loads the object, reusing the connection object's maps; the table
// of last transitions holds as many sockets as the connection table.
func (c *Concern) Load(cfg *config.Config, shared map[string]*ebpf.Map) error {
	spec, err := loadTcpstate()
	if err != nil {
		return fmt.Errorf("tcpstate: parse object: %w", err)
	}
	if cfg.MaxConns > 0 {
		spec.Maps["nw_state_last"].MaxEntries = cfg.MaxConns
	}
	coll, err := conn.LoadShared(spec, cfg, shared)
	if err != nil {
		return fmt.Errorf("tcpstate: %w", err)
	}
	c.Coll = coll
	return nil
}

// Attach implements engine.Concern.
func (c *Concern) Attach(log *slog.Logger) error {
	if _, err := c.Live.Attach(log, Boundary); err != nil {
		return fmt.Errorf("tcpstate: %w", err)
	}
	return nil
}

// RecordSize is the size of an NW_EV_STATE ring record.
const RecordSize = int(unsafe.Sizeof(tcpstateNwStateEvent{}))

// Decode implements engine.Concern: it fills ev from an NW_EV_STATE
// record (false for anything else). Stateless; no allocation.
func (c *Concern) Decode(raw []byte, ev *event.Event) bool { return Decode(raw, ev) }

// Decode is the decoder behind Concern.Decode.
func Decode(raw []byte, ev *event.Event) bool {
	r := event.Record[tcpstateNwStateEvent](raw)
	x := ev.Ext
	if r == nil || event.Type(r.Hdr.Type) != event.State || x == nil {
		return false
	}
	*ev = event.Event{
		Type: event.State,
		TS:   r.Hdr.Ts,
		Conn: event.Conn{Sock: r.Hdr.Sk, Netns: r.Hdr.Netns},
		Ext:  x,
	}
	x.State = event.StateInfo{
		Old: r.OldState, New: r.NewState, InOldNs: r.InOldNs, EstLo: r.EstLo,
		Src: netip.AddrPortFrom(conn.Addr(r.Family, &r.Saddr), r.Sport),
		Dst: netip.AddrPortFrom(conn.Addr(r.Family, &r.Daddr), r.Dport),
	}
	if r.Owner.Pid != 0 {
		ev.Conn.SetOwner(r.Owner.Pid, r.Owner.Src, &r.Owner.Comm)
	}
	return true
}
