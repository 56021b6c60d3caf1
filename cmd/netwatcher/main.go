// Command netwatcher watches TCP/IP in the Linux network stack with eBPF.
// See README.md and SPEC.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/engine"
	"github.com/netwatcher/netwatcher/internal/output"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// consoleGrace bounds how long a console may go without taking anything at
// exit: a stdout nobody reads (`| less` not scrolling) must not keep a
// stopped netwatcher alive; one that reads slowly gets everything
// (Console.Close).
const consoleGrace = time.Second

// ignoreSIGPIPE turns a write to a closed stdout or stderr pipe into an
// EPIPE error. Go's default is to die of SIGPIPE on fd 1 and 2 (exit 141,
// `netwatcher | head -3`), which loses the final flush of the files and
// the stats; Ignore is enough (Notify would work too, but needs a channel
// nobody wants), see TestSIGPIPE.
func ignoreSIGPIPE() { signal.Ignore(syscall.SIGPIPE) }

// run returns the exit status:
//   - 0: stopped by SIGINT/SIGTERM, --duration, or stdout closed by its
//     reader (`| head -3`: the reader had what it wanted; the files are
//     complete, so this is a normal end, like SIGTERM);
//   - 1: the run failed or its files are incomplete (a full disk lost
//     lines: a script must be able to tell);
//   - 2: bad invocation (flags, an unusable --data-dir).
//
// Console lines dropped because stdout was too slow do not change the
// status: the console is a view, the files are the record.
func run(args []string) int {
	ignoreSIGPIPE() // before anything is printed, --help included
	cfg, err := config.Parse(args, os.Stdout)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	var ue *config.UsageError
	if errors.As(err, &ue) {
		fmt.Fprintln(os.Stderr, ue.Msg)
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netwatcher:", err)
		return 2
	}
	// From here on nothing writes to fd 1 or 2 directly: a blocked
	// pipe would block the writer.
	stdout := output.NewConsole(os.Stdout, "stdout")
	stderr := output.NewConsole(os.Stderr, "stderr")
	level := slog.LevelInfo
	if cfg.Verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	code := watch(cfg, log, stdout, stderr)

	stdout.Close(consoleGrace)
	if n := stdout.Dropped(); n > 0 {
		log.Warn("console lines dropped (stdout too slow or closed)", "lines", n)
	}
	// What stderr itself drops cannot be said on stderr.
	stderr.Close(consoleGrace / 2)
	return code
}

func watch(cfg *config.Config, log *slog.Logger, stdout, stderr *output.Console) int {
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			fmt.Fprintln(stderr, "netwatcher: --cpuprofile:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "netwatcher: --cpuprofile:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	// stdout's reader went away: stop like SIGTERM (files flushed, exit
	// 0) instead of tracing into a void.
	ctx, cancel := context.WithCancel(ctx)
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-stdout.Broken():
			log.Info("stdout closed, stopping")
			cancel()
		case <-ctx.Done():
		}
	}()
	err := engine.Run(ctx, engine.Options{
		Cfg:      cfg,
		Log:      log,
		Stdout:   stdout,
		Concerns: concerns(cfg),
	})
	cancel()
	<-watcherDone
	var de *output.DataDirError
	switch {
	case errors.As(err, &de):
		fmt.Fprintln(stderr, "netwatcher:", err)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "netwatcher:", err)
		return 1
	}
	return 0
}
