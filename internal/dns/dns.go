// Package dns is the -N protocol of the application capture
// (internal/l7cap): DNS queries and responses over UDP and TCP, at both
// ends (the client's socket and the server's), every network namespace;
// each query paired with its response (latency, rcode, qname, qtype,
// answer count) and per-process counters. The capture copies the first
// bytes of every packet to or from the DNS port; Parse reads the header
// and question; Tracker takes TCP streams apart (internal/l7cap/stream)
// and pairs.
package dns

import (
	"time"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

// Port is the DNS port watched.
const Port = 53

// Proto implements l7cap.Protocol (and l7cap.Ticker) for -N.
type Proto struct {
	interval time.Duration
	tracker  *Tracker
}

// New returns the -N protocol.
func New(cfg *config.Config) *Proto {
	return &Proto{interval: cfg.Interval, tracker: NewTracker()}
}

// Name implements l7cap.Protocol.
func (c *Proto) Name() string { return "DNS (-N)" }

// Type implements l7cap.Protocol.
func (c *Proto) Type() event.Type { return event.DNS }

// Ports implements l7cap.Protocol.
func (c *Proto) Ports() []uint16 { return []uint16{Port} }

// CapLen implements l7cap.Protocol: a DNS message's header and question
// are in its first bytes; 512 covers every classic UDP message.
func (c *Proto) CapLen() int { return event.DNSMax }

// LogNames implements l7cap.Protocol.
func (c *Proto) LogNames() []string { return []string{output.DNSLogName} }

// Tracker is the pairing state; the pipeline owns it (one goroutine).
func (c *Proto) Tracker() *Tracker { return c.tracker }

// Counters implements l7cap.Protocol (read after the pipeline stopped).
func (c *Proto) Counters() map[string]uint64 { return c.tracker.Counters() }

// Ticks implements l7cap.Ticker: every --interval the pipeline expires
// unanswered queries and prints the counters that changed.
func (c *Proto) Ticks() bool { return true }
