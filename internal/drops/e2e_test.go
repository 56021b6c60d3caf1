package drops_test

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/drops"
	"github.com/netwatcher/netwatcher/internal/fault"
	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
	"github.com/netwatcher/netwatcher/internal/testsupport/oracle"
	"github.com/netwatcher/netwatcher/internal/testsupport/witness"
)

// checkRecords checks that the error records of one injection carry the
// injected sequence numbers, the right addresses and the receiving
// namespace.
func checkRecords(t *testing.T, evs []nwtest.Ev, res *fault.InjectResult, reason string, ns *nstest.NS) {
	t.Helper()
	want := map[uint32]int{}
	for _, s := range res.Segments {
		want[s.Seq]++
	}
	inode := float64(ns.Inode(t))
	for _, e := range evs {
		if e.Str("reason") != reason {
			t.Errorf("reason %q, want %q: %v", e.Str("reason"), reason, e)
			continue
		}
		seq := uint32(e.Num("seq"))
		if want[seq] == 0 {
			t.Errorf("error record with seq %d: not an injected segment (%v)", seq, e)
		}
		want[seq]--
		if e.Str("src") != res.Flow.Src.String() || e.Str("dst") != res.Flow.Dst.String() {
			t.Errorf("record %s -> %s, want %s", e.Str("src"), e.Str("dst"), res.Flow)
		}
		if e.Num("netns") != inode {
			t.Errorf("record netns %v, want the receiver's %v", e.Num("netns"), inode)
		}
	}
}

// invalidSeq: the kernel's drop reasons netwatcher names "Invalid SEQ"
// (drops.go).
var invalidSeq = []string{"TCP_OLD_SEQUENCE", "TCP_INVALID_SEQUENCE", "TCP_INVALID_END_SEQUENCE", "TCP_OVERWINDOW"}

// (a), (e): N bad checksums -> the receiver's TcpInCsumErrors grew by N;
// the "Invalid checksum" records on the receiving socket equal the BPF
// witness's TCP_CSUM drops exactly, and N less those is what no BPF
// program was given (README, "Events no BPF program sees": 0 in most
// runs).
func TestBadChecksum(t *testing.T) {
	nstest.RequireRoot(t)
	port := lab.RandPort()
	r := nwtest.Start(t, "-e", "-s", strconv.Itoa(int(port)))
	const n = 5
	socks := map[string]int{}
	for _, v6 := range []bool{false, true} {
		t.Run(lab.Family(v6), func(t *testing.T) {
			p := nstest.NewPair(t)
			p.RxChecksumOff(t, true)
			c := lab.Dial(t, p, v6, port, 0)
			if err := c.RoundTrip(1000, 1); err != nil {
				t.Fatal(err)
			}
			srvSock := lab.SockOf(t, r, p.B, c.ServerAddr, c.ClientAddr)
			// the receiver's drops handed to BPF programs
			wit := witness.Start(t, witness.Drops, uint32(p.B.Inode(t)))
			before := oracle.Nstat(t, p.B)
			res, err := fault.BadCsum(lab.Ctx(t), c.Injection(t, n, ""))
			if err != nil {
				t.Fatal(err)
			}
			// after the injected segments on the same link
			if err := c.RoundTrip(3000, 3); err != nil {
				t.Fatalf("connection broken after bad checksums: %v", err)
			}
			after := oracle.Nstat(t, p.B)
			wc := wit.Counts(t)
			wc.Usable(t)
			seen := wc.Dropped("TCP_CSUM")
			evs := waitErrors(r, srvSock, int(seen))
			csum := oracle.Delta(before, after, "TcpInCsumErrors")
			t.Logf("injected %d; netwatcher: %d records on %s %v; receiver TcpInCsumErrors +%d; BPF witness: TCP_CSUM %d (drops %v)",
				len(res.Segments), len(evs), srvSock, reasons(evs), csum, seen, wc.Drops)
			if csum != n {
				t.Errorf("TcpInCsumErrors +%d, want %d (the oracle disagrees with the injection)", csum, n)
			}
			gap := witness.Shortfall(t, "TCP_CSUM drops", csum, seen)
			if uint64(len(evs)) != seen {
				t.Errorf("%d error records, the BPF witness saw %d TCP_CSUM drops (TcpInCsumErrors +%d)", len(evs), seen, csum)
			}
			witness.Note(t, gap, "bad-checksum segments")
			checkRecords(t, evs, res, drops.InvalidCsum, p.B)
			if e := errorsOf(r, "0x0"); len(e) != 0 {
				t.Errorf("%d unattributed error records: %v", len(e), e)
			}
			socks[srvSock] = len(evs)
		})
	}
	r.Stop()
	lab.CheckNoLoss(t, r)
	for sock, n := range socks {
		lines := errLogLines(r, sock)
		if len(lines) != n {
			t.Errorf("err.log: %d lines for %s, want %d: %q", len(lines), sock, n, lines)
		}
		for _, l := range lines {
			if !containsReason(l, drops.InvalidCsum) {
				t.Errorf("err.log line %q: want reason %q", l, drops.InvalidCsum)
			}
		}
	}
}

func containsReason(line, reason string) bool {
	// the reason, then the connection's number (err.log, README)
	return regexp.MustCompile(fmt.Sprintf(`,reason="%s",conn_id="[1-9][0-9]*"}$`, regexp.QuoteMeta(reason))).MatchString(line)
}

// (b), (e): M segments beyond the window and M long before it -> the
// receiver's counters grow by M each; the "Invalid SEQ" records on the
// receiving socket equal the BPF witness's drops with those reasons
// exactly (M less them: what no BPF program was given, 0 in most runs);
// in-window out-of-order segments are no error at all (nor a drop of
// those reasons).
func TestOutOfWindow(t *testing.T) {
	nstest.RequireRoot(t)
	port := lab.RandPort()
	r := nwtest.Start(t, "-e", "-s", strconv.Itoa(int(port)))
	const m = 3
	for _, v6 := range []bool{false, true} {
		t.Run(lab.Family(v6), func(t *testing.T) {
			p := nstest.NewPair(t)
			c := lab.Dial(t, p, v6, port, 0)
			if err := c.RoundTrip(1000, 1); err != nil {
				t.Fatal(err)
			}
			srvSock := lab.SockOf(t, r, p.B, c.ServerAddr, c.ClientAddr)
			wit := witness.Start(t, witness.Drops, uint32(p.B.Inode(t)))
			total := 0
			for _, tc := range []struct {
				mode    string
				counter string // receiver counter that grows by m
				errs    int
			}{
				{fault.ModeFuture, "TcpExtBeyondWindow", m},
				{fault.ModeOld, "TcpExtTCPDSACKOldSent", m},
				{fault.ModeInWindowOOO, "TcpExtTCPOFOQueue", 0},
			} {
				before := oracle.Nstat(t, p.B)
				w0 := wit.Counts(t)
				res, err := fault.OutOfWindow(lab.Ctx(t), c.Injection(t, m, tc.mode))
				if err != nil {
					t.Fatal(err)
				}
				// Real data covering the out-of-order bytes supersedes them.
				if err := c.RoundTrip(4000, 3); err != nil {
					t.Fatalf("connection broken after %s: %v", tc.mode, err)
				}
				wc := wit.Counts(t)
				wc.Usable(t)
				seen := wc.DropsSince(w0, invalidSeq...)
				all := waitErrors(r, srvSock, total+int(seen))
				evs := all[total:]
				after := oracle.Nstat(t, p.B)
				d := oracle.Delta(before, after, tc.counter)
				t.Logf("%s: injected %d; netwatcher %d records %v; receiver %s +%d; BPF witness: %d Invalid SEQ drops",
					tc.mode, len(res.Segments), len(evs), reasons(evs), tc.counter, d, seen)
				if d != m {
					t.Errorf("%s: receiver %s +%d, want %d (the oracle disagrees with the injection)", tc.mode, tc.counter, d, m)
				}
				gap := witness.Shortfall(t, "Invalid SEQ drops", uint64(tc.errs), seen)
				if uint64(len(evs)) != seen {
					t.Errorf("%s: %d error records %v, the BPF witness saw %d Invalid SEQ drops (want %d)", tc.mode, len(evs), reasons(evs), seen, tc.errs)
				}
				witness.Note(t, gap, tc.mode+" segments")
				if tc.errs > 0 {
					checkRecords(t, evs, res, drops.InvalidSeq, p.B)
				}
				total = len(all)
			}
		})
	}
	r.Stop()
	lab.CheckNoLoss(t, r)
}

// (f): with -s PORT, errors of connections on other local ports are not
// reported (the filter is applied in the kernel); those of PORT are, as
// many as the BPF witness saw of its injections (N of each kind, less
// what no BPF program was given: 0 in most runs).
func TestPortFilter(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	p.RxChecksumOff(t, true)
	port1 := lab.RandPort()
	port2 := port1 + 1
	r := nwtest.Start(t, "-e", "-s", strconv.Itoa(int(port1)))
	c1 := lab.Dial(t, p, false, port1, 0)
	c2 := lab.Dial(t, p, false, port2, 0)
	for _, c := range []*lab.Conn{c1, c2} {
		if err := c.RoundTrip(1000, 1); err != nil {
			t.Fatal(err)
		}
	}
	srv1 := lab.SockOf(t, r, p.B, c1.ServerAddr, c1.ClientAddr)
	const n = 3
	wit := witness.Start(t, witness.Drops, uint32(p.B.Inode(t)))
	var w0 witness.Counts // after port2's injections
	for _, c := range []*lab.Conn{c2, c1} {
		if c == c1 {
			w0 = wit.Counts(t)
		}
		for _, inject := range []func() (*fault.InjectResult, error){
			func() (*fault.InjectResult, error) {
				return fault.BadCsum(lab.Ctx(t), c.Injection(t, n, ""))
			},
			func() (*fault.InjectResult, error) {
				return fault.OutOfWindow(lab.Ctx(t), c.Injection(t, n, fault.ModeFuture))
			},
		} {
			if _, err := inject(); err != nil {
				t.Fatal(err)
			}
		}
		// after the injected segments on the same link
		if err := c.RoundTrip(1000, 1); err != nil {
			t.Fatal(err)
		}
	}
	wc := wit.Counts(t)
	wc.Usable(t)
	csum, seq := wc.DropsSince(w0, "TCP_CSUM"), wc.DropsSince(w0, invalidSeq...)
	evs := waitErrors(r, srv1, int(csum+seq))
	r.Stop()
	lab.CheckNoLoss(t, r)
	gap := witness.Shortfall(t, "TCP_CSUM drops", n, csum) + witness.Shortfall(t, "Invalid SEQ drops", n, seq)
	if got := reasons(evs); len(evs) != int(csum+seq) || got[drops.InvalidCsum] != int(csum) || got[drops.InvalidSeq] != int(seq) {
		t.Errorf("port %d: records %v, want %d %q and %d %q (the BPF witness's drops; %d of each injected)", port1, got, csum, drops.InvalidCsum, seq, drops.InvalidSeq, n)
	}
	witness.Note(t, gap, "injected segments")
	other := r.Find(func(e nwtest.Ev) bool {
		if e.Str("type") != "error" {
			return false
		}
		for _, k := range []string{"src", "dst"} {
			if ap, err := netip.ParseAddrPort(e.Str(k)); err == nil && ap.Port() == port2 {
				return true
			}
		}
		return false
	})
	if len(other) != 0 {
		t.Errorf("-s %d: %d error records of port %d: %v", port1, len(other), port2, other)
	}
	t.Logf("-s %d: %d records on %s %v; none of port %d; BPF witness: %d TCP_CSUM, %d Invalid SEQ drops of port %d", port1, len(evs), srv1, reasons(evs), port2, csum, seq, port1)
}

// With -q the kernel sends no open records (conn.Options.Quiet): a connection
// reaches the table through the once-a-second walk. Errors on a connection
// younger than that walk, including checksum errors that carry no socket,
// are still attributed to it, with its owner.
func TestQuietAttributesErrorsOnNewConnections(t *testing.T) {
	nstest.RequireRoot(t)
	port := lab.RandPort()
	r := nwtest.Start(t, "-q", "-e", "-s", strconv.Itoa(int(port)))
	const n = 3
	p := nstest.NewPair(t)
	p.RxChecksumOff(t, true)
	c := lab.Dial(t, p, false, port, 0)
	if err := c.RoundTrip(1000, 1); err != nil {
		t.Fatal(err)
	}
	res, err := fault.BadCsum(lab.Ctx(t), c.Injection(t, n, ""))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(lab.Wait)
	var evs []nwtest.Ev
	for time.Now().Before(deadline) {
		evs = r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "error" })
		if len(evs) >= n {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(evs) != n {
		t.Fatalf("%d error records, want %d: %v", len(evs), n, evs)
	}
	checkRecords(t, evs, res, drops.InvalidCsum, p.B)
	sock := evs[0].Str("sock")
	for _, e := range evs {
		if e.Str("sock") != sock || sock == "0x0" || e.Num("pid") == 0 {
			t.Errorf("error not attributed to the connection and its owner: %v", e)
		}
	}
	if conns := r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "connection" }); len(conns) != 0 {
		t.Errorf("-q printed %d connection lines", len(conns))
	}
	// connects.log lists the connection (server side) by the same socket.
	deadline = time.Now().Add(lab.Wait)
	for !strings.Contains(r.File("connects.log"), `sock="`+sock+`",src="`+c.ServerAddr.String()+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("connects.log does not list %s as %s:\n%s", sock, c.ServerAddr, r.File("connects.log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Stop()
	lab.CheckNoLoss(t, r)
	if lines := errLogLines(r, sock); len(lines) != n {
		t.Errorf("err.log: %d lines for %s, want %d", len(lines), sock, n)
	}
}
