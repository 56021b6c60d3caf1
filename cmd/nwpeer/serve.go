package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// childFD is the descriptor number the --handoff child finds the listener at
// (the first of exec.Cmd.ExtraFiles).
const childFD = 3

func cmdServe(args []string) error {
	fs, c := newFlags("serve", maxDuration)
	listen := fs.String("l", "", "listen on `ADDR:PORT` (IPv4 or [IPv6]; port 0 picks one)")
	echo := fs.Bool("echo", false, "echo every byte back")
	sink := fs.Bool("sink", false, "read and discard; print RECEIVED with the byte count at EOF")
	httpMode := fs.Bool("http", false, "serve HTTP/1.1: GET / is 200 \"ok\", anything else 404")
	handoff := fs.Bool("handoff", false, "create the listener here, but accept and serve in a child process (nwpeer re-executed, the listener inherited); this process only waits; the child prints CHILD with its pid")
	listenFD := fs.Int("listen-fd", -1, "internal, the --handoff child: serve the inherited listener `FD` instead of -l")
	hideFlags(fs, "listen-fd")
	if err := parse(fs, args, nil); err != nil {
		return err
	}
	if *listen == "" && *listenFD < 0 {
		return usageError{fmt.Sprintf("%s: -%s is required", fs.Name(), "l")}
	}
	modes := 0
	for _, b := range []bool{*echo, *sink, *httpMode} {
		if b {
			modes++
		}
	}
	if modes > 1 {
		return usageError{"serve: --echo, --sink and --http exclude each other"}
	}
	if *listenFD >= 0 && (*listen != "" || *handoff) {
		return usageError{"serve: --listen-fd excludes -l and --handoff"}
	}

	if *handoff {
		child := []string{"serve", "--listen-fd", fmt.Sprint(childFD), "--duration", c.duration.String()}
		switch {
		case *echo:
			child = append(child, "--echo")
		case *sink:
			child = append(child, "--sink")
		case *httpMode:
			child = append(child, "--http")
		}
		return serveHandoff(c, *listen, child)
	}

	// The --handoff child always watches stdin: the parent closes it (or
	// dies) to end the child.
	ctx, cancel := c.context(*listenFD >= 0)
	defer cancel()
	var inner net.Listener
	var err error
	if *listenFD >= 0 {
		f := os.NewFile(uintptr(*listenFD), "listener")
		if f == nil {
			return fmt.Errorf("serve: bad --listen-fd %d", *listenFD)
		}
		inner, err = net.FileListener(f) // a dup of f
		f.Close()
		if err != nil {
			return fmt.Errorf("serve: inherited listener: %w", err)
		}
	} else if inner, err = listenTCP(ctx, *listen); err != nil {
		return err
	}
	ln := &trackingListener{Listener: inner, conns: map[net.Conn]struct{}{}}
	if *listenFD >= 0 {
		say("CHILD %d", os.Getpid()) // the parent printed READY
	} else {
		say("READY %s", ln.Addr())
	}

	if *httpMode {
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/" {
					http.NotFound(w, r)
					return
				}
				w.Header().Set("Content-Type", "text/plain")
				_, _ = io.WriteString(w, "ok")
			}),
			ReadHeaderTimeout: 10 * time.Second,
			ConnState: func(conn net.Conn, st http.ConnState) {
				if st == http.StateClosed {
					ln.forget(conn)
				}
			},
		}
		go func() {
			<-ctx.Done()
			_ = srv.Close() // closes the listener and every connection
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}

	var wg sync.WaitGroup
	go func() {
		<-ctx.Done()
		ln.closeAll()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			ln.closeAll()
			wg.Wait()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ln.forget(conn)
			switch {
			case *echo:
				_, _ = io.Copy(conn, conn)
			default:
				n, err := io.Copy(io.Discard, conn)
				if *sink && err == nil {
					say("RECEIVED %s %s %d", conn.LocalAddr(), conn.RemoteAddr(), n)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// trackingListener prints ACCEPTED for every connection and remembers open
// connections so they can all be closed at exit.
type trackingListener struct {
	net.Listener
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	say("ACCEPTED %s %s %d", conn.LocalAddr(), conn.RemoteAddr(), os.Getpid())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		conn.Close()
		return nil, net.ErrClosed
	}
	l.conns[conn] = struct{}{}
	return conn, nil
}

func (l *trackingListener) forget(conn net.Conn) {
	conn.Close()
	l.mu.Lock()
	delete(l.conns, conn)
	l.mu.Unlock()
}

func (l *trackingListener) closeAll() {
	l.Listener.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
}

// listenTCP listens on plain TCP: since Go 1.24 listeners are MPTCP by
// default (ss shows "tcp-ulp-mptcp"); a test peer should not depend on the
// Go version.
func listenTCP(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	return lc.Listen(ctx, "tcp", addr)
}

// serveHandoff is serve --handoff: the way pre-fork servers and fd hand-off
// work, the listening socket is created by this process and served by
// another. It listens on addr, prints READY, and starts `nwpeer childArgs...`
// with the listener as descriptor childFD; the child accepts and serves and
// prints CHILD <pid>. This process never accepts, reads or writes: it keeps
// its copy of the listener open and waits until it is told to stop (signal,
// --duration, --stdin-exit) or the child ends.
//
// The child ends with this process: its stdin is a pipe from here, which it
// watches (closed at a clean stop, and by the kernel if this process dies),
// and Pdeathsig kills it should this process die.
func serveHandoff(c *common, addr string, childArgs []string) error {
	ctx, cancel := c.context(false)
	defer cancel()
	inner, err := listenTCP(ctx, addr)
	if err != nil {
		return err
	}
	defer inner.Close()
	f, err := inner.(*net.TCPListener).File() // a dup, inherited by the child
	if err != nil {
		return err
	}
	defer f.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	// Before the child starts: READY must come first on stdout.
	say("READY %s", inner.Addr())

	cmd := exec.Command(exe, childArgs...)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout = os.Stdout // shared: every line is one write
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	// Pdeathsig fires when the thread that forked ends, not the process:
	// fork from a thread that lives as long as this goroutine.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("handoff child: %w", err)
	}
	f.Close() // the child has its own copy now
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("handoff child: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	stdin.Close()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("handoff child: %w", err)
		}
		return nil
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("handoff child: still running 5s after its stdin closed")
	}
}

// hideFlags leaves the named flags out of the -h listing.
func hideFlags(fs *flag.FlagSet, names ...string) {
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
		shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		shown.SetOutput(out)
		fs.VisitAll(func(f *flag.Flag) {
			for _, n := range names {
				if f.Name == n {
					return
				}
			}
			shown.Var(f.Value, f.Name, f.Usage)
			shown.Lookup(f.Name).DefValue = f.DefValue
		})
		shown.PrintDefaults()
	}
}
