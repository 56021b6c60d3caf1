package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// -L / --timeload (hidden --time_load) implies -t; --timeload-factor needs
// -L and a factor in [1.5, 1000]; -L with --no-packets is refused.
func TestParseTimeload(t *testing.T) {
	for _, args := range [][]string{{"-L"}, {"--timeload"}, {"--time_load"}, {"-qL"}} {
		c, err := Parse(args, &bytes.Buffer{})
		if err != nil || !c.TimeLoad || !c.Time || c.TimeLoadFactor != DefaultTimeLoadFactor {
			t.Errorf("%v: %+v, %v", args, c, err)
		}
	}
	c, err := Parse(nil, &bytes.Buffer{})
	if err != nil || c.TimeLoad || c.Time {
		t.Errorf("default: timeload %v time %v, %v", c.TimeLoad, c.Time, err)
	}
	if c, err := Parse([]string{"-L", "--timeload-factor", "2.5"}, &bytes.Buffer{}); err != nil || c.TimeLoadFactor != 2.5 {
		t.Errorf("--timeload-factor 2.5: %v %v", c, err)
	}
	for _, bad := range [][]string{
		{"-L", "--timeload-factor", "1"}, {"-L", "--timeload-factor", "1001"}, {"-L", "--timeload-factor", "x"},
		{"-L", "--timeload-factor", "NaN"}, {"--timeload-factor", "3"}, {"-L", "--no-packets"}, {"-L", "--summary"},
	} {
		_, err := Parse(bad, &bytes.Buffer{})
		var ue *UsageError
		if !errors.As(err, &ue) || strings.Contains(ue.Msg, "\n") {
			t.Errorf("%v: %v, want a one-line usage error", bad, err)
		}
	}
	var out bytes.Buffer
	Parse([]string{"--usage"}, &out)
	if !strings.Contains(out.String(), "[-L [--timeload-factor=K]]") {
		t.Errorf("usage %q", out.String())
	}
	out.Reset()
	Parse([]string{"--help"}, &out)
	if !strings.Contains(out.String(), "-L, --timeload") || strings.Contains(out.String(), "time_load") {
		t.Errorf("help: -L missing or the alias shown")
	}
}
