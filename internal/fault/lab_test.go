package fault

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/tcpconn"
)

func requireRoot(t testing.TB) {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "nft")
}

// lab is two fresh namespaces A (client, sender) and B (server, receiver)
// joined by a veth pair (nstest.Pair), as the injector sees them: by name.
type lab struct {
	*nstest.Pair
	A, B string // the namespaces' names (Pair.A, Pair.B are their *nstest.NS)
}

func newLab(t *testing.T) *lab {
	t.Helper()
	requireRoot(t)
	p := nstest.NewPair(t)
	return &lab{Pair: p, A: p.A.Name, B: p.B.Name}
}

// tcpPair is a connection from A (client) to B (server).
type tcpPair struct {
	*tcpconn.Conn
	flow Flow // client -> server
}

func (l *lab) connect(t *testing.T, v6 bool) *tcpPair {
	t.Helper()
	c := tcpconn.Dial(t, l.Pair, v6, 0, 0)
	return &tcpPair{Conn: c, flow: Flow{Src: c.ClientAddr, Dst: c.ServerAddr}}
}

// onSubnet is a (host byte) on a's /24.
func onSubnet(a netip.Addr, host byte) netip.Addr {
	b := a.As4()
	b[3] = host
	return netip.AddrFrom4(b)
}

func counters(t *testing.T, ns string) Counters {
	t.Helper()
	c, err := ReadCounters(ns)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitCounter polls until counter name in ns has grown by want since
// before (or 2 s passed) and returns the growth.
func waitCounter(t *testing.T, ns string, before Counters, name string, want int64) int64 {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		d := counters(t, ns)[name] - before[name]
		if d >= want || time.Now().After(deadline) {
			return d
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nftTables lists the inet/ip/ip6 tables in ns.
func nftTables(t *testing.T, ns string) string {
	t.Helper()
	out, err := runNft(ns, "", "list", "tables")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}
