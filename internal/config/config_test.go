package config

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseGNUStyle(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Config
	}{
		{[]string{"-ax"}, Config{All: true, Extra: true}},
		{[]string{"-tixre"}, Config{Time: true, HTTP: true, Extra: true, Retrans: true, Err: true}},
		{[]string{"--dport=80"}, Config{Dport: 80}},
		{[]string{"-d", "80", "-s8080"}, Config{Dport: 80, Sport: 8080}},
		{[]string{"--sport", "443", "--all"}, Config{Sport: 443, All: true}},
		{[]string{"-o", "json", "--duration=2m", "-q"}, Config{Output: JSON, Duration: 2 * time.Minute, Quiet: true}},
		{[]string{"--output=table", "--ready-file=/tmp/r", "--data-dir", "/x"}, Config{ReadyFile: "/tmp/r", DataDir: "/x"}},
		{[]string{"-axre", "--no-packets"}, Config{All: true, Extra: true, Retrans: true, Err: true, NoPackets: true}},
		{[]string{"--max-conns=1000000"}, Config{MaxConns: 1000000}},
		{[]string{"-a", "--max-closed=100000"}, Config{All: true, MaxClosed: 100000}},
		{[]string{"-P"}, Config{State: true}},
		{[]string{"-tixre", "--sample=100"}, Config{Time: true, HTTP: true, Extra: true, Retrans: true, Err: true, Sample: 100}},
		{[]string{"--sample", "1", "--no-packets"}, Config{NoPackets: true}},
		{[]string{"-C", "5", "-u"}, Config{CountSecs: 5, UDP: true}},
		{[]string{"--protocol_count=1"}, Config{CountSecs: 1}}, // alias (hidden)
		{[]string{"--rst"}, Config{Rst: true}},
		{[]string{"--rst_counters"}, Config{Rst: true}}, // alias (hidden)
		{[]string{"-n"}, Config{NetFilter: true}},
		{[]string{"--net_filter", "--no-packets"}, Config{NetFilter: true, NoPackets: true}}, // alias (hidden); summaries only
		{[]string{"--rtt", "--interval=250ms"}, Config{Rtt: true, Interval: 250 * time.Millisecond}},
		{[]string{"-ut", "--udp"}, Config{UDP: true, Time: true}},
		{[]string{"-I"}, Config{ICMP: true}},
		{[]string{"-N", "--interval=5s"}, Config{DNS: true, Interval: 5 * time.Second}},
		{[]string{"--dns", "-d", "53"}, Config{DNS: true, Dport: 53}},
		{[]string{"-M"}, Config{MySQL: true}},
		{[]string{"--mysql", "--mysql-port=3307"}, Config{MySQL: true, MySQLPort: 3307}},
		{[]string{"--icmptime", "--no-packets"}, Config{ICMP: true, NoPackets: true}}, // alias (hidden)
		{[]string{"-S", "10.0.0.0/8", "--src-ip=fd00::1", "-D", "192.0.2.7/24", "-D::ffff:198.51.100.0/120"}, Config{
			SrcNets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::1/128")},
			DstNets: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}}},
	} {
		got, err := Parse(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		want := tc.want
		if want.DataDir == "" {
			want.DataDir = "./data"
		}
		if want.MaxConns == 0 {
			want.MaxConns = DefaultMaxConns
		}
		if want.MaxClosed == 0 {
			want.MaxClosed = DefaultMaxClosed
		}
		if want.Interval == 0 {
			want.Interval = time.Second
		}
		if want.Sample == 0 {
			want.Sample = 1
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("%v:\n got %+v\nwant %+v", tc.args, *got, want)
		}
	}
}

func TestParseErrorsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-d", "0"}, {"-d", "65536"}, {"--sport=-1"}, {"-s", "http"}, {"--bogus"}, {"-Z"},
		{"--duration=10"}, {"--duration=-1s"}, {"-t", "--no-packets"}, {"--no-packets", "-i"}, {"-o", "xml"}, {"extra-arg"}, {"--data-dir="}, {"-d"},
		{"--max-conns=0"}, {"--max-conns=63"}, {"--max-conns=20000000"}, {"--max-conns=lots"},
		{"--max-closed=0"}, {"--max-closed=2000000"},
		{"-S", "10.0.0.0/33"}, {"-D", "fe80::1%eth0"}, {"--src-ip=host"}, {"-S"},
		{"-C", "0"}, {"--count=1.5"}, {"--count=86401"}, {"-C"}, {"--sample=0"}, {"--sample=-1"}, {"--sample=ten"}, {"--sample=2000000"}, {"--sample"}, {"--sample=10", "--no-packets"},
		{"-M", "--mysql-port=0"}, {"--mysql-port=65536"}, {"--mysql-port=mysql"},
		{"--rtt", "--interval=99ms"}, {"--interval=0"}, {"--interval=1"}, {"--interval=-1s"}, {"--interval=soon"},
	} {
		_, err := Parse(args, &bytes.Buffer{})
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err %v, want a UsageError", args, err)
			continue
		}
		if strings.Contains(ue.Msg, "\n") || !strings.HasPrefix(ue.Msg, "netwatcher: ") {
			t.Errorf("%v: message must be one line starting with netwatcher: %q", args, ue.Msg)
		}
	}
}

// TestRepeatedPortRefused (issue 10): the kernel filter holds one port per
// direction; `-d 80 -d 81` used to keep 81 silently.
func TestRepeatedPortRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"-d", "80", "-d", "81"}, "-d/--dport"},
		{[]string{"-d80", "--dport=81"}, "-d/--dport"},
		{[]string{"--dport", "80", "-a", "--dport", "80"}, "-d/--dport"},
		{[]string{"-s", "1", "-s", "2"}, "-s/--sport"},
		{[]string{"--sport=1", "-d", "2", "-s1"}, "-s/--sport"},
	} {
		_, err := Parse(tc.args, &bytes.Buffer{})
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err %v, want a UsageError", tc.args, err)
			continue
		}
		if want := "netwatcher: " + tc.flag + " given more than once (one port only)"; ue.Msg != want {
			t.Errorf("%v: %q, want %q", tc.args, ue.Msg, want)
		}
	}
}

func TestHelpAndUsage(t *testing.T) {
	for _, a := range []string{"-h", "--help", "-?"} {
		var out bytes.Buffer
		if _, err := Parse([]string{a}, &out); !errors.Is(err, ErrHelp) {
			t.Fatalf("%s: %v", a, err)
		}
		for _, want := range []string{"--dport", "--sport", "--extra", "--time", "--http", "--retrans", "--err", "--all", "--data-dir", "--duration", "--output", "--ready-file", "--quiet"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s output lacks %s", a, want)
			}
		}
	}
	var out bytes.Buffer
	if _, err := Parse([]string{"--usage"}, &out); !errors.Is(err, ErrHelp) || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("--usage: %v %q", err, out.String())
	}
}

func FuzzParse(f *testing.F) {
	f.Add("-ax", "--dport=80")
	f.Add("-d", "70000")
	f.Add("--duration", "1h")
	f.Fuzz(func(t *testing.T, a, b string) {
		c, err := Parse([]string{a, b}, &bytes.Buffer{})
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		if c != nil && (c.DataDir == "") {
			t.Fatal("empty data dir accepted")
		}
	})
}

// A --data-dir that is a file, or lies under one, is a usage error (exit
// 2), not a failure after the probes were loaded.
func TestParseDataDir(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Symlink(root, filepath.Join(root, "link"))
	for _, dir := range []string{root, filepath.Join(root, "new", "nested"), filepath.Join(root, "link"), "relative/dir"} {
		if _, err := Parse([]string{"--data-dir", dir}, &bytes.Buffer{}); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
	for dir, want := range map[string]string{
		file:                            "netwatcher: --data-dir " + file + ": not a directory",
		filepath.Join(file, "sub", "x"): "netwatcher: --data-dir " + filepath.Join(file, "sub", "x") + ": " + file + " is not a directory",
	} {
		_, err := Parse([]string{"--data-dir", dir}, &bytes.Buffer{})
		var ue *UsageError
		if !errors.As(err, &ue) || ue.Msg != want {
			t.Errorf("%s: %v, want %q", dir, err, want)
		}
	}
}

func TestWanted(t *testing.T) {
	c, err := Parse([]string{"-S", "10.0.0.0/8", "-S", "fd00::/16", "-D", "192.0.2.0/24", "-d", "80"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	for _, x := range []struct {
		local, remote string
		want          bool
	}{
		{"10.1.2.3:5000", "192.0.2.9:80", true},
		{"[fd00::5]:5000", "192.0.2.9:80", true},
		{"[::ffff:10.9.9.9]:5000", "[::ffff:192.0.2.1]:80", true}, // v4-mapped on a v6 socket
		{"11.1.2.3:5000", "192.0.2.9:80", false},
		{"10.1.2.3:5000", "192.0.3.9:80", false},
		{"10.1.2.3:5000", "192.0.2.9:81", false},
	} {
		if got := c.Wanted(ap(x.local), ap(x.remote)); got != x.want {
			t.Errorf("%s -> %s: %v, want %v", x.local, x.remote, got, x.want)
		}
	}
	var many []string
	for i := range MaxNets + 1 {
		many = append(many, "-S", netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}).String())
	}
	if _, err := Parse(many, &bytes.Buffer{}); err == nil {
		t.Errorf("%d networks accepted", MaxNets+1)
	}
}

// TestInterval: --interval is a Go duration of at least 100ms, 1s by default.
func TestInterval(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{{nil, time.Second}, {[]string{"--rtt", "--interval=100ms"}, 100 * time.Millisecond}, {[]string{"--interval", "2m"}, 2 * time.Minute}} {
		c, err := Parse(tc.args, &bytes.Buffer{})
		if err != nil || c.Interval != tc.want {
			t.Errorf("%v: interval %v, err %v; want %v", tc.args, c.Interval, err, tc.want)
		}
	}
}
