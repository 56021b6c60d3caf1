// Package redis is the -R protocol of the application capture
// (internal/l7cap): Redis requests and replies (RESP2 and RESP3) over TCP,
// at both ends (the client's socket and the server's), every network
// namespace. Each request (command and first argument, bounded) is paired
// with its reply (type, error code, latency) in order per connection
// (pipelines pair in order; a request or reply split over segments and
// many in one segment are followed with internal/l7cap/stream), and
// per-command summaries (calls, errors, p50/p99 latency) are printed every
// --interval and at exit. Nothing else of a request or reply is kept (no
// values).
package redis

import (
	"time"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
)

// Port is the Redis port watched by default (--redis-port).
const Port = 6379

// Proto implements l7cap.Protocol (and l7cap.Ticker) for -R.
type Proto struct {
	interval time.Duration
	port     uint16
	tracker  *Tracker
}

// New returns the -R protocol (service port: cfg.RedisPort, 6379 by
// default).
func New(cfg *config.Config) *Proto {
	port := cfg.RedisPort
	if port == 0 {
		port = Port
	}
	return &Proto{interval: cfg.Interval, port: port, tracker: NewTracker(port)}
}

// Name implements l7cap.Protocol.
func (c *Proto) Name() string { return "Redis (-R)" }

// Type implements l7cap.Protocol.
func (c *Proto) Type() event.Type { return event.Redis }

// Ports implements l7cap.Protocol.
func (c *Proto) Ports() []uint16 { return []uint16{c.port} }

// CapLen implements l7cap.Protocol: a pipeline of small commands fills
// segments; every request's head must be seen to count it, so the
// capture's most (a segment's bytes past it are lost to the stream and
// counted: redis_stream_lost).
func (c *Proto) CapLen() int { return event.AppMax }

// LogNames implements l7cap.Protocol.
func (c *Proto) LogNames() []string { return []string{output.RedisLogName} }

// Tracker is the pairing state; the pipeline owns it (one goroutine).
func (c *Proto) Tracker() *Tracker { return c.tracker }

// Counters implements l7cap.Protocol (read after the pipeline stopped).
func (c *Proto) Counters() map[string]uint64 { return c.tracker.Counters() }

// Ticks implements l7cap.Ticker: every --interval the pipeline gives up
// requests unanswered too long and prints the summaries.
func (c *Proto) Ticks() bool { return true }

// Finishes implements l7cap.Finisher: at exit the requests still waiting
// are reported unanswered, then every command's totals.
func (c *Proto) Finishes() bool { return true }
