package config

import (
	"bytes"
	"regexp"
	"testing"
)

// -R / --redis, alone and bundled with other short flags; in the usage line.
func TestParseRedis(t *testing.T) {
	for _, args := range [][]string{{"-R"}, {"--redis"}, {"-tRx"}} {
		c, err := Parse(args, &bytes.Buffer{})
		if err != nil || !c.Redis {
			t.Errorf("%v: redis %v, %v", args, c != nil && c.Redis, err)
		}
	}
	c, err := Parse(nil, &bytes.Buffer{})
	if err != nil || c.Redis || c.RedisPort != 0 {
		t.Errorf("default: redis %v port %d, %v", c.Redis, c.RedisPort, err)
	}
	if c, err := Parse([]string{"-R", "--redis-port", "6380"}, &bytes.Buffer{}); err != nil || c.RedisPort != 6380 {
		t.Errorf("--redis-port: %v %v", c, err)
	}
	for _, bad := range []string{"0", "65536", "x"} {
		if _, err := Parse([]string{"--redis-port", bad}, &bytes.Buffer{}); err == nil {
			t.Errorf("--redis-port %s accepted", bad)
		}
	}
	var out bytes.Buffer
	Parse([]string{"--usage"}, &out)
	if !regexp.MustCompile(`\[-[a-zA-Z?]*R[a-zA-Z?]*\]`).MatchString(out.String()) {
		t.Errorf("usage %q", out.String())
	}
}
