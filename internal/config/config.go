// Package config turns the command line into one validated Config. Nothing
// else in netwatcher reads flags.
package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
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
	Rst     bool   // --rst (alias --rst_counters): TCP resets sent and received
	Rtt     bool   // --rtt: per-connection RTT histograms
	UDP     bool   // -u: UDP flows (and datagram layer times with -t)
	ICMP    bool   // -I (alias --icmptime): ICMP/ICMPv6 messages with layer times, echo round trips
	DNS     bool   // -N: DNS queries/responses over UDP and TCP, paired, per-process counters
	Redis   bool   // -R: Redis requests/replies (RESP2/3), paired, per-command summaries
	// RedisPort: --redis-port, the Redis service port (0: 6379).
	RedisPort uint16
	// -n (alias --net_filter): per packet, the time in each netfilter hook
	// it crosses; per-hook summaries every --interval and at exit.
	NetFilter bool
	// -M: MySQL/MariaDB requests with their responses at both ends,
	// latency, per-command counters; MySQLPort: --mysql-port (0: 3306).
	MySQL     bool
	MySQLPort uint16
	// -L (alias --timeload): latency anomalies, a packet whose layer time
	// exceeds TimeLoadFactor x the EWMA of its connection's layer and
	// direction (internal/timeload); implies -t.
	TimeLoad       bool
	TimeLoadFactor float64 // --timeload-factor (DefaultTimeLoadFactor; 0 without -L)
	// --interval: how often periodic records (--rtt) are printed
	// (default 1s, at least MinInterval).
	Interval time.Duration
	// -S/-D: local / remote address filters (CIDRs, v4 or v6; any of
	// each list matches; nil = any). Applied in the kernel.
	SrcNets, DstNets []netip.Prefix

	// -k (alias --drop_reason): every dropped packet with its reason;
	// -F (--addr_to_func): its kernel location on the console line; -A
	// (--stack): its kernel stack. -F and -A imply -k.
	DropReason, AddrToFunc, Stack bool

	DataDir   string
	Duration  time.Duration // 0 = until signal
	Output    Output
	ReadyFile string
	Quiet     bool
	Verbose   bool
	NoPackets bool   // --no-packets: connection tracking only
	MaxConns  uint32 // --max-conns: kernel connection table capacity
	MaxClosed uint32 // --max-closed: closed connections -a keeps
	Sample    uint32 // --sample: packet records for 1 in N data segments (1 = all)
	// --summary: no per-packet records; in-kernel counters and (with -t)
	// layer-time histograms, a summary per --interval and at exit. Implies -q.
	Summary bool
	// -C (alias --protocol_count): every CountSecs seconds, per protocol and
	// direction, packets/requests and bytes (0: off).
	CountSecs uint32
	// --metrics-addr: serve Prometheus metrics on HOST:PORT ("": off);
	// --metrics-allow-remote: a non-loopback HOST is allowed (no auth).
	MetricsAddr        string
	MetricsAllowRemote bool

	CPUProfile string // --cpuprofile: write a Go CPU profile (hidden, for developers)
}

// ErrHelp is returned when help or usage was printed; exit 0.
var ErrHelp = errors.New("help requested")

// UsageError is a bad command line: exit 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

const usageLine = "Usage: netwatcher [-aeiINnPRrtux?qv] [-d DPORT] [-s SPORT] [-D CIDR]... [-S CIDR]... [--data-dir=DIR] [--duration=D] [-o table|json] [--ready-file=PATH] [--no-packets] [--max-conns=N] [--max-closed=N] [--sample=N] [--summary] [-C SECONDS] [-k [-F] [-A]] [--rst] [--rtt] [-M [--mysql-port=PORT]] [-R [--redis-port=PORT]] [-L [--timeload-factor=K]] [--interval=D] [--metrics-addr=HOST:PORT [--metrics-allow-remote]] [--help] [--usage]"

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

// MaxNets bounds -S and -D each (the kernel's tries are that large).
const MaxNets = 64

// netsValue is -S/-D: a CIDR (or a plain address: one host), repeatable.
type netsValue struct{ nets *[]netip.Prefix }

func (v netsValue) String() string {
	if v.nets == nil {
		return ""
	}
	var s []string
	for _, p := range *v.nets {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}
func (v netsValue) Set(s string) error {
	s = strings.TrimSpace(s)
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil || a.Zone() != "" {
			return fmt.Errorf("%q is not an address or CIDR (10.0.0.0/8, fd00::/8, 192.0.2.1)", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
	}
	if len(*v.nets) >= MaxNets {
		return fmt.Errorf("more than %d networks", MaxNets)
	}
	*v.nets = append(*v.nets, p.Masked())
	return nil
}
func (v netsValue) Type() string { return "CIDR" }

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

// DefaultTimeLoadFactor is --timeload-factor by default (timeload.DefaultFactor).
const DefaultTimeLoadFactor = 5

// factorValue is --timeload-factor: a number in [1.5, 1000].
type factorValue struct {
	f *float64
	n *int
}

func (v factorValue) String() string {
	if v.f == nil {
		return ""
	}
	return strconv.FormatFloat(*v.f, 'g', -1, 64)
}
func (v factorValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || !(f >= 1.5 && f <= 1000) {
		return fmt.Errorf("%q is not a factor (1.5..1000)", s)
	}
	*v.f = f
	*v.n++
	return nil
}
func (v factorValue) Type() string { return "K" }

// MinInterval is the shortest --interval: each period reads a kernel map
// of up to --max-conns entries.
const MinInterval = 100 * time.Millisecond

// DefaultMaxConns is --max-conns by default (conn.DefaultMaxConns).
const DefaultMaxConns = 131072

// MaxSample bounds --sample.
const MaxSample = 1 << 20

// DefaultMaxClosed is --max-closed by default: how many closed connections
// -a keeps. connects.log is a snapshot rewritten every second, so each kept
// connection costs a line per second (~330 bytes with -x) and ~0.9 KiB of
// memory with -x (~0.65 KiB without: its line is kept formatted, see
// output.AppendConnLogKept). Measured before the lines were kept, on churn
// (24k closes/s): keeping 100,000 took the tool's RSS from 70 to 120 MiB
// and its CPU from 0.15 to 0.4 s per 2 s.
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
	c := &Config{DataDir: "./data", MaxConns: DefaultMaxConns, MaxClosed: DefaultMaxClosed, Interval: time.Second, Sample: 1}
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
	fs.VarP(netsValue{&c.SrcNets}, "src-ip", "S", "trace connections/packets whose local address is in this CIDR only (repeatable: any matches)")
	fs.VarP(netsValue{&c.DstNets}, "dst-ip", "D", "trace connections/packets whose remote address is in this CIDR only (repeatable: any matches)")
	fs.BoolVarP(&c.State, "tcpstate", "P", false, "trace TCP state transitions with the time spent in the previous state; handshake latency (tcpstate.log)")
	fs.BoolVar(&c.Rst, "rst", false, "trace TCP resets sent and received: direction, state, the kernel's reason; totals in the stats (rst.log)")
	fs.BoolVar(&c.Rst, "rst_counters", false, "alias of --rst")
	_ = fs.MarkHidden("rst_counters")
	fs.BoolVarP(&c.DropReason, "drop-reason", "k", false, "trace every packet the kernel drops, any protocol, with its skb_drop_reason name (drop.log)")
	fs.BoolVar(&c.DropReason, "drop_reason", false, "alias of --drop-reason")
	_ = fs.MarkHidden("drop_reason")
	fs.BoolVarP(&c.AddrToFunc, "addr-to-func", "F", false, "print the kernel location of each drop as function+offset on the console (implies -k)")
	fs.BoolVar(&c.AddrToFunc, "addr_to_func", false, "alias of --addr-to-func")
	_ = fs.MarkHidden("addr_to_func")
	fs.BoolVarP(&c.Stack, "stack", "A", false, "kernel stack of each drop, symbolised, 16 frames at most (implies -k)")
	fs.BoolVarP(&c.Redis, "redis", "R", false, "trace Redis over TCP (port 6379), both ends: command + first key (bounded), reply type, error, request -> reply latency, pipelines paired in order; per-command summary (calls, errors, p50/p99) every --interval and at exit (redis.log)")
	fs.BoolVarP(&c.DNS, "dns", "N", false, "trace DNS over UDP and TCP (port 53), both ends: qname, qtype, rcode, answers, query -> response latency; per-process counters every --interval and at exit (dns.log)")
	fs.BoolVarP(&c.ICMP, "icmp", "I", false, "trace ICMP/ICMPv6 messages host-wide: echo requests/replies with layer times and the round trip the kernel saw; other types with the flow they refer to (icmp.log)")
	fs.BoolVar(&c.ICMP, "icmptime", false, "alias of --icmp")
	_ = fs.MarkHidden("icmptime")
	fs.BoolVarP(&c.UDP, "udp", "u", false, "trace UDP flows host-wide: owner, datagrams and bytes per direction every --interval and at exit; with -t each datagram's layer times (udp.log)")
	fs.BoolVar(&c.Rtt, "rtt", false, "per-connection RTT distribution of the kernel's RTT samples (log2 histogram, p50/p99), every --interval and at close (rtt.log)")
	fs.BoolVarP(&c.NetFilter, "net-filter", "n", false, "per packet, the time spent in each netfilter hook it crosses (v4/v6, every namespace), the hook of a drop; per-hook summary every --interval and at exit (netfilter.log)")
	fs.BoolVar(&c.NetFilter, "net_filter", false, "alias of --net-filter")
	_ = fs.MarkHidden("net_filter")
	fs.BoolVarP(&c.MySQL, "mysql", "M", false, "trace MySQL/MariaDB requests over TCP, both ends: command, query text (bounded), OK/ERR/rows, request -> response latency, the connection and process; per-command counters every --interval and at exit (mysql.log)")
	var nMyPort int
	fs.Var(portValue{&c.MySQLPort, &nMyPort}, "mysql-port", "the MySQL service port -M watches (default 3306)")
	var nRedisPort int
	fs.Var(portValue{&c.RedisPort, &nRedisPort}, "redis-port", "the Redis service port -R watches (default 6379)")
	fs.BoolVarP(&c.TimeLoad, "timeload", "L", false, "latency anomalies (implies -t): an alert when a connection's MAC, IP or TCP layer time (per direction) exceeds --timeload-factor x its moving average (EWMA) for 4 packets in a row, after 100 samples; at most one alert per connection, layer and direction a second, the rest counted (anomaly.log)")
	fs.BoolVar(&c.TimeLoad, "time_load", false, "alias of --timeload")
	_ = fs.MarkHidden("time_load")
	var nFactor int
	fs.Var(factorValue{&c.TimeLoadFactor, &nFactor}, "timeload-factor", "with -L: how many times its EWMA a layer time must be to alert (default 5; 1.5..1000)")
	fs.Var(durValue{&c.Interval}, "interval", "period of the --rtt records, -u flow records, -N counters and -n summaries (Go duration, at least 100ms)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for connects.log, packets.log, err.log (created 0700)")
	fs.Var(durValue{&c.Duration}, "duration", "stop by itself after this Go duration (10s, 2m)")
	fs.VarP(outValue{&c.Output}, "output", "o", "console format: table or json")
	fs.StringVar(&c.ReadyFile, "ready-file", "", "write this file once every requested probe is attached")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics on HOST:PORT (/metrics; loopback only, no authentication; default off)")
	fs.BoolVar(&c.MetricsAllowRemote, "metrics-allow-remote", false, "allow a --metrics-addr that is not a loopback address (anyone who can reach it can read the metrics)")
	fs.BoolVarP(&c.Quiet, "quiet", "q", false, "no per-event console lines (files and summaries only)")
	fs.BoolVarP(&c.Verbose, "verbose", "v", false, "debug logging on stderr")
	fs.BoolVar(&c.NoPackets, "no-packets", false, "no per-packet records: connection tracking only, the cheapest mode (not with -t or -i)")
	fs.Var(countValue{&c.MaxClosed, 1, 1 << 20}, "max-closed", "with -a: closed connections kept, newest last; older ones are evicted and counted as closed_evicted")
	fs.Var(countValue{&c.MaxConns, 64, 1 << 24}, "max-conns", "kernel connection table capacity (preallocated, ~112 bytes each; a connection that does not fit is counted as conn_table_full)")
	fs.VarP(countValue{&c.CountSecs, 1, 86400}, "count", "C", "every SECONDS, per protocol (tcp, udp, icmp, http, dns, mysql, redis: those whose flags are on) and direction, what its records counted: packets or messages, payload bytes, requests; totals at exit (count.log)")
	fs.Var(countValue{&c.CountSecs, 1, 86400}, "protocol_count", "alias of --count")
	_ = fs.MarkHidden("protocol_count")
	fs.BoolVar(&c.Summary, "summary", false, "no per-packet records: data segments counted and, with -t, layer times as log2 histograms in the kernel; a summary per layer and direction every --interval and at exit (summary.log); implies -q")
	fs.Var(countValue{&c.Sample, 1, MaxSample}, "sample", "packet records (with -t: layer times) for 1 in N TCP data segments, picked by a hash of seq and ports; cheaper (-i still records every segment that may start an HTTP line)")
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
	c.DropReason = c.DropReason || c.AddrToFunc || c.Stack
	if nFactor > 0 && !c.TimeLoad {
		return nil, &UsageError{Msg: "netwatcher: --timeload-factor needs -L/--timeload"}
	}
	if c.TimeLoad && (c.NoPackets || c.Summary) {
		return nil, &UsageError{Msg: "netwatcher: -L/--timeload cannot be combined with --no-packets or --summary (it judges the layer times of packet records)"}
	}
	if c.TimeLoad {
		c.Time = true // -L judges -t's layer times
		if nFactor == 0 {
			c.TimeLoadFactor = DefaultTimeLoadFactor
		}
	}
	if c.NoPackets && (c.Time || c.HTTP) {
		return nil, &UsageError{Msg: "netwatcher: --no-packets cannot be combined with -t or -i (they describe packets)"}
	}
	if c.NoPackets && c.Sample > 1 {
		return nil, &UsageError{Msg: "netwatcher: --no-packets cannot be combined with --sample (it thins packet records)"}
	}
	if c.Summary && (c.NoPackets || c.HTTP) {
		return nil, &UsageError{Msg: "netwatcher: --summary cannot be combined with --no-packets or -i (it summarises packets, without their payload)"}
	}
	c.Quiet = c.Quiet || c.Summary
	if c.Interval < MinInterval {
		return nil, &UsageError{Msg: fmt.Sprintf("netwatcher: --interval %s is shorter than %s", c.Interval, MinInterval)}
	}
	if c.MetricsAddr != "" {
		if err := CheckMetricsAddr(c.MetricsAddr, c.MetricsAllowRemote); err != nil {
			return nil, &UsageError{Msg: "netwatcher: " + err.Error()}
		}
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
// each one, however short, to name its records). --metrics-addr needs no
// records: the kernel counts the connection metrics (nw_conn_agg.h).
func (c *Config) KernelQuiet() bool { return c.Quiet && !c.All }

// NoCloseRecords: the kernel sends no close records either
// (conn.Options.NoClose): -q without -a and without -i.
func (c *Config) NoCloseRecords() bool { return c.KernelQuiet() && !c.HTTP }

// Wanted applies the filters (-s/-d, -S/-D) to a connection's local and
// remote address in user space, as the kernel does (connections found at
// start-up).
func (c *Config) Wanted(local, remote netip.AddrPort) bool {
	return (c.Sport == 0 || local.Port() == c.Sport) && (c.Dport == 0 || remote.Port() == c.Dport) &&
		inNets(c.SrcNets, local.Addr()) && inNets(c.DstNets, remote.Addr())
}

// inNets: nets is empty, or one of them holds a (an IPv4-mapped address as
// the IPv4 address it is).
func inNets(nets []netip.Prefix, a netip.Addr) bool {
	if len(nets) == 0 {
		return true
	}
	a = a.Unmap()
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
