package fault

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Counters holds SNMP counters of one namespace keyed like nstat does:
// "TcpInCsumErrors", "TcpRetransSegs", "TcpExtTCPOFOQueue", "IpExt...",
// "Ip6InReceives", ...
type Counters map[string]int64

// ReadCounters reads /proc/net/snmp, /proc/net/netstat and /proc/net/snmp6
// as seen inside netns.
func ReadCounters(netns string) (Counters, error) {
	c := Counters{}
	err := Do(netns, func() error {
		for _, f := range []string{"snmp", "netstat"} {
			if err := readPairs(c, "/proc/thread-self/net/"+f); err != nil {
				return err
			}
		}
		return readFlat(c, "/proc/thread-self/net/snmp6")
	})
	return c, err
}

// readPairs parses the "Proto: name name\nProto: value value" format.
func readPairs(c Counters, path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var names []string
	var proto string
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 1 {
			continue
		}
		p := strings.TrimSuffix(fs[0], ":")
		if names == nil || p != proto {
			proto, names = p, fs[1:]
			continue
		}
		for i, v := range fs[1:] {
			if i < len(names) {
				n, err := strconv.ParseInt(v, 10, 64)
				if err == nil {
					c[proto+names[i]] = n
				}
			}
		}
		names = nil
	}
	return sc.Err()
}

func readFlat(c Counters, path string) error {
	fh, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 2 {
			if n, err := strconv.ParseInt(fs[1], 10, 64); err == nil {
				c[fs[0]] = n
			}
		}
	}
	return sc.Err()
}

// Sub returns c - prev for every key of c.
func (c Counters) Sub(prev Counters) Counters {
	d := Counters{}
	for k, v := range c {
		d[k] = v - prev[k]
	}
	return d
}

// NonZero formats the non-zero entries of names (all if none given).
func (c Counters) NonZero(names ...string) string {
	var b strings.Builder
	if len(names) == 0 {
		for k := range c {
			names = append(names, k)
		}
		sortStrings(names)
	}
	for _, k := range names {
		if c[k] != 0 {
			fmt.Fprintf(&b, "%s=%d ", k, c[k])
		}
	}
	return strings.TrimSpace(b.String())
}

func sortStrings(s []string) { slices.Sort(s) }
