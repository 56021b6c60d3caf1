package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A minimal Redis server and client for the kernel matrix's -R workload
// (a guest has no redis-server):
//
//	nwpeer redis-serve -l ADDR:PORT
//	nwpeer redis-query -r ADDR:PORT -n N [-P DEPTH]
//
// redis-serve answers RESP arrays of bulk strings (what every client
// sends): PING +PONG, SET +OK, GET a bulk string or null, INCR an integer
// (an error when the value is not one), LPUSH an integer (WRONGTYPE on a
// string key), anything else -ERR. It prints READY <addr> once it listens.
// redis-query sends N commands on one connection (SET, GET, INCR, LPUSH
// on the string key: WRONGTYPE, PING, in turn), DEPTH at a time
// (pipelined), and prints one line per reply and a total:
//
//	REDIS <command> <reply type byte>
//	REDIS-TOTAL <replies> <errors> <ns>

// respCommand reads one request (an array of bulk strings) from r.
func respCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[0] != '*' {
		return nil, errors.New("redis-serve: not an array")
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 1 || n > 1024 {
		return nil, errors.New("redis-serve: bad count")
	}
	args := make([]string, n)
	for i := range args {
		h, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l, err := strconv.Atoi(strings.TrimSpace(h[1:]))
		if h[0] != '$' || err != nil || l < 0 || l > 1<<20 {
			return nil, errors.New("redis-serve: bad bulk")
		}
		b := make([]byte, l+2)
		if _, err := ioReadFull(r, b); err != nil {
			return nil, err
		}
		args[i] = string(b[:l])
	}
	return args, nil
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// redisStore is redis-serve's data: strings and list lengths.
type redisStore struct {
	mu    sync.Mutex
	str   map[string]string
	lists map[string]int
}

// reply is the RESP reply to args.
func (s *redisStore) reply(args []string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := strings.ToUpper(args[0])
	switch {
	case cmd == "PING":
		return "+PONG\r\n"
	case cmd == "SET" && len(args) >= 3:
		delete(s.lists, args[1])
		s.str[args[1]] = args[2]
		return "+OK\r\n"
	case cmd == "GET" && len(args) == 2:
		if _, ok := s.lists[args[1]]; ok {
			return "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
		}
		v, ok := s.str[args[1]]
		if !ok {
			return "$-1\r\n"
		}
		return fmt.Sprintf("$%d\r\n%s\r\n", len(v), v)
	case cmd == "INCR" && len(args) == 2:
		n, err := strconv.ParseInt(s.str[args[1]], 10, 64)
		if _, ok := s.str[args[1]]; ok && err != nil {
			return "-ERR value is not an integer or out of range\r\n"
		}
		s.str[args[1]] = strconv.FormatInt(n+1, 10)
		return fmt.Sprintf(":%d\r\n", n+1)
	case cmd == "LPUSH" && len(args) >= 3:
		if _, ok := s.str[args[1]]; ok {
			return "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
		}
		s.lists[args[1]] += len(args) - 2
		return fmt.Sprintf(":%d\r\n", s.lists[args[1]])
	}
	return fmt.Sprintf("-ERR unknown command '%s'\r\n", cmd)
}

func cmdRedisServe(args []string) error {
	fs, c := newFlags("redis-serve", maxDuration)
	var addr string
	fs.StringVar(&addr, "l", "", "listen address ADDR:PORT")
	if err := parse(fs, args, map[string]*string{"l": &addr}); err != nil {
		return err
	}
	ctx, cancel := c.context(false)
	defer cancel()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() { <-ctx.Done(); ln.Close() }()
	s := &redisStore{str: map[string]string{}, lists: map[string]int{}}
	say("READY %s", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer conn.Close()
			r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
			for {
				a, err := respCommand(r)
				if err != nil {
					return
				}
				w.WriteString(s.reply(a))
				if r.Buffered() == 0 { // the end of a pipeline: answer it in one write
					if w.Flush() != nil {
						return
					}
				}
			}
		}()
	}
}

// respReply reads one reply's type byte, skipping its body (the replies
// of redis-serve: simple, error, integer, bulk).
func respReply(r *bufio.Reader) (byte, error) {
	line, err := r.ReadString('\n')
	if err != nil || len(line) < 3 {
		return 0, errors.New("redis-query: short reply")
	}
	if line[0] == '$' {
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		if n >= 0 {
			if _, err := ioReadFull(r, make([]byte, n+2)); err != nil {
				return 0, err
			}
		}
	}
	return line[0], nil
}

func respArray(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

func cmdRedisQuery(args []string) error {
	fs, c := newFlags("redis-query", maxDuration)
	var addr string
	var n, depth int
	fs.StringVar(&addr, "r", "", "server ADDR:PORT")
	fs.IntVar(&n, "n", 10, "commands")
	fs.IntVar(&depth, "P", 1, "commands in flight (pipelined)")
	if err := parse(fs, args, map[string]*string{"r": &addr}); err != nil {
		return err
	}
	ctx, cancel := c.context(false)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	cmds := [][]string{{"SET", "nw:s", "v"}, {"GET", "nw:s"}, {"INCR", "nw:n"}, {"LPUSH", "nw:s", "x"}, {"PING"}}
	r := bufio.NewReader(conn)
	start := time.Now()
	errs := 0
	for sent := 0; sent < n && ctx.Err() == nil; {
		k := min(max(depth, 1), n-sent)
		var batch strings.Builder
		for i := 0; i < k; i++ {
			batch.WriteString(respArray(cmds[(sent+i)%len(cmds)]...))
		}
		if _, err := conn.Write([]byte(batch.String())); err != nil {
			return err
		}
		for i := 0; i < k; i++ {
			t, err := respReply(r)
			if err != nil {
				return err
			}
			if t == '-' {
				errs++
			}
			say("REDIS %s %c", cmds[(sent+i)%len(cmds)][0], t)
		}
		sent += k
	}
	say("REDIS-TOTAL %d %d %d", n, errs, time.Since(start).Nanoseconds())
	return nil
}
