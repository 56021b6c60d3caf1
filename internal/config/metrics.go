package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// CheckMetricsAddr validates --metrics-addr (HOST:PORT): the server has no
// authentication, so HOST must be a loopback address (127.0.0.0/8, ::1,
// localhost) unless allowRemote (--metrics-allow-remote). An empty HOST
// means every address: remote too.
func CheckMetricsAddr(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %q is not HOST:PORT (e.g. 127.0.0.1:9433)", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("--metrics-addr %q: %q is not a port", addr, port)
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Unmap().IsLoopback() {
		if host == "" {
			return fmt.Errorf("--metrics-addr %s listens on every address and the metrics have no authentication: give a loopback HOST (127.0.0.1:%s) or add --metrics-allow-remote", addr, port)
		}
		return fmt.Errorf("--metrics-addr %s: %s is not a loopback address and the metrics have no authentication (add --metrics-allow-remote to serve it)", addr, host)
	}
	return nil
}
