package fault

import (
	"fmt"
	"net/netip"
	"strings"
)

// Flow is one direction of a TCP connection: Src sends, Dst receives.
type Flow struct {
	Src, Dst netip.AddrPort
}

// ParseFlow parses "SRC_IP:SRC_PORT,DST_IP:DST_PORT". IPv6 addresses are
// written in brackets: "[fd00::1]:4000,[fd00::2]:80".
func ParseFlow(s string) (Flow, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 2 {
		return Flow{}, usagef("bad flow %q: want SRC_IP:SRC_PORT,DST_IP:DST_PORT", s)
	}
	var ap [2]netip.AddrPort
	for i, p := range parts {
		a, err := netip.ParseAddrPort(strings.TrimSpace(p))
		if err != nil {
			return Flow{}, usagef("bad flow %q: %q is not IP:PORT ([IPv6]:PORT for IPv6)", s, p)
		}
		ap[i] = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	f := Flow{Src: ap[0], Dst: ap[1]}
	if err := f.Validate(); err != nil {
		return Flow{}, err
	}
	return f, nil
}

// Validate checks that both ends are unicast addresses of the same family
// with non-zero ports.
func (f Flow) Validate() error {
	for _, ap := range []netip.AddrPort{f.Src, f.Dst} {
		a := ap.Addr()
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() ||
			(a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
			return usagef("bad flow %s: %v is not a unicast address", f, a)
		}
		if ap.Port() == 0 {
			return usagef("bad flow %s: port 0", f)
		}
		if a.Zone() != "" {
			return usagef("bad flow %s: zoned addresses are not supported", f)
		}
	}
	if f.Src.Addr().Is4() != f.Dst.Addr().Is4() {
		return usagef("bad flow %s: source and destination are of different IP families", f)
	}
	if f.Src == f.Dst {
		return usagef("bad flow %s: source equals destination", f)
	}
	return nil
}

// Is6 reports whether the flow is IPv6.
func (f Flow) Is6() bool { return f.Src.Addr().Is6() }

// Reverse returns the other direction of the connection.
func (f Flow) Reverse() Flow { return Flow{Src: f.Dst, Dst: f.Src} }

func (f Flow) String() string { return fmt.Sprintf("%s,%s", f.Src, f.Dst) }
