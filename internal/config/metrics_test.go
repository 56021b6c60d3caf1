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

// With metrics on, -q keeps the kernel's open/close records: the
// connection metrics count them.
func TestMetricsKeepsConnRecords(t *testing.T) {
	cfg, err := Parse([]string{"-q", "--data-dir", t.TempDir()}, io.Discard)
	if err != nil || !cfg.KernelQuiet() || !cfg.NoCloseRecords() {
		t.Fatalf("-q: %v quiet=%v noclose=%v", err, cfg.KernelQuiet(), cfg.NoCloseRecords())
	}
	cfg, err = Parse([]string{"-q", "--metrics-addr=127.0.0.1:0", "--data-dir", t.TempDir()}, io.Discard)
	if err != nil || cfg.KernelQuiet() || cfg.NoCloseRecords() {
		t.Fatalf("-q --metrics-addr: %v quiet=%v noclose=%v", err, cfg.KernelQuiet(), cfg.NoCloseRecords())
	}
}
