package oracle

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

var mibFiles = []string{"/proc/net/snmp", "/proc/net/netstat", "/proc/net/snmp6"}

// Nstat returns the absolute kernel MIB counters of ns (nil: the test's own
// namespace), named as nstat names them: the line prefix joined with the
// field, e.g. TcpInCsumErrors, TcpRetransSegs, TcpExtTCPLossFailures,
// IpExtInOctets, Ip6InReceives. Values that are not unsigned integers (Tcp
// MaxConn is -1) are left out.
func Nstat(t testing.TB, ns *nstest.NS) map[string]uint64 {
	t.Helper()
	var data []byte
	if ns == nil {
		for _, f := range mibFiles {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			data = append(data, b...)
		}
	} else {
		data = []byte(ns.Run(t, "cat", mibFiles...))
	}
	m, err := ParseMIB(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ParseMIB parses the concatenation of /proc/net/snmp, /proc/net/netstat
// ("Prefix: names..." then "Prefix: values..." line pairs) and
// /proc/net/snmp6 ("Name value" lines).
func ParseMIB(data []byte) (map[string]uint64, error) {
	m := map[string]uint64{}
	var hdrPrefix string
	var hdrNames []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if prefix, ok := strings.CutSuffix(f[0], ":"); ok {
			if hdrNames == nil || hdrPrefix != prefix {
				hdrPrefix, hdrNames = prefix, f[1:]
				continue
			}
			if len(f)-1 != len(hdrNames) {
				return nil, fmt.Errorf("%s: %d names but %d values", prefix, len(hdrNames), len(f)-1)
			}
			for i, name := range hdrNames {
				if v, err := strconv.ParseUint(f[i+1], 10, 64); err == nil {
					m[prefix+name] = v
				}
			}
			hdrNames = nil
			continue
		}
		if len(f) == 2 { // snmp6
			if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				m[f[0]] = v
			}
			continue
		}
		return nil, fmt.Errorf("unexpected MIB line %q", sc.Text())
	}
	return m, sc.Err()
}

// Delta returns after[key]-before[key] (0 if the counter went down). It
// panics if after has no such key, so a misspelt name cannot pass a test
// that expects no change.
func Delta(before, after map[string]uint64, key string) uint64 {
	a, ok := after[key]
	if !ok {
		panic(fmt.Sprintf("oracle.Delta: no counter %q", key))
	}
	if b := before[key]; a > b {
		return a - b
	}
	return 0
}
