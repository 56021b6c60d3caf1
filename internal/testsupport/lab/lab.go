// Package lab is the bench the end-to-end tests of the concerns share: TCP
// connections from namespace A (client) to B (server) of an nstest.Pair,
// made by the test process itself, the traffic to put on them, and the
// questions a test asks a netwatcher run (nwtest) about them.
//
// Faults are injected with internal/fault (Conn.Flow names the direction),
// so internal/fault's own tests cannot use this package: they use its
// connections and traffic from package tcpconn, which lab builds on.
package lab

import (
	"context"
	"io"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/tcpconn"
)

// Wait is how long a test waits for netwatcher to report something.
const Wait = 10 * time.Second

// Conn is a TCP connection from namespace A (client) to B (server), with
// both sockets created inside their namespaces by this test process.
type Conn struct {
	*tcpconn.Conn
	clientNS string // namespace A's name, where the injector runs
}

// Dial connects A -> B of pair over IPv4 or IPv6, to server port port and
// from client port cliPort (0: any, for either). It fails the test if the
// connection cannot be made; cleanup closes both sockets.
func Dial(t testing.TB, pair *nstest.Pair, v6 bool, port, cliPort uint16) *Conn {
	t.Helper()
	return &Conn{Conn: tcpconn.Dial(t, pair, v6, port, cliPort), clientNS: pair.A.Name}
}

// Flow is the client -> server direction, for the fault injector.
func (c *Conn) Flow() fault.Flow { return fault.Flow{Src: c.ClientAddr, Dst: c.ServerAddr} }

// Injection is the fault injector's options for count segments into c's
// client -> server flow (mode: OutOfWindow only), run from the client's
// namespace; the injector learns the flow from a round trip it asks for
// (an error there fails t), and logs to t.
func (c *Conn) Injection(t testing.TB, count int, mode string) fault.InjectOptions {
	return fault.InjectOptions{Netns: c.clientNS, Flow: c.Flow(), Count: count, Mode: mode, Out: Log(t),
		Ready: func() {
			if err := c.RoundTrip(100, 2); err != nil {
				t.Error(err)
			}
		}}
}

// SockOf waits (up to Wait) for run's connection record of the socket with
// this local and remote address in namespace ns and returns its sock field.
func SockOf(t testing.TB, run *nwtest.Run, ns *nstest.NS, local, remote netip.AddrPort) string {
	t.Helper()
	inode := float64(ns.Inode(t))
	e := run.WaitFor(Wait, "connection "+local.String(), func(e nwtest.Ev) bool {
		return e.Str("type") == "connection" && e.Num("netns") == inode &&
			e.Str("src") == local.String() && e.Str("dst") == remote.String()
	})
	return e.Str("sock")
}

// RandPort is a port for a test's server or client. Each test traces only
// its own ports (-s): netwatcher sees the whole host, and the traffic of
// tests running in parallel must not flood its ring.
func RandPort() uint16 { return uint16(20000 + rand.IntN(20000)) }

// CheckNoLoss fails the test if run reported lost events: exact counts of
// records cannot be checked then. Call it after Stop.
func CheckNoLoss(t testing.TB, run *nwtest.Run) {
	t.Helper()
	if s, lost := LostEvents(run); lost {
		t.Errorf("netwatcher lost events: %v", s)
	}
}

// LostEvents reports whether run's final stats record counts lost events,
// and returns that record. Call it after Stop.
func LostEvents(run *nwtest.Run) (nwtest.Ev, bool) {
	for _, e := range run.Find(func(e nwtest.Ev) bool { return e.Str("type") == "stats" }) {
		if e.Num("lost_ring_full") != 0 || e.Num("lost_queue_full") != 0 {
			return e, true
		}
	}
	return nil, false
}

// Ctx is a context for one fault injection: cancelled after 30 s, or when
// the test ends.
func Ctx(t testing.TB) context.Context { return tcpconn.Ctx(t) }

// Log is a writer into the test's log, one t.Log per write (the Out of the
// fault injector's options).
func Log(t testing.TB) io.Writer { return tcpconn.Log(t) }

// Family names an address family for subtests: "v4" or "v6".
func Family(v6 bool) string { return tcpconn.Family(v6) }
