package udp

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// TestTickAndFinish: the user-space side of the flow table, on the real
// (loaded, not attached) map: a new flow makes a record, an unchanged one
// none, a changed one its deltas; a flow idle for FlowIdle makes its last
// record (idle) and leaves the map; a flow without owner takes the one of
// its socket's cookie; Finish makes an exit record for every flow left; a
// flow replaced under the same key (another first_ns) starts from zero.
func TestTickAndFinish(t *testing.T) {
	nstest.RequireRoot(t)
	cfg := &config.Config{}
	cp, err := conn.Load(conn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	c := New(cfg)
	if err := c.Load(cfg, cp.SharedMaps()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	flows, owners := c.Coll.Maps["nw_udp_flows"], c.Coll.Maps["nw_udp_owner"]

	const sec = uint64(1e9)
	now := 1000 * sec
	busy := udpNwUdpKey{Cookie: 1, Rport: 53, Family: unix.AF_INET, Raddr: [16]uint8{10, 0, 0, 2}}
	quiet := udpNwUdpKey{Cookie: 2, Rport: 123, Family: unix.AF_INET, Raddr: [16]uint8{10, 0, 0, 3}}
	fb := udpNwUdpFlow{Sk: 0xa, FirstNs: now - 5*sec, LastNs: now - sec, RxDgrams: 2, RxBytes: 20, Lport: 5000}
	fq := udpNwUdpFlow{Sk: 0xb, FirstNs: now - 100*sec, LastNs: now - 30*sec, TxDgrams: 1, TxBytes: 48, Lport: 6000}
	if err := flows.Put(&busy, &fb); err != nil {
		t.Fatal(err)
	}
	if err := flows.Put(&quiet, &fq); err != nil {
		t.Fatal(err)
	}
	owner := udpNwOwner{Pid: 77}
	copy(owner.Comm[:], []int8{'n', 't', 'p'})
	if err := owners.Put(uint64(2), &owner); err != nil {
		t.Fatal(err)
	}
	type rec struct {
		sk  uint64
		u   event.UDPInfo
		pid uint32
	}
	var got []rec
	emit := func(ev *event.Event) { got = append(got, rec{ev.Conn.Sock, ev.Ext.UDP, ev.Conn.Pid}) }
	bySk := func(sk uint64) []rec {
		var out []rec
		for _, r := range got {
			if r.sk == sk {
				out = append(out, r)
			}
		}
		return out
	}

	c.Tick(now, emit)
	if len(got) != 2 {
		t.Fatalf("first read: %d records, want 2 (both flows are new)", len(got))
	}
	if q := bySk(0xb); len(q) != 1 || q[0].pid != 77 || q[0].u.TxDgrams != 1 || q[0].u.Why != event.UDPInterval {
		t.Errorf("quiet flow, owner from its cookie: %+v", q)
	}

	// 40 s later: the busy flow got a datagram, the quiet one is idle
	got = nil
	fb.RxDgrams, fb.RxBytes, fb.LastNs = 3, 31, now+40*sec
	if err := flows.Put(&busy, &fb); err != nil {
		t.Fatal(err)
	}
	now += 40 * sec
	c.Tick(now, emit)
	if b := bySk(0xa); len(b) != 1 || b[0].u.RxDgrams != 1 || b[0].u.RxBytes != 11 || b[0].u.RxDgramsTotal != 3 {
		t.Errorf("busy flow delta: %+v", b)
	}
	if q := bySk(0xb); len(q) != 1 || q[0].u.Why != event.UDPIdle || q[0].u.TxDgrams != 0 || q[0].u.TxDgramsTotal != 1 {
		t.Errorf("idle flow's last record: %+v", q)
	}
	var f udpNwUdpFlow
	if flows.Lookup(&quiet, &f) == nil {
		t.Error("the idle flow is still in the map")
	}

	// unchanged: nothing; then a new flow under the busy key (its socket
	// cookie never comes back, but the table must not trust that)
	got = nil
	c.Tick(now+sec, emit)
	if len(got) != 0 {
		t.Errorf("unchanged flows made records: %+v", got)
	}
	fb2 := udpNwUdpFlow{Sk: 0xa, FirstNs: now + sec, LastNs: now + sec, TxDgrams: 1, TxBytes: 10}
	if err := flows.Put(&busy, &fb2); err != nil {
		t.Fatal(err)
	}
	c.Tick(now+2*sec, emit)
	if b := bySk(0xa); len(b) != 1 || b[0].u.TxDgrams != 1 || b[0].u.RxDgrams != 0 || b[0].u.RxDgramsTotal != 0 {
		t.Errorf("a new flow under an old key: %+v", b)
	}

	got = nil
	c.Finish(now+3*sec, emit)
	if len(got) != 1 || got[0].u.Why != event.UDPExit || got[0].u.TxDgramsTotal != 1 || got[0].u.TxDgrams != 0 {
		t.Errorf("exit records: %+v", got)
	}
	if n := c.Counters()["udp_flows_idle_removed"]; n != 1 {
		t.Errorf("udp_flows_idle_removed = %d, want 1", n)
	}
}
