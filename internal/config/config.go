// Package config turns the command line into one validated Config. Nothing
// else in netwatcher reads flags.
package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// Output is the console format.
type Output int

const (
	Table Output = iota
	JSON
)

// Config is everything the command line can say.
type Config struct {
	All     bool   // -a: keep closed connections
	Dport   uint16 // -d: remote port filter (0 = any)
	Sport   uint16 // -s: local port filter (0 = any)
	Err     bool   // -e
	HTTP    bool   // -i
	Retrans bool   // -r
	Time    bool   // -t
	Extra   bool   // -x
	State   bool   // -P: TCP state transitions

	DataDir    string
	Duration   time.Duration // 0 = until signal
	Output     Output
	ReadyFile  string
	Quiet      bool
	Verbose    bool
	NoPackets  bool   // --no-packets: connection tracking only
	MaxConns   uint32 // --max-conns: kernel connection table capacity
	MaxClosed  uint32 // --max-closed: closed connections -a keeps
	CPUProfile string // --cpuprofile: write a Go CPU profile (hidden, for developers)
}

// ErrHelp is returned when help or usage was printed; exit 0.
var ErrHelp = errors.New("help requested")

// UsageError is a bad command line: exit 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

const usageLine = "Usage: netwatcher [-aeiPrtx?qv] [-d DPORT] [-s SPORT] [--data-dir=DIR] [--duration=D] [-o table|json] [--ready-file=PATH] [--no-packets] [--max-conns=N] [--max-closed=N] [--help] [--usage]"

// portValue is -d/-s. The kernel filter holds one port, and pflag keeps the
// last of repeated flags, so `-d 80 -d 81` would silently trace 81 only:
// n counts the flags given, and Parse refuses a repeat.
type portValue struct {
	p *uint16
	n *int
}

func (v portValue) String() string {
	if v.p == nil || *v.p == 0 {
		return ""
	}
	return strconv.Itoa(int(*v.p))
}
func (v portValue) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not a port (1..65535)", s)
	}
	*v.p = uint16(n)
	*v.n++
	return nil
}
func (v portValue) Type() string { return "PORT" }

type durValue struct{ d *time.Duration }

func (v durValue) String() string {
	if v.d == nil || *v.d == 0 {
		return ""
	}
	return v.d.String()
}
func (v durValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("%q is not a positive duration (e.g. 10s, 2m)", s)
	}
	*v.d = d
	return nil
}
func (v durValue) Type() string { return "DURATION" }

type outValue struct{ o *Output }

func (v outValue) String() string {
	if v.o != nil && *v.o == JSON {
		return "json"
	}
	return "table"
}
func (v outValue) Set(s string) error {
	switch s {
	case "table":
		*v.o = Table
	case "json":
		*v.o = JSON
	default:
		return fmt.Errorf("%q is not an output format (table or json)", s)
	}
	return nil
}
func (v outValue) Type() string { return "FORMAT" }

// DefaultMaxConns is --max-conns by default (conn.DefaultMaxConns).
const DefaultMaxConns = 131072

// DefaultMaxClosed is --max-closed by default: how many closed connections
// -a keeps. connects.log is a snapshot rewritten every second, so each kept
// connection costs a line per second (~250 bytes) and ~0.5 KiB of memory:
// measured on churn (24k closes/s), keeping 100,000 took the tool's RSS
// from 70 to 120 MiB and its CPU from 0.15 to 0.4 s per 2 s.
const DefaultMaxClosed = 16384

type countValue struct {
	n        *uint32
	min, max uint32
}

func (v countValue) String() string {
	if v.n == nil {
		return ""
	}
	return strconv.FormatUint(uint64(*v.n), 10)
}
func (v countValue) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || n < uint64(v.min) || n > uint64(v.max) {
		return fmt.Errorf("%q is not a count (%d..%d)", s, v.min, v.max)
	}
	*v.n = uint32(n)
	return nil
}
func (v countValue) Type() string { return "N" }

// Parse parses args (without the program name). Help/usage text goes to out.
func Parse(args []string, out io.Writer) (*Config, error) {
	c := &Config{DataDir: "./data", MaxConns: DefaultMaxConns, MaxClosed: DefaultMaxClosed}
	fs := pflag.NewFlagSet("netwatcher", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.BoolVarP(&c.All, "all", "a", false, "keep CLOSED connections in the connection table")
	var nDport, nSport int
	fs.VarP(portValue{&c.Dport, &nDport}, "dport", "d", "trace connections/packets with this destination (remote) port only")
	fs.BoolVarP(&c.Err, "err", "e", false, "trace TCP error packets (bad checksum, invalid sequence, other drop reasons)")
	fs.BoolVarP(&c.HTTP, "http", "i", false, "trace HTTP/1.x request/status lines")
	fs.BoolVarP(&c.Retrans, "retrans", "r", false, "trace retransmissions (fast vs timeout)")
	fs.VarP(portValue{&c.Sport, &nSport}, "sport", "s", "trace connections/packets with this source (local) port only")
	fs.BoolVarP(&c.Time, "time", "t", false, "trace per-packet time spent in each layer (MAC, IP, TCP)")
	fs.BoolVarP(&c.Extra, "extra", "x", false, "trace extra connection info (srtt, cwnd, windows, buffers, bytes)")
	fs.BoolVarP(&c.State, "tcpstate", "P", false, "trace TCP state transitions with the time spent in the previous state; handshake latency (tcpstate.log)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for connects.log, packets.log, err.log (created 0700)")
	fs.Var(durValue{&c.Duration}, "duration", "stop by itself after this Go duration (10s, 2m)")
	fs.VarP(outValue{&c.Output}, "output", "o", "console format: table or json")
	fs.StringVar(&c.ReadyFile, "ready-file", "", "write this file once every requested probe is attached")
	fs.BoolVarP(&c.Quiet, "quiet", "q", false, "no per-event console lines (files and summaries only)")
	fs.BoolVarP(&c.Verbose, "verbose", "v", false, "debug logging on stderr")
	fs.BoolVar(&c.NoPackets, "no-packets", false, "no per-packet records: connection tracking only, the cheapest mode (not with -t or -i)")
	fs.Var(countValue{&c.MaxClosed, 1, 1 << 20}, "max-closed", "with -a: closed connections kept, newest last; older ones are evicted and counted as closed_evicted")
	fs.Var(countValue{&c.MaxConns, 64, 1 << 24}, "max-conns", "kernel connection table capacity (preallocated, ~104 bytes each; a connection that does not fit is counted as conn_table_full)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a Go CPU profile of netwatcher itself to this file")
	fs.Lookup("cpuprofile").Hidden = true
	help := fs.BoolP("help", "h", false, "give this help list")
	fs.Lookup("help").ShorthandDeprecated = ""
	qm := fs.BoolP("help-qm", "?", false, "give this help list")
	fs.Lookup("help-qm").Hidden = true
	usage := fs.Bool("usage", false, "give a short usage message")

	if err := fs.Parse(args); err != nil {
		return nil, &UsageError{Msg: "netwatcher: " + err.Error() + " (see --help)"}
	}
	switch {
	case *help || *qm:
		fmt.Fprintf(out, "%s\nWatch TCP/IP in the Linux network subsystem with eBPF.\n\n%s", usageLine, fs.FlagUsages())
		return nil, ErrHelp
	case *usage:
		fmt.Fprintln(out, usageLine)
		return nil, ErrHelp
	}
	for _, f := range []struct {
		n    int
		name string
	}{{nDport, "-d/--dport"}, {nSport, "-s/--sport"}} {
		if f.n > 1 {
			return nil, &UsageError{Msg: "netwatcher: " + f.name + " given more than once (one port only)"}
		}
	}
	if fs.NArg() > 0 {
		return nil, &UsageError{Msg: fmt.Sprintf("netwatcher: unexpected argument %q (see --help)", fs.Arg(0))}
	}
	if c.NoPackets && (c.Time || c.HTTP) {
		return nil, &UsageError{Msg: "netwatcher: --no-packets cannot be combined with -t or -i (they describe packets)"}
	}
	if c.DataDir == "" {
		return nil, &UsageError{Msg: "netwatcher: --data-dir must not be empty"}
	}
	if err := checkDataDir(c.DataDir); err != nil {
		return nil, &UsageError{Msg: "netwatcher: " + err.Error()}
	}
	return c, nil
}

// checkDataDir rejects a --data-dir that can never be used: it is created
// with its parents at start, so it, or else its nearest existing ancestor,
// must be a directory (a symlink to one is fine). What only the run can
// tell (permissions, a read-only disk) is left to output.OpenFiles: without
// root the run stops first at the privilege check, which says more.
func checkDataDir(dir string) error {
	p := filepath.Clean(dir)
	for {
		st, err := os.Stat(p)
		switch {
		case err == nil && st.IsDir():
			return nil
		case err == nil && p == filepath.Clean(dir):
			return fmt.Errorf("--data-dir %s: not a directory", dir)
		case err == nil:
			return fmt.Errorf("--data-dir %s: %s is not a directory", dir, p)
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			parent := filepath.Dir(p)
			if parent == p {
				return nil
			}
			p = parent
		default:
			return nil
		}
	}
}

// KernelQuiet: the kernel sends no open/owner records (conn.Options.Quiet):
// -q, unless -a asks to keep every connection (then the table must learn
// each one, however short, to name its records).
func (c *Config) KernelQuiet() bool { return c.Quiet && !c.All }

// NoCloseRecords: the kernel sends no close records either
// (conn.Options.NoClose): -q without -a and without -i.
func (c *Config) NoCloseRecords() bool { return c.Quiet && !c.All && !c.HTTP }
