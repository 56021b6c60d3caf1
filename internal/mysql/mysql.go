// Package mysql is the -M protocol of the application capture
// (internal/l7cap): the MySQL/MariaDB client/server protocol over TCP, at
// both ends (the client's socket and the server's), every network
// namespace. Each request (COM_QUERY with its text cut to
// event.MySQLQueryMax bytes, COM_STMT_*, COM_PING, COM_INIT_DB, ...) is
// paired with its response (OK with affected rows, ERR with code and SQL
// state, EOF, a result set's rows counted, COM_STMT_PREPARE's statement),
// by the protocol's rule of one request in flight per connection; the
// handshake (server version, connection id) is a record too; per-command
// counters (calls, errors, rows, p50/p99 latency) every --interval and at
// exit. No row data, no error message, no password is kept.
//
// The capture copies the first CapLen bytes of each segment; conn.go
// follows each direction by sequence number and reads the packets (3-byte
// length, sequence id) incrementally: a packet split over segments, many
// in one segment, a long one whose tail was not captured. Bytes never
// seen (a ring loss, or packet headers beyond the captured part of a large
// segment: a big result set) lose the direction's framing until the next
// request; the response then says truncated (rows a lower bound). TLS and
// the compressed protocol are unreadable: the handshake record says so.
package mysql

import (
	"time"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
)

// LogName is the log of -M in --data-dir.
const LogName = "mysql.log"

// Proto implements l7cap.Protocol (and l7cap.Ticker) for -M.
type Proto struct {
	port     uint16
	interval time.Duration
	tracker  *Tracker
}

// New returns the -M protocol (service port: cfg.MySQLPort, 3306 by default).
func New(cfg *config.Config) *Proto {
	port := cfg.MySQLPort
	if port == 0 {
		port = DefaultPort
	}
	return &Proto{port: port, interval: cfg.Interval, tracker: NewTracker(port)}
}

// Name implements l7cap.Protocol.
func (p *Proto) Name() string { return "MySQL (-M)" }

// Type implements l7cap.Protocol.
func (p *Proto) Type() event.Type { return event.MySQL }

// Ports implements l7cap.Protocol.
func (p *Proto) Ports() []uint16 { return []uint16{p.port} }

// CapLen implements l7cap.Protocol: all the capture allows. A request
// needs 5 + MySQLQueryMax bytes, but a result set's rows are counted
// from the packet headers, and each header beyond the captured bytes of
// a segment loses the count: 2 KiB hold ~100 short rows per segment.
func (p *Proto) CapLen() int { return event.AppMax }

// LogNames implements l7cap.Protocol.
func (p *Proto) LogNames() []string { return []string{LogName} }

// Tracker is the pairing state; the pipeline owns it (one goroutine).
func (p *Proto) Tracker() *Tracker { return p.tracker }

// Counters implements l7cap.Protocol (read after the pipeline stopped).
func (p *Proto) Counters() map[string]uint64 { return p.tracker.Counters() }

// Ticks implements l7cap.Ticker: every --interval the pipeline expires
// idle connections and prints the per-command counters that changed.
func (p *Proto) Ticks() bool { return true }
