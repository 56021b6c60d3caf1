package config

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestMetricsAddr(t *testing.T) {
	for _, c := range []struct {
		args []string
		ok   bool
		want string // in the error
	}{
		{[]string{"--metrics-addr", "127.0.0.1:9433"}, true, ""},
		{[]string{"--metrics-addr=[::1]:9433"}, true, ""},
		{[]string{"--metrics-addr=localhost:0"}, true, ""},
		{[]string{"--metrics-addr=127.0.0.2:9433"}, true, ""},
		{[]string{"--metrics-addr=0.0.0.0:9433"}, false, "not a loopback address"},
		{[]string{"--metrics-addr=:9433"}, false, "listens on every address"},
		{[]string{"--metrics-addr=10.1.2.3:9433"}, false, "--metrics-allow-remote"},
		{[]string{"--metrics-addr=10.1.2.3:9433", "--metrics-allow-remote"}, true, ""},
		{[]string{"--metrics-addr=:9433", "--metrics-allow-remote"}, true, ""},
		{[]string{"--metrics-addr=127.0.0.1"}, false, "not HOST:PORT"},
		{[]string{"--metrics-addr=127.0.0.1:http"}, false, "not a port"},
		{[]string{"--metrics-addr=127.0.0.1:70000"}, false, "not a port"},
	} {
		cfg, err := Parse(append(c.args, "--data-dir", t.TempDir()), io.Discard)
		if c.ok {
			if err != nil {
				t.Errorf("%v: %v", c.args, err)
			} else if cfg.MetricsAddr == "" {
				t.Errorf("%v: MetricsAddr empty", c.args)
			}
			continue
		}
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: want a usage error, got %v", c.args, err)
			continue
		}
		if !strings.Contains(ue.Msg, c.want) || strings.Contains(ue.Msg, "\n") {
			t.Errorf("%v: %q lacks %q (or is not one line)", c.args, ue.Msg, c.want)
		}
	}
}

// Metrics on do not need the kernel's open/close records (the kernel
// counts the connection metrics): -q stays quiet; -a and -i still need
// theirs.
func TestMetricsKeepsKernelQuiet(t *testing.T) {
	for _, c := range []struct {
		args           []string
		quiet, noClose bool
	}{
		{[]string{"-q"}, true, true},
		{[]string{"-q", "--metrics-addr=127.0.0.1:0"}, true, true},
		{[]string{"-q", "--summary", "--metrics-addr=127.0.0.1:0"}, true, true},
		{[]string{"-q", "-i", "--metrics-addr=127.0.0.1:0"}, true, false},
		{[]string{"-q", "-a", "--metrics-addr=127.0.0.1:0"}, false, false},
		{[]string{"--metrics-addr=127.0.0.1:0"}, false, false},
	} {
		cfg, err := Parse(append(c.args, "--data-dir", t.TempDir()), io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if cfg.KernelQuiet() != c.quiet || cfg.NoCloseRecords() != c.noClose {
			t.Errorf("%v: quiet=%v noclose=%v, want %v %v", c.args, cfg.KernelQuiet(), cfg.NoCloseRecords(), c.quiet, c.noClose)
		}
	}
}
