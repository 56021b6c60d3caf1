// Command nwpeer is a small TCP peer for netwatcher's tests and benchmarks.
// It runs as a process of its own, so connections it makes carry its pid
// and the comm "nwpeer".
//
//	nwpeer serve    -l ADDR:PORT [--echo|--sink|--http] [--handoff]
//	nwpeer connect  -r ADDR:PORT [-n N] [--send BYTES] [--hold] [--lport P]
//	nwpeer churn    -r ADDR:PORT -n N -c CONC
//	nwpeer rr       -r ADDR:PORT -c CONC --size B --duration D [--blackout AT:FOR]
//	nwpeer bulk     -r ADDR:PORT --bytes N
//	nwpeer http-get -r ADDR:PORT -n N --path P [--close|--http10]
//	nwpeer dns-serve -l ADDR:PORT           (UDP and TCP; see dns.go)
//	nwpeer dns-query -r ADDR:PORT -n N [--tcp]
//	nwpeer redis-serve -l ADDR:PORT         (see redis.go)
//	nwpeer redis-query -r ADDR:PORT -n N [-P DEPTH]
//
// serve without a mode reads and discards what it receives, silently.
// serve --handoff creates the listener but leaves accepting and serving to
// a child process (nwpeer re-executed, the listener inherited as fd 3, like
// a pre-fork server): the parent only waits, the child ends with it.
// Every subcommand also takes --duration (a hard cap on its run time,
// default 60s; for rr the measuring time, default 5s) and --stdin-exit (exit
// when standard input reaches EOF). All exit on SIGINT or SIGTERM.
//
// Output lines on stdout, one per event, written whole:
//
//	READY <listen addr>
//	CHILD <pid>                            (serve --handoff: the serving child, after READY)
//	ACCEPTED <local> <remote> <pid>
//	RECEIVED <local> <remote> <bytes>      (serve --sink, at the peer's EOF)
//	CONNECTED <local> <remote> <pid>       (after the --send echo, if any)
//	CLOSED                                  (connect --hold, after closing)
//	churn conns=N secs=S rate=R/s errors=E
//	rr ops=N secs=S rate=R/s
//	bulk bytes=N secs=S mbit=M
//	HTTP <status line> <ns from request sent to response headers read>
//
// Errors go to stderr; the exit code is 1 on failure, 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// maxDuration is the default hard cap on any run.
const maxDuration = 60 * time.Second

var outMu sync.Mutex

// say prints one line with a single write, so lines from concurrent
// goroutines never interleave (os.Stdout is unbuffered: nothing to flush).
func say(format string, args ...any) {
	line := fmt.Sprintf(format, args...) + "\n"
	outMu.Lock()
	defer outMu.Unlock()
	_, _ = io.WriteString(os.Stdout, line)
}

// usageError is reported with exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usage() {
	fmt.Fprint(os.Stderr, `usage: nwpeer SUBCOMMAND [flags]
subcommands: serve, connect, churn, rr, bulk, http-get, dns-serve, dns-query, redis-serve, redis-query
run "nwpeer SUBCOMMAND -h" for the flags of one
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	err := run(os.Args[1], os.Args[2:])
	var ue usageError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "nwpeer:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "nwpeer:", err)
		os.Exit(1)
	}
}

// common holds the flags every subcommand has.
type common struct {
	duration  time.Duration
	stdinExit bool
}

func newFlags(name string, defDuration time.Duration) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet("nwpeer "+name, flag.ContinueOnError)
	c := &common{}
	fs.DurationVar(&c.duration, "duration", defDuration, "stop after this long (hard cap)")
	fs.BoolVar(&c.stdinExit, "stdin-exit", false, "exit when stdin reaches EOF")
	return fs, c
}

// context returns a context cancelled by SIGINT/SIGTERM, the duration cap,
// and (if asked) EOF on stdin.
func (c *common) context(watchStdin bool) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, c.duration)
	if c.stdinExit || watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}
	return ctx, func() { cancel(); stop() }
}

func run(sub string, args []string) error {
	switch sub {
	case "serve":
		return cmdServe(args)
	case "connect":
		return cmdConnect(args)
	case "churn":
		return cmdChurn(args)
	case "rr":
		return cmdRR(args)
	case "bulk":
		return cmdBulk(args)
	case "http-get":
		return cmdHTTPGet(args)
	case "dns-serve":
		return cmdDNSServe(args)
	case "dns-query":
		return cmdDNSQuery(args)
	case "redis-serve":
		return cmdRedisServe(args)
	case "redis-query":
		return cmdRedisQuery(args)
	case "-h", "-help", "--help", "help":
		usage()
		return nil
	}
	usage()
	return usageError{fmt.Sprintf("unknown subcommand %q", sub)}
}

// parse parses flags and checks that nothing is left and required string
// flags are set.
func parse(fs *flag.FlagSet, args []string, required map[string]*string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	for name, v := range required {
		if *v == "" {
			return usageError{fmt.Sprintf("%s: -%s is required", fs.Name(), name)}
		}
	}
	return nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return fmt.Sprintf("%.1f", float64(n)/d.Seconds())
}
