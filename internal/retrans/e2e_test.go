package retrans_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/peer"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// observed is what netwatcher reported about one sending socket.
type observed struct {
	segs, fast, timeout float64 // from the close record
	seen                float64 // its retrans_seen: the segments the hook saw
	segEvents           int     // retrans_segment records
	fastEps, rtoEps     int     // retrans (episode) records by kind
}

// closeAndCollect closes the connection and gathers netwatcher's records
// about the client (sending) socket: its close record, and the records of
// its sock between its open and its close (a socket address is reused by
// later sockets).
func closeAndCollect(t *testing.T, r *nwtest.Run, c *lab.Conn, sock string) observed {
	t.Helper()
	c.Client.Close()
	c.Server.Close()
	is := func(what string) func(e nwtest.Ev) bool {
		return func(e nwtest.Ev) bool {
			return e.Str("type") == "connection" && e.Str("event") == what && e.Str("sock") == sock &&
				e.Str("src") == c.ClientAddr.String() && e.Str("dst") == c.ServerAddr.String()
		}
	}
	cl := r.WaitFor(lab.Wait, "close of "+sock, is("close"))
	op := r.WaitFor(lab.Wait, "open of "+sock, is("open"))
	from, to := op.Num("ts_ns"), cl.Num("ts_ns")
	for _, k := range []string{"retrans_segs", "retrans_seen", "fast_retrans", "timeout_retrans"} {
		if !cl.Has(k) {
			t.Fatalf("close record without %s: %v", k, cl)
		}
	}
	o := observed{segs: cl.Num("retrans_segs"), seen: cl.Num("retrans_seen"), fast: cl.Num("fast_retrans"), timeout: cl.Num("timeout_retrans")}
	for _, e := range r.Events() {
		if e.Str("sock") != sock || e.Num("ts_ns") < from || e.Num("ts_ns") > to {
			continue
		}
		switch e.Str("type") {
		case "retrans_segment":
			o.segEvents++
		case "retrans":
			switch e.Str("kind") {
			case "fast":
				o.fastEps++
			case "timeout":
				o.rtoEps++
			}
		}
	}
	return o
}

// bulkRun is one bulk transfer from A to B of a fresh pair with a fault
// injected into it, traced by netwatcher.
type bulkRun struct {
	r             *nwtest.Run // stopped
	o             observed    // netwatcher's records of the sending socket
	sent          int64       // bytes
	before, after map[string]uint64
	// what the BPF witness saw retransmitted in the sender's namespace
	// (this connection is the only sender there): what the kernel handed
	// to BPF programs
	wit witness.Counts
}

// noProgram is the sender's TcpRetransSegs growth less what the witness
// saw: the retransmitted segments no BPF program ran for (README, "Events
// no BPF program sees"; 0 in most runs), the only allowance between -r's
// hook and the kernel.
func (b *bulkRun) noProgram(t *testing.T) uint64 {
	t.Helper()
	return witness.Shortfall(t, "retransmitted segments", b.delta("TcpRetransSegs"), b.wit.RtxSegs)
}

// checkSeen: the segments -r's hook saw (the close record's retrans_seen)
// are exactly those the witness saw, less skipped ($NW_RTX_SKIP).
func (b *bulkRun) checkSeen(t *testing.T, skipped float64) {
	t.Helper()
	if b.o.seen != float64(b.wit.RtxSegs)-skipped {
		t.Errorf("retrans_seen %v, the BPF witness saw %d retransmitted segments (hook made to skip %v)", b.o.seen, b.wit.RtxSegs, skipped)
	}
}

// delta is the growth of the sender namespace's counter key.
func (b *bulkRun) delta(key string) uint64 { return oracle.Delta(b.before, b.after, key) }

// faultedBulk sends from A to B of a fresh pair (v6: over IPv6; noOffload:
// sender TSO/GSO off) while netwatcher traces the sending socket only (-r,
// -s its port: the packet records of the whole host would flood the ring).
// 200 ms in (cwnd grown), inject injects the fault into the connection; the
// transfer then goes on for tail before it ends and the connection closes.
func faultedBulk(t *testing.T, v6, noOffload bool, tail time.Duration, inject func(p *nstest.Pair, c *lab.Conn)) *bulkRun {
	t.Helper()
	cliPort := lab.RandPort()
	b := &bulkRun{r: nwtest.Start(t, "-r", "-s", strconv.Itoa(int(cliPort)))}
	p := nstest.NewPair(t)
	if noOffload {
		p.NoSegmentOffload(t, true)
	}
	wit := witness.Start(t, witness.Retrans, uint32(p.A.Inode(t)))
	b.before = oracle.Nstat(t, p.A)
	c := lab.Dial(t, p, v6, 0, cliPort)
	sock := lab.SockOf(t, b.r, p.A, c.ClientAddr, c.ServerAddr)
	finish := c.Bulk(t)
	time.Sleep(200 * time.Millisecond)
	inject(p, c)
	time.Sleep(tail)
	b.sent = finish()
	b.o = closeAndCollect(t, b.r, c, sock)
	b.r.Stop()
	b.after = oracle.Nstat(t, p.A)
	b.wit = wit.Counts(t)
	b.wit.Usable(t)
	t.Logf("BPF witness: %d retransmissions, %d segments (sender TcpRetransSegs +%d)", b.wit.Rtx, b.wit.RtxSegs, b.delta("TcpRetransSegs"))
	return b
}

// (c): loss at the receiver's ingress (1 in 5 packets, sender TSO/GSO off)
// -> the retransmitted segments netwatcher counts equal the sender's
// TcpRetransSegs growth, and the fast-recovery episodes equal the
// sender's TcpExtTCPSackRecovery + TcpExtTCPRenoRecovery growth.
func TestLossRetransmits(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "nft")
	for _, v6 := range []bool{false, true} {
		t.Run(lab.Family(v6), func(t *testing.T) {
			// Losses after cwnd has grown are repaired by fast retransmits.
			var res *fault.DropResult
			b := faultedBulk(t, v6, true, 200*time.Millisecond, func(p *nstest.Pair, c *lab.Conn) {
				var err error
				res, err = fault.Drop(lab.Ctx(t), fault.DropOptions{Netns: p.B.Name, Flow: c.Flow(), Every: 5,
					Duration: 800 * time.Millisecond, Out: lab.Log(t)})
				if err != nil {
					t.Fatal(err)
				}
			})
			r, o, sent := b.r, b.o, b.sent
			mibSegs := b.delta("TcpRetransSegs")
			mibRec := b.delta("TcpExtTCPSackRecovery") + b.delta("TcpExtTCPRenoRecovery")
			t.Logf("sent %d bytes, nft dropped %d packets; netwatcher: retrans_segs=%v (%d segment records) fast_retrans=%v (%d episode records) timeout_retrans=%v (%d); sender: TcpRetransSegs +%d, TCPSackRecovery+TCPRenoRecovery +%d, TCPFastRetrans +%d, TCPTimeouts +%d",
				sent, res.Dropped, o.segs, o.segEvents, o.fast, o.fastEps, o.timeout, o.rtoEps, mibSegs, mibRec,
				b.delta("TcpExtTCPFastRetrans"), b.delta("TcpExtTCPTimeouts"))
			if res.Dropped == 0 || mibSegs == 0 {
				t.Fatalf("no loss induced (dropped %d, TcpRetransSegs +%d)", res.Dropped, mibSegs)
			}
			// The counters live in the kernel's connection table, not in
			// ring records. Measured: equal to the oracle when the tests
			// run alone; with other packages' tests loading both CPUs,
			// sometimes a few percent short (cause not found yet), never
			// above.
			checkSegs(t, b)
			checkNear(t, "fast_retrans", "TCPSackRecovery+TCPRenoRecovery", o.fast, mibRec)
			checkRecords(t, r, o)
		})
	}
}

// checkRecords compares the per-segment and per-episode records with the
// counters, unless netwatcher reported lost events (then it logs why not).
func checkRecords(t *testing.T, r *nwtest.Run, o observed) {
	t.Helper()
	if s, lost := lab.LostEvents(r); lost {
		t.Logf("records not compared with the counters: netwatcher lost events under this load: %v", s)
		return
	}
	// TCP always builds GSO skbs; with TSO/GSO off on the device they are
	// split only below TCP: a record may carry several segments.
	if o.segEvents < 1 || o.segEvents > int(o.segs) {
		t.Errorf("%d retrans_segment records for retrans_segs %v", o.segEvents, o.segs)
	}
	if o.fastEps != int(o.fast) || o.rtoEps != int(o.timeout) {
		t.Errorf("episode records fast %d timeout %d, counters %v %v", o.fastEps, o.rtoEps, o.fast, o.timeout)
	}
}

// (d): blackouts of 150 ms -> RTO episodes (timeout_retrans > 0, at most
// one per RTO the sender counted in TcpExtTCPTimeouts), and the segment
// count still equals TcpRetransSegs (TSO on: an skb may carry several).
func TestBlackoutTimeouts(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "nft")
	var res *fault.BlackoutResult
	// Sending goes on until an RTO after the last blackout had time to fire.
	b := faultedBulk(t, false, false, 500*time.Millisecond, func(p *nstest.Pair, c *lab.Conn) {
		var err error
		res, err = fault.Blackout(lab.Ctx(t), fault.BlackoutOptions{Netns: p.B.Name, Flow: c.Flow(), Length: 150 * time.Millisecond,
			Repeat: 2, Gap: 300 * time.Millisecond, Out: lab.Log(t)})
		if err != nil {
			t.Fatal(err)
		}
	})
	r, o, sent := b.r, b.o, b.sent
	rtos := b.delta("TcpExtTCPTimeouts")
	mibSegs := b.delta("TcpRetransSegs")
	t.Logf("sent %d bytes, blackouts dropped %d packets; netwatcher: timeout_retrans=%v (%d episode records) fast_retrans=%v retrans_segs=%v (%d records); sender: TCPTimeouts +%d, TcpRetransSegs +%d",
		sent, res.Dropped, o.timeout, o.rtoEps, o.fast, o.segs, o.segEvents, rtos, mibSegs)
	if rtos < 1 {
		t.Fatalf("sender TcpExtTCPTimeouts +%d: the blackout caused no RTO", rtos)
	}
	if o.timeout < 1 || uint64(o.timeout) > rtos {
		t.Errorf("timeout_retrans %v, want 1..TCPTimeouts (%d)", o.timeout, rtos)
	}
	checkRecords(t, r, o)
	checkSegs(t, b)
}

// (e): the server's address disappears for 2 s in the middle of a
// request/response exchange on it (loopback of a namespace of the test's
// own; the workload the kernel matrix used to run): the retransmit timers
// keep firing, but every attempt stops at the route lookup, before the
// kernel counts anything (TCPTimeouts grows, TcpRetransSegs does not).
// Since 6.14 the tracepoint fires for those attempts too (err
// -EHOSTUNREACH); they are not retransmissions: the segments netwatcher
// reports in the namespace equal its TcpRetransSegs growth. Measured on
// 6.18 before they were skipped: 5 segments reported, TcpRetransSegs +1.
func TestRouteGoneNotCounted(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NewNS(t)
	addr := fmt.Sprintf("10.%d.%d.9", rand.IntN(250), rand.IntN(250))
	ns.Run(t, "ip", "addr", "add", addr+"/32", "dev", "lo")
	port := lab.RandPort()
	r := nwtest.Start(t, "-r", "--no-packets") // both ends: no port filter
	wit := witness.Start(t, witness.Retrans, uint32(ns.Inode(t)))
	peer.Serve(t, ns, "-l", net.JoinHostPort(addr, strconv.Itoa(int(port))), "--echo")
	before := oracle.Nstat(t, ns)
	rr := peer.Start(t, ns, "rr", "-r", net.JoinHostPort(addr, strconv.Itoa(int(port))), "--duration", "6s")
	time.Sleep(time.Second)
	ns.Run(t, "ip", "addr", "del", addr+"/32", "dev", "lo")
	time.Sleep(2 * time.Second)
	ns.Run(t, "ip", "addr", "add", addr+"/32", "dev", "lo")
	if _, err := rr.Wait(lab.Wait); err != nil {
		t.Fatalf("rr: %v: %s", err, rr.Stderr())
	}
	after := oracle.Nstat(t, ns)
	time.Sleep(300 * time.Millisecond) // records are out 20-100 ms after the fact
	r.Stop()
	netns := float64(ns.Inode(t))
	var segs float64
	n := 0
	for _, e := range r.Events() {
		if e.Str("type") == "retrans_segment" && e.Num("netns") == netns {
			segs += e.Num("segs")
			n++
		}
	}
	mib := oracle.Delta(before, after, "TcpRetransSegs")
	rtos := oracle.Delta(before, after, "TcpExtTCPTimeouts")
	wc := wit.Counts(t)
	t.Logf("netwatcher: %d retrans_segment records, %v segments; namespace: TcpRetransSegs +%d, TCPTimeouts +%d, TCPRetransFail +%d; BPF witness: %d segments",
		n, segs, mib, rtos, oracle.Delta(before, after, "TcpExtTCPRetransFail"), wc.RtxSegs)
	if rtos < 2 {
		t.Fatalf("TCPTimeouts +%d: the address gap made no retransmit timer fire twice", rtos)
	}
	// The witness skips the attempts the kernel did not count, as -r
	// does; the kernel's count less the witness's is what no BPF program
	// saw (README, "Events no BPF program sees").
	wc.Usable(t)
	gap := witness.Shortfall(t, "retransmitted segments", mib, wc.RtxSegs)
	if segs != float64(wc.RtxSegs) {
		t.Errorf("netwatcher reported %v retransmitted segments, the BPF witness saw %d (the kernel counted %d)", segs, wc.RtxSegs, mib)
	}
	witness.Note(t, gap, "retransmitted segments")
}

// checkSegs: the segments -r's hook saw (retrans_seen) are exactly those
// the BPF witness saw; retrans_segs (the socket's total_retrans, else the
// hook's count) equals the sender namespace's TcpRetransSegs delta (this
// connection is the only one there), less at most what no BPF program ran
// for (the witness's shortfall: README, "Events no BPF program sees").
func checkSegs(t *testing.T, b *bulkRun) {
	t.Helper()
	got, oracle, gap := b.o.segs, b.delta("TcpRetransSegs"), b.noProgram(t)
	b.checkSeen(t, 0)
	if got < 1 || got > float64(oracle) || float64(oracle)-got > float64(gap) {
		t.Errorf("retrans_segs %v, sender TcpRetransSegs +%d (no BPF program saw %d)", got, oracle, gap)
	}
	witness.Note(t, gap, "retransmitted segments")
}

// checkNear wants got > 0, got <= oracle and got >= 85% of oracle; it
// logs when they differ at all.
func checkNear(t *testing.T, name, oracleName string, got float64, oracle uint64) {
	t.Helper()
	switch {
	case got < 1 || uint64(got) > oracle || got < 0.85*float64(oracle):
		t.Errorf("%s %v, sender %s +%d", name, got, oracleName, oracle)
	case uint64(got) != oracle:
		t.Logf("NOTE: %s %v, sender %s +%d: %.1f%% short", name, got, oracleName, oracle, 100*(1-got/float64(oracle)))
	}
}

// TestEpisodesFromRetransmits: kernels without the tcp_cong_state_set
// tracepoint (Debian 11's 5.10) count episodes at retransmit time from
// icsk_ca_state and high_seq. Forced here, the same oracles must hold.
func TestEpisodesFromRetransmits(t *testing.T) {
	nstest.RequireRoot(t)
	t.Setenv("NW_CONG_FROM_RTX", "1")
	t.Run("loss", TestLossRetransmits)
	t.Run("blackout", TestBlackoutTimeouts)
}
