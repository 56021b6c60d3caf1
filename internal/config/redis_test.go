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
	if err != nil || c.Redis {
		t.Errorf("default: redis %v, %v", c.Redis, err)
	}
	var out bytes.Buffer
	Parse([]string{"--usage"}, &out)
	if !regexp.MustCompile(`\[-[a-zA-Z?]*R[a-zA-Z?]*\]`).MatchString(out.String()) {
		t.Errorf("usage %q", out.String())
	}
}
