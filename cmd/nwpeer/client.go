package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const dialTimeout = 5 * time.Second

func newDialer(lport int) *net.Dialer {
	d := &net.Dialer{Timeout: dialTimeout}
	if lport > 0 {
		d.LocalAddr = &net.TCPAddr{Port: lport}
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return d
}

// unblockOnDone makes blocked reads and writes on conn return when ctx ends.
func unblockOnDone(ctx context.Context, conn net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
}

// exchange writes n bytes and reads n bytes back, concurrently, so that
// large sizes cannot deadlock against an echo server.
func exchange(conn net.Conn, wbuf, rbuf []byte, n int) error {
	errc := make(chan error, 1)
	go func() {
		var err error
		for left := n; left > 0 && err == nil; {
			k := min(left, len(wbuf))
			_, err = conn.Write(wbuf[:k])
			left -= k
		}
		errc <- err
	}()
	var rerr error
	for left := n; left > 0 && rerr == nil; {
		k := min(left, len(rbuf))
		_, rerr = io.ReadFull(conn, rbuf[:k])
		left -= k
	}
	if rerr != nil {
		_ = conn.SetDeadline(time.Unix(1, 0)) // unblock the writer
	}
	if werr := <-errc; werr != nil {
		return werr
	}
	return rerr
}

func cmdConnect(args []string) error {
	fs, c := newFlags("connect", maxDuration)
	remote := fs.String("r", "", "connect to `ADDR:PORT`")
	n := fs.Int("n", 1, "number of connections, opened one after the other")
	send := fs.Int("send", 0, "write this many `BYTES` on each connection and read the echo back (server: serve --echo)")
	hold := fs.Bool("hold", false, "keep all connections open until stdin EOF or a signal, then close them and print CLOSED")
	// CONNECTED is printed once the connection is up and, with --send, the
	// echo has been read back in full.
	lport := fs.Int("lport", 0, "bind this local `PORT` (SO_REUSEADDR)")
	if err := parse(fs, args, map[string]*string{"r": remote}); err != nil {
		return err
	}
	if *n < 1 || *send < 0 || *lport < 0 || *lport > 65535 {
		return usageError{"connect: -n must be >= 1, --send >= 0, --lport in 0..65535"}
	}
	ctx, cancel := c.context(*hold)
	defer cancel()
	d := newDialer(*lport)
	buf := make([]byte, min(max(*send, 1), 64<<10))
	rbuf := make([]byte, len(buf))
	var held []net.Conn
	defer func() {
		for _, conn := range held {
			conn.Close()
		}
	}()
	for i := 0; i < *n; i++ {
		conn, err := d.DialContext(ctx, "tcp", *remote)
		if err == nil && *send > 0 {
			stop := unblockOnDone(ctx, conn)
			err = exchange(conn, buf, rbuf, *send)
			stop()
			if err != nil {
				conn.Close()
			}
		}
		if err != nil {
			if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				break // stopped by a signal or stdin EOF: not a failure
			}
			return fmt.Errorf("connection %d: %w", i, err)
		}
		// Printed after the --send exchange, so that a reader of this line
		// knows the data went both ways.
		say("CONNECTED %s %s %d", conn.LocalAddr(), conn.RemoteAddr(), os.Getpid())
		if *hold {
			held = append(held, conn)
		} else {
			conn.Close()
		}
	}
	if *hold {
		<-ctx.Done()
		for _, conn := range held {
			conn.Close()
		}
		held = nil
		say("CLOSED")
	}
	return nil
}

func cmdChurn(args []string) error {
	fs, c := newFlags("churn", maxDuration)
	remote := fs.String("r", "", "connect to `ADDR:PORT` (server: serve --echo)")
	n := fs.Int("n", 1000, "number of connections")
	conc := fs.Int("c", 1, "concurrent workers")
	if err := parse(fs, args, map[string]*string{"r": remote}); err != nil {
		return err
	}
	if *n < 1 || *conc < 1 {
		return usageError{"churn: -n and -c must be >= 1"}
	}
	ctx, cancel := c.context(false)
	defer cancel()
	d := newDialer(0)
	var next, done, errs atomic.Int64
	var firstErr sync.Once
	one := func() error {
		conn, err := d.DialContext(ctx, "tcp", *remote)
		if err != nil {
			return err
		}
		defer conn.Close()
		stop := unblockOnDone(ctx, conn)
		defer stop()
		b := []byte{'x'}
		if _, err := conn.Write(b); err != nil {
			return err
		}
		_, err = io.ReadFull(conn, b)
		return err
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(*n) && ctx.Err() == nil {
				if err := one(); err != nil {
					// Past the deadline a dial fails at once, before the
					// context's timer has marked it done: stop, do not
					// spin counting those as errors.
					if dl, ok := ctx.Deadline(); ctx.Err() != nil || (ok && !time.Now().Before(dl)) {
						return
					}
					errs.Add(1)
					firstErr.Do(func() { fmt.Fprintln(os.Stderr, "nwpeer churn: first error:", err) })
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	say("churn conns=%d secs=%s rate=%s/s errors=%d", done.Load(), secs(el), rate(done.Load(), el), errs.Load())
	return nil
}

func cmdRR(args []string) error {
	fs, c := newFlags("rr", 5*time.Second)
	remote := fs.String("r", "", "connect to `ADDR:PORT` (server: serve --echo)")
	conc := fs.Int("c", 1, "concurrent connections")
	size := fs.Int("size", 1024, "request and response size in `BYTES`")
	blackout := fs.String("blackout", "", "`AT:FOR` (durations): AT after the start, drop every segment the connections receive for FOR (see blackout.go)")
	if err := parse(fs, args, map[string]*string{"r": remote}); err != nil {
		return err
	}
	if *conc < 1 || *size < 1 {
		return usageError{"rr: -c and --size must be >= 1"}
	}
	bat, bfor, err := parseBlackout(*blackout)
	if err != nil {
		return err
	}
	// --duration is the measuring time here; allow extra time to connect.
	measure := c.duration
	c.duration += dialTimeout
	ctx, cancel := c.context(false)
	defer cancel()
	d := newDialer(0)
	conns := make([]net.Conn, 0, *conc)
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	for i := 0; i < *conc; i++ {
		conn, err := d.DialContext(ctx, "tcp", *remote)
		if err != nil {
			return err
		}
		conns = append(conns, conn)
	}
	mctx, mcancel := context.WithTimeout(ctx, measure)
	defer mcancel()
	var ops atomic.Int64
	errc := make(chan error, len(conns))
	start := time.Now()
	if bfor > 0 {
		bdone := startBlackout(mctx, conns, bat, bfor)
		defer func() { <-bdone }()
	}
	for _, conn := range conns {
		go func() {
			stop := unblockOnDone(mctx, conn)
			defer stop()
			wbuf, rbuf := make([]byte, *size), make([]byte, *size)
			for mctx.Err() == nil {
				if _, err := conn.Write(wbuf); err != nil {
					errc <- err
					return
				}
				if _, err := io.ReadFull(conn, rbuf); err != nil {
					errc <- err
					return
				}
				ops.Add(1)
			}
			errc <- nil
		}()
	}
	var firstErr error
	for range conns {
		if err := <-errc; err != nil && mctx.Err() == nil && firstErr == nil {
			firstErr = err
			mcancel()
		}
	}
	el := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	say("rr ops=%d secs=%s rate=%s/s", ops.Load(), secs(el), rate(ops.Load(), el))
	return nil
}

func cmdBulk(args []string) error {
	fs, c := newFlags("bulk", maxDuration)
	remote := fs.String("r", "", "connect to `ADDR:PORT` (server: serve --sink)")
	total := fs.Int64("bytes", 10<<20, "bytes to send")
	if err := parse(fs, args, map[string]*string{"r": remote}); err != nil {
		return err
	}
	if *total < 0 {
		return usageError{"bulk: --bytes must be >= 0"}
	}
	ctx, cancel := c.context(false)
	defer cancel()
	conn, err := newDialer(0).DialContext(ctx, "tcp", *remote)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := unblockOnDone(ctx, conn)
	defer stop()
	// Drain whatever comes back (nothing from a sink) until the server
	// closes: that is when all data has been read on the other side.
	drained := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn)
		drained <- err
	}()
	start := time.Now()
	buf := make([]byte, 256<<10)
	for left := *total; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := conn.Write(buf[:k]); err != nil {
			return err
		}
		left -= k
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	if err := <-drained; err != nil {
		return err
	}
	el := time.Since(start)
	mbit := 0.0
	if el > 0 {
		mbit = float64(*total) * 8 / el.Seconds() / 1e6
	}
	say("bulk bytes=%d secs=%s mbit=%.1f", *total, secs(el), mbit)
	return nil
}

func cmdHTTPGet(args []string) error {
	fs, c := newFlags("http-get", maxDuration)
	remote := fs.String("r", "", "server `ADDR:PORT` (server: serve --http)")
	n := fs.Int("n", 1, "number of GET requests, one after the other on one connection")
	path := fs.String("path", "/", "request `PATH`")
	closeEach := fs.Bool("close", false, "a new connection per request (Connection: close), as health checks do")
	http10 := fs.Bool("http10", false, "HTTP/1.0 requests written by hand, a connection each (the server closes it after the response)")
	if err := parse(fs, args, map[string]*string{"r": remote}); err != nil {
		return err
	}
	if *n < 1 || len(*path) == 0 || (*path)[0] != '/' {
		return usageError{"http-get: -n must be >= 1 and --path start with /"}
	}
	ctx, cancel := c.context(false)
	defer cancel()
	d := newDialer(0)
	if *http10 {
		return http10Get(ctx, d, *remote, *path, *n)
	}
	tr := &http.Transport{
		Proxy: nil, // never a proxy from the environment: talk to -r only
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err == nil {
				say("CONNECTED %s %s %d", conn.LocalAddr(), conn.RemoteAddr(), os.Getpid())
			}
			return conn, err
		},
		MaxConnsPerHost:    1,
		MaxIdleConns:       1,
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
		DisableKeepAlives:  *closeEach,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := "http://" + *remote + *path
	for i := 0; i < *n; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return usageError{err.Error()}
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		say("HTTP %s %s %d", resp.Proto, resp.Status, time.Since(t0).Nanoseconds())
	}
	return nil
}

// http10Get makes n HTTP/1.0 requests, one connection each: request line and
// an empty line, then the status line and everything up to the server's
// close.
func http10Get(ctx context.Context, d *net.Dialer, remote, path string, n int) error {
	req := []byte("GET " + path + " HTTP/1.0\r\n\r\n")
	for i := 0; i < n; i++ {
		t0 := time.Now()
		conn, err := d.DialContext(ctx, "tcp", remote)
		if err != nil {
			return err
		}
		say("CONNECTED %s %s %d", conn.LocalAddr(), conn.RemoteAddr(), os.Getpid())
		stop := unblockOnDone(ctx, conn)
		status, err := func() (string, error) {
			defer conn.Close()
			if _, err := conn.Write(req); err != nil {
				return "", err
			}
			br := bufio.NewReader(conn)
			line, err := br.ReadString('\n')
			if err != nil {
				return "", err
			}
			_, err = io.Copy(io.Discard, br)
			return strings.TrimRight(line, "\r\n"), err
		}()
		stop()
		if err != nil {
			return err
		}
		say("HTTP %s %d", status, time.Since(t0).Nanoseconds())
	}
	return nil
}
