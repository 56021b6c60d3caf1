// Package oracle gives tests an independent view of the kernel's TCP state,
// from the usual tools (ss, /proc/net MIB counters, tcpdump), parsed into Go
// values that can be compared with what netwatcher reports.
package oracle

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// TCPInfo is one socket as `ss -tinmHe` shows it. Numeric fields ss did not
// print are 0.
type TCPInfo struct {
	State        string // ss's name: ESTAB, LISTEN, TIME-WAIT, ...; "" when a filter selected one state (ss omits the column then)
	RecvQ, SendQ uint64 // for LISTEN: accept queue length and its maximum (backlog)
	Local, Peer  netip.AddrPort
	Iface        string // device the socket is bound to (the "%iface" after the local address)
	Inode        uint64 // ino:; 0 for sockets not yet accept()ed or in TIME-WAIT
	Cookie       string // sk: (hex socket cookie)
	UID          uint32 // uid: (ss prints it only when non-zero)

	RTT, RTTVar   uint64 // µs (ss prints ms with decimals)
	RTO           uint64 // ms
	MSS           uint32
	Cwnd          uint32
	Ssthresh      uint32 // 0 when ss does not print it: still the initial "infinite" value
	BytesSent     uint64 // includes retransmitted bytes
	BytesRetrans  uint64
	BytesAcked    uint64
	BytesReceived uint64
	Retrans       uint32 // X of retrans:X/Y: currently unacknowledged retransmits
	RetransTotal  uint32 // Y of retrans:X/Y: tcpi_total_retrans
	SndWnd        uint32 // the peer's advertised window, scaled
	RcvSpace      uint32
	RcvSsthresh   uint32
	Skmem         Skmem

	// Fields has every "key:value" token of the line, raw (e.g.
	// "rtt": "0.114/0.138", "bbr": "(bw:...)", "lastsnd": "896").
	// Tokens without a colon (ts, sack, cubic, app_limited) map to "".
	Fields map[string]string
}

// Skmem is ss's skmem:(r,rb,t,tb,f,w,o,bl,d).
type Skmem struct {
	RmemAlloc  uint64 // r
	Rcvbuf     uint64 // rb
	WmemAlloc  uint64 // t
	Sndbuf     uint64 // tb
	FwdAlloc   uint64 // f
	WmemQueued uint64 // w
	Optmem     uint64 // o
	Backlog    uint64 // bl
	Drops      uint64 // d
}

// SS runs `ss -tinmHe` inside ns (nil: the test's own namespace) and parses
// every socket. Extra arguments are appended (e.g. "-a", or a filter:
// "state", "listening", "sport", "=", ":80").
func SS(t testing.TB, ns *nstest.NS, extra ...string) []TCPInfo {
	t.Helper()
	nstest.RequireTools(t, "ss")
	cmd := ns.Cmd("ss", append([]string{"-tinmHe"}, extra...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.Bytes())
	}
	infos, err := ParseSS(stdout.String())
	if err != nil {
		t.Fatalf("parse ss output: %v\n%s", err, stdout.Bytes())
	}
	return infos
}

// Lookup returns the socket with this local and peer address.
func Lookup(infos []TCPInfo, local, peer netip.AddrPort) (TCPInfo, bool) {
	for _, in := range infos {
		if in.Local == local && in.Peer == peer {
			return in, true
		}
	}
	return TCPInfo{}, false
}

// ParseSS parses the output of `ss -tin[m][e]H`: one line per socket
// starting with the state, continued by lines that start with white space.
func ParseSS(out string) ([]TCPInfo, error) {
	var infos []TCPInfo
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(infos) == 0 {
				return nil, fmt.Errorf("continuation line before any socket: %q", line)
			}
			if err := infos[len(infos)-1].parseInfo(line); err != nil {
				return nil, err
			}
			continue
		}
		in, err := parseHead(line)
		if err != nil {
			return nil, err
		}
		infos = append(infos, in)
	}
	return infos, sc.Err()
}

func parseHead(line string) (TCPInfo, error) {
	f := strings.Fields(line)
	in := TCPInfo{Fields: map[string]string{}}
	// When the filter selects a single state, ss leaves the State column
	// out: the line then starts with Recv-Q.
	if _, err := strconv.ParseUint(f[0], 10, 64); err != nil {
		in.State, f = f[0], f[1:]
	}
	if len(f) < 4 {
		return TCPInfo{}, fmt.Errorf("short socket line %q", line)
	}
	var err error
	if in.RecvQ, err = strconv.ParseUint(f[0], 10, 64); err != nil {
		return in, fmt.Errorf("Recv-Q in %q: %v", line, err)
	}
	if in.SendQ, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return in, fmt.Errorf("Send-Q in %q: %v", line, err)
	}
	if in.Local, in.Iface, err = ParseSSAddr(f[2]); err != nil {
		return in, fmt.Errorf("local address in %q: %v", line, err)
	}
	if in.Peer, _, err = ParseSSAddr(f[3]); err != nil {
		return in, fmt.Errorf("peer address in %q: %v", line, err)
	}
	for _, tok := range f[4:] {
		k, v, _ := strings.Cut(tok, ":")
		in.Fields[k] = v
		switch k {
		case "ino":
			in.Inode, err = strconv.ParseUint(v, 10, 64)
		case "sk":
			in.Cookie = v
		case "uid":
			var u uint64
			u, err = strconv.ParseUint(v, 10, 32)
			in.UID = uint32(u)
		}
		if err != nil {
			return in, fmt.Errorf("%s in %q: %v", tok, line, err)
		}
	}
	return in, nil
}

// ParseSSAddr parses an address as ss prints it: "1.2.3.4:80",
// "[fd00::1]:80", "[fe80::1]%eth0:80", "1.2.3.4%eth0:80", "*:80", "[::]:*",
// "0.0.0.0:*". "*" as address is the IPv6 wildcard (dual-stack socket), as
// port it is 0. The "%iface" suffix is returned separately.
func ParseSSAddr(s string) (netip.AddrPort, string, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return netip.AddrPort{}, "", fmt.Errorf("no port in %q", s)
	}
	host, portStr := s[:i], s[i+1:]
	var port uint64
	if portStr != "*" {
		var err error
		if port, err = strconv.ParseUint(portStr, 10, 16); err != nil {
			return netip.AddrPort{}, "", fmt.Errorf("port in %q: %v", s, err)
		}
	}
	var iface string
	if j := strings.LastIndexByte(host, '%'); j >= 0 && j > strings.LastIndexByte(host, ']') {
		host, iface = host[:j], host[j+1:]
	}
	if host == "*" {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(port)), iface, nil
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, "", fmt.Errorf("address in %q: %v", s, err)
	}
	return netip.AddrPortFrom(addr, uint16(port)), iface, nil
}

// parseInfo reads the TCP info line (the one starting with a tab).
func (in *TCPInfo) parseInfo(line string) error {
	f := strings.Fields(line)
	for i := 0; i < len(f); i++ {
		k, v, hasColon := strings.Cut(f[i], ":")
		// "send 1bps", "pacing_rate 1bps", "delivery_rate 1bps": value in
		// the next token.
		if !hasColon && i+1 < len(f) && (k == "send" || k == "pacing_rate" || k == "delivery_rate") {
			i++
			v = f[i]
		}
		in.Fields[k] = v
		if err := in.setField(k, v); err != nil {
			return fmt.Errorf("%s:%s in %q: %v", k, v, line, err)
		}
	}
	return nil
}

func (in *TCPInfo) setField(k, v string) error {
	u64 := func(dst *uint64) (err error) { *dst, err = strconv.ParseUint(v, 10, 64); return }
	u32 := func(dst *uint32) error {
		x, err := strconv.ParseUint(v, 10, 32)
		*dst = uint32(x)
		return err
	}
	switch k {
	case "skmem":
		return in.Skmem.parse(v)
	case "rtt":
		a, b, ok := strings.Cut(v, "/")
		if !ok {
			return fmt.Errorf("want rtt:X/Y")
		}
		var err error
		if in.RTT, err = msToMicros(a); err != nil {
			return err
		}
		in.RTTVar, err = msToMicros(b)
		return err
	case "retrans":
		a, b, ok := strings.Cut(v, "/")
		if !ok {
			return fmt.Errorf("want retrans:X/Y")
		}
		x, err := strconv.ParseUint(a, 10, 32)
		if err != nil {
			return err
		}
		y, err := strconv.ParseUint(b, 10, 32)
		in.Retrans, in.RetransTotal = uint32(x), uint32(y)
		return err
	case "rto":
		// ss prints rto in ms, possibly with decimals.
		x, err := strconv.ParseFloat(v, 64)
		in.RTO = uint64(math.Round(x))
		return err
	case "mss":
		return u32(&in.MSS)
	case "cwnd":
		return u32(&in.Cwnd)
	case "ssthresh":
		return u32(&in.Ssthresh)
	case "bytes_sent":
		return u64(&in.BytesSent)
	case "bytes_retrans":
		return u64(&in.BytesRetrans)
	case "bytes_acked":
		return u64(&in.BytesAcked)
	case "bytes_received":
		return u64(&in.BytesReceived)
	case "snd_wnd":
		return u32(&in.SndWnd)
	case "rcv_space":
		return u32(&in.RcvSpace)
	case "rcv_ssthresh":
		return u32(&in.RcvSsthresh)
	}
	return nil
}

func msToMicros(s string) (uint64, error) {
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return uint64(math.Round(x * 1000)), nil
}

// parse reads "(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d0)".
func (m *Skmem) parse(v string) error {
	if !strings.HasPrefix(v, "(") || !strings.HasSuffix(v, ")") {
		return fmt.Errorf("want skmem:(...)")
	}
	for _, kv := range strings.Split(v[1:len(v)-1], ",") {
		j := strings.IndexAny(kv, "0123456789")
		if j <= 0 {
			return fmt.Errorf("bad skmem entry %q", kv)
		}
		x, err := strconv.ParseUint(kv[j:], 10, 64)
		if err != nil {
			return fmt.Errorf("skmem %q: %v", kv, err)
		}
		switch kv[:j] {
		case "r":
			m.RmemAlloc = x
		case "rb":
			m.Rcvbuf = x
		case "t":
			m.WmemAlloc = x
		case "tb":
			m.Sndbuf = x
		case "f":
			m.FwdAlloc = x
		case "w":
			m.WmemQueued = x
		case "o":
			m.Optmem = x
		case "bl":
			m.Backlog = x
		case "d":
			m.Drops = x
		}
	}
	return nil
}
