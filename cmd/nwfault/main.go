// Command nwfault injects TCP faults into live connections between network
// namespaces joined by veth pairs: segments with a bad checksum, segments
// outside (or inside, out of order) the receive window, random drops and
// short blackouts at the receiver's ingress. It is a test tool for
// netwatcher's error and retransmit tracing.
//
// It only ever acts inside a named, non-root network namespace, and only
// sends to the peer of a live connection reached over a veth (see package
// internal/fault).
//
// Exit status: 0 success, 1 runtime failure, 2 usage error or refused.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/netwatcher/netwatcher/internal/fault"
)

const usage = `usage: nwfault COMMAND --netns NAME [flags]

Commands (all act inside network namespace NAME, never the root namespace):
  badcsum     --netns SENDERNS --flow SRC:PORT,DST:PORT [--count N] [--iface IF]
              send N data segments with a wrong TCP checksum into the live
              connection (seq/ack learned by sniffing the flow on IF).
              The receiver checks checksums only with rx offload off: see rxcsum-off.
  oow         --netns SENDERNS --flow ... [--count M] [--mode future|old|inwindow-ooo]
              send M data segments with seq = rcv_nxt+2^30 (future), rcv_nxt-2^30
              (old), or rcv_nxt+OFFSET (inwindow-ooo: accepted into the OOO queue).
  drop        --netns RECEIVERNS --flow ... --every N [--duration D]
              drop one in N packets of the flow at the receiver's ingress
              (nft table inet nwfault_<pid>) for D (default: until SIGINT/SIGTERM).
  blackout    --netns RECEIVERNS --flow ... [--ms 150] [--repeat K] [--gap-ms G]
              drop every packet of the flow at the receiver's ingress for MS ms, K times.
  rxcsum-off  --netns NS --iface IF    like 'ethtool -K IF rx off' inside NS (needed for badcsum
                                       on the RECEIVER's veth)
  rxcsum-on   --netns NS --iface IF    like 'ethtool -K IF rx on' inside NS
  offload     --netns NS --iface IF NAME=on|off...   like 'ethtool -K IF NAME on|off'
              (NAME: rx tx sg tso gso gro). With tso/gso on, the sending veth passes
              64 KB super-packets, and 'drop' drops whole super-packets; turn them
              off on the SENDER's veth for per-segment loss.
  cleanup     --netns NS               delete nft tables nwfault_* left by a killed nwfault
  counters    --netns NS [NAME...]     print TCP counters (TcpInCsumErrors, TcpExtTCPOFOQueue, ...)

--flow is SRC_IP:SRC_PORT,DST_IP:DST_PORT (IPv6: [addr]:port); SRC sends, DST receives.
Run 'nwfault COMMAND --help' for the flags of a command.
Exit status: 0 ok, 1 failure, 2 usage error or refused by a safety check.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type exitErr struct {
	code int
	msg  string
}

func (e *exitErr) Error() string { return e.msg }

func usageErr(format string, a ...any) error {
	return &exitErr{code: 2, msg: fmt.Sprintf(format, a...)}
}

// run is main without os.Exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "nwfault: missing command (badcsum, oow, drop, blackout, rxcsum-off, rxcsum-on, offload, cleanup, counters); try --help")
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help", "help", "--usage":
		fmt.Fprint(stdout, usage)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	err := command(ctx, args[0], args[1:], stdout)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
	fmt.Fprintf(stderr, "nwfault %s: %s\n", args[0], msg)
	var ee *exitErr
	if errors.As(err, &ee) {
		return ee.code
	}
	if fault.IsUsage(err) {
		return 2
	}
	return 1
}

type common struct {
	fs    *flag.FlagSet
	netns string
	flow  string
	iface string
	peer  string
}

func newFlags(cmd string, stdout io.Writer, withFlow bool, help string) *common {
	c := &common{fs: flag.NewFlagSet(cmd, flag.ContinueOnError)}
	c.fs.SetOutput(io.Discard)
	c.fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: nwfault %s %s\n\nflags:\n", cmd, help)
		c.fs.SetOutput(stdout)
		c.fs.PrintDefaults()
		c.fs.SetOutput(io.Discard)
	}
	c.fs.StringVar(&c.netns, "netns", "", "named network namespace to act in (required; never the root namespace)")
	if withFlow {
		c.fs.StringVar(&c.flow, "flow", "", "SRC_IP:SRC_PORT,DST_IP:DST_PORT (required)")
		c.fs.StringVar(&c.peer, "peer-netns", "", "optional: namespace of the other end, checked to hold its address")
	}
	return c
}

func (c *common) parse(args []string) (fault.Flow, error) {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return fault.Flow{}, err // the flag set printed the usage
		}
		return fault.Flow{}, usageErr("%v", err)
	}
	if c.fs.NArg() > 0 && c.fs.Lookup("flow") != nil {
		return fault.Flow{}, usageErr("unexpected argument %q", c.fs.Arg(0))
	}
	if c.netns == "" {
		return fault.Flow{}, usageErr("--netns is required: name a network namespace from 'ip netns list' (never the root namespace)")
	}
	if err := fault.CheckNetns(c.netns); err != nil {
		return fault.Flow{}, err
	}
	if c.fs.Lookup("flow") == nil {
		return fault.Flow{}, nil
	}
	if c.flow == "" {
		return fault.Flow{}, usageErr("--flow SRC_IP:SRC_PORT,DST_IP:DST_PORT is required")
	}
	f, err := fault.ParseFlow(c.flow)
	if err != nil {
		return f, err
	}
	if os.Geteuid() != 0 {
		return f, &exitErr{code: 1, msg: "must run as root (needs CAP_SYS_ADMIN for setns, CAP_NET_RAW, CAP_NET_ADMIN)"}
	}
	return f, nil
}

func command(ctx context.Context, cmd string, args []string, stdout io.Writer) error {
	switch cmd {
	case "badcsum", "oow":
		help := "--netns SENDERNS --flow SRC:PORT,DST:PORT [--count N] [--iface IF]"
		if cmd == "oow" {
			help += " [--mode future|old|inwindow-ooo]"
		}
		c := newFlags(cmd, stdout, true, help)
		c.fs.StringVar(&c.iface, "iface", "", "interface to sniff the flow on (default: the one towards DST)")
		count := c.fs.Int("count", 1, "segments to inject")
		timeout := c.fs.Duration("timeout", 10*time.Second, "how long to wait for traffic of the flow")
		interval := c.fs.Duration("interval", 10*time.Millisecond, "pause between segments")
		var mode *string
		var offset *uint
		if cmd == "oow" {
			mode = c.fs.String("mode", fault.ModeFuture, "future (rcv_nxt+2^30), old (rcv_nxt-2^30) or inwindow-ooo (rcv_nxt+offset)")
			offset = c.fs.Uint("offset", 300, "inwindow-ooo: bytes beyond rcv_nxt")
		}
		f, err := c.parse(args)
		if err != nil {
			return err
		}
		if *count < 1 {
			return usageErr("bad --count %d: want >= 1", *count)
		}
		opts := fault.InjectOptions{Netns: c.netns, Flow: f, Count: *count, Iface: c.iface, PeerNetns: c.peer,
			Timeout: *timeout, Interval: *interval, Out: stdout}
		if cmd == "badcsum" {
			_, err = fault.BadCsum(ctx, opts)
			return err
		}
		if *offset == 0 || *offset > 1<<20 {
			return usageErr("bad --offset %d: want 1..1048576", *offset)
		}
		opts.Mode, opts.Offset = *mode, uint32(*offset)
		_, err = fault.OutOfWindow(ctx, opts)
		return err

	case "drop":
		c := newFlags(cmd, stdout, true, "--netns RECEIVERNS --flow SRC:PORT,DST:PORT --every N [--duration D]")
		every := c.fs.Int("every", 0, "drop one in N packets (at random), N >= 1 (required)")
		dur := c.fs.Duration("duration", 0, "how long (Go duration, e.g. 2s); 0 = until SIGINT/SIGTERM")
		f, err := c.parse(args)
		if err != nil {
			return err
		}
		if *every < 1 {
			return usageErr("--every N (N >= 1) is required")
		}
		if *dur < 0 {
			return usageErr("bad --duration %v", *dur)
		}
		_, err = fault.Drop(ctx, fault.DropOptions{Netns: c.netns, Flow: f, Every: *every, Duration: *dur, PeerNetns: c.peer, Out: stdout})
		return err

	case "blackout":
		c := newFlags(cmd, stdout, true, "--netns RECEIVERNS --flow SRC:PORT,DST:PORT [--ms 150] [--repeat K] [--gap-ms G]")
		ms := c.fs.Int("ms", 150, "length of each blackout in milliseconds")
		repeat := c.fs.Int("repeat", 1, "number of blackouts")
		gap := c.fs.Int("gap-ms", 500, "pause between blackouts in milliseconds")
		f, err := c.parse(args)
		if err != nil {
			return err
		}
		if *ms < 1 || *ms > 600000 || *repeat < 1 || *gap < 1 || *gap > 600000 {
			return usageErr("bad blackout: want --ms 1..600000, --repeat >= 1, --gap-ms 1..600000")
		}
		_, err = fault.Blackout(ctx, fault.BlackoutOptions{Netns: c.netns, Flow: f,
			Length: time.Duration(*ms) * time.Millisecond, Repeat: *repeat,
			Gap: time.Duration(*gap) * time.Millisecond, PeerNetns: c.peer, Out: stdout})
		return err

	case "rxcsum-off", "rxcsum-on":
		c := newFlags(cmd, stdout, false, "--netns NS --iface IF")
		c.fs.StringVar(&c.iface, "iface", "", "interface in NS (required)")
		if _, err := c.parse(args); err != nil {
			return err
		}
		if c.fs.NArg() > 0 {
			return usageErr("unexpected argument %q", c.fs.Arg(0))
		}
		if c.iface == "" {
			return usageErr("--iface is required")
		}
		on := cmd == "rxcsum-on"
		if err := fault.SetRxChecksum(c.netns, c.iface, on); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: rx-checksumming %s on %s in netns %s\n", cmd, map[bool]string{true: "on", false: "off"}[on], c.iface, c.netns)
		return nil

	case "offload":
		c := newFlags(cmd, stdout, false, "--netns NS --iface IF NAME=on|off...")
		c.fs.StringVar(&c.iface, "iface", "", "interface in NS (required)")
		if _, err := c.parse(args); err != nil {
			return err
		}
		if c.iface == "" || c.fs.NArg() == 0 {
			return usageErr("want --iface IF and at least one NAME=on|off (rx, tx, sg, tso, gso, gro)")
		}
		type set struct {
			name string
			on   bool
		}
		var sets []set
		for _, a := range c.fs.Args() {
			name, val, ok := strings.Cut(a, "=")
			if !ok || (val != "on" && val != "off") {
				return usageErr("bad offload setting %q: want NAME=on|off", a)
			}
			sets = append(sets, set{name, val == "on"})
		}
		for _, st := range sets {
			if err := fault.SetOffload(c.netns, c.iface, st.name, st.on); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "offload: %s %s on %s in netns %s\n", st.name, map[bool]string{true: "on", false: "off"}[st.on], c.iface, c.netns)
		}
		return nil

	case "cleanup":
		c := newFlags(cmd, stdout, false, "--netns NS")
		if _, err := c.parse(args); err != nil {
			return err
		}
		if c.fs.NArg() > 0 {
			return usageErr("unexpected argument %q", c.fs.Arg(0))
		}
		gone, err := fault.Cleanup(c.netns)
		for _, g := range gone {
			fmt.Fprintf(stdout, "cleanup: deleted table inet %s in netns %s\n", g, c.netns)
		}
		if err == nil && len(gone) == 0 {
			fmt.Fprintf(stdout, "cleanup: no nwfault tables in netns %s\n", c.netns)
		}
		return err

	case "counters":
		c := newFlags(cmd, stdout, false, "--netns NS [NAME...]")
		if _, err := c.parse(args); err != nil {
			return err
		}
		cs, err := fault.ReadCounters(c.netns)
		if err != nil {
			return err
		}
		names := c.fs.Args()
		if len(names) == 0 {
			names = []string{"TcpInSegs", "TcpOutSegs", "TcpRetransSegs", "TcpInErrs", "TcpInCsumErrors",
				"TcpExtBeyondWindow", "TcpExtTCPOFOQueue", "TcpExtTCPOFODrop", "TcpExtTCPOFOMerge",
				"TcpExtTCPACKSkippedSeq", "TcpExtDelayedACKLost", "TcpExtTCPDSACKOldSent",
				"TcpExtTCPFastRetrans", "TcpExtTCPTimeouts", "TcpExtTCPLossProbes", "TcpExtTCPSackRecovery"}
		} else if len(names) == 1 && names[0] == "all" {
			names = names[:0]
			for k := range cs {
				names = append(names, k)
			}
			sort.Strings(names)
		}
		for _, n := range names {
			v, ok := cs[n]
			if !ok {
				fmt.Fprintf(stdout, "%s -\n", n)
				continue
			}
			fmt.Fprintf(stdout, "%s %d\n", n, v)
		}
		return nil
	}
	return usageErr("unknown command %q (badcsum, oow, drop, blackout, rxcsum-off, rxcsum-on, offload, cleanup, counters)", cmd)
}
