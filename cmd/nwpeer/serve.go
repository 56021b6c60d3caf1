package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

func cmdServe(args []string) error {
	fs, c := newFlags("serve", maxDuration)
	listen := fs.String("l", "", "listen on `ADDR:PORT` (IPv4 or [IPv6]; port 0 picks one)")
	echo := fs.Bool("echo", false, "echo every byte back")
	sink := fs.Bool("sink", false, "read and discard; print RECEIVED with the byte count at EOF")
	httpMode := fs.Bool("http", false, "serve HTTP/1.1: GET / is 200 \"ok\", anything else 404")
	if err := parse(fs, args, map[string]*string{"l": listen}); err != nil {
		return err
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

	ctx, cancel := c.context(false)
	defer cancel()
	// Plain TCP: since Go 1.24 listeners are MPTCP by default (ss shows
	// "tcp-ulp-mptcp"); a test peer should not depend on the Go version.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	inner, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		return err
	}
	ln := &trackingListener{Listener: inner, conns: map[net.Conn]struct{}{}}
	say("READY %s", ln.Addr())

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
