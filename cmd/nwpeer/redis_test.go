package main

import (
	"bufio"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/redis"
)

// redis-serve's requests and replies, read back with netwatcher's parsers;
// a pipeline of commands answered in order.
func TestRedisServe(t *testing.T) {
	s := &redisStore{str: map[string]string{}, lists: map[string]int{}}
	in := respArray("SET", "k", "v") + respArray("GET", "k") + respArray("INCR", "k") + respArray("LPUSH", "k", "x") +
		respArray("INCR", "n") + respArray("GET", "nokey") + respArray("PING") + respArray("NOPE")
	want := []struct {
		cmd   string
		reply byte
		null  bool
		err   string
	}{{"SET", '+', false, ""}, {"GET", '$', false, ""}, {"INCR", '-', false, "ERR"}, {"LPUSH", '-', false, "WRONGTYPE"},
		{"INCR", ':', false, ""}, {"GET", '$', true, ""}, {"PING", '+', false, ""}, {"NOPE", '-', false, "ERR"}}
	r := bufio.NewReader(strings.NewReader(in))
	for i, w := range want {
		a, err := respCommand(r)
		if err != nil {
			t.Fatal(err)
		}
		var req redis.Request
		if redis.ParseRequest([]byte(respArray(a...)), &req); string(req.Command()) != w.cmd {
			t.Errorf("%d: command %s", i, req.Command())
		}
		var rep redis.Reply
		out := s.reply(a)
		if !redis.ParseReply([]byte(out), &rep) || rep.Type != w.reply || rep.Null != w.null || string(rep.ErrCode()) != w.err {
			t.Errorf("%d %s: reply %q", i, w.cmd, out)
		}
		if t2, err := respReply(bufio.NewReader(strings.NewReader(out))); err != nil || t2 != w.reply {
			t.Errorf("%d: redis-query reads %c %v", i, t2, err)
		}
	}
}
