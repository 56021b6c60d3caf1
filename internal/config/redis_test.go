package config

import (
	"bytes"
	"strings"
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
	if err != nil || c.Redis {
		t.Errorf("default: redis %v, %v", c.Redis, err)
	}
	var out bytes.Buffer
	Parse([]string{"--usage"}, &out)
	if !strings.Contains(out.String(), "R") {
		t.Errorf("usage %q", out.String())
	}
}
