package packet_test

// --sample with -i (issue 17): an unpicked segment that may start an HTTP
// line is recorded at once, untimed, but never ahead of a picked segment of
// its socket that still waits for the application's copy: the HTTP pairing
// takes a request that comes after a later one for a retransmission.

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
)

// TestSampleHTTPPipelineOrder: a client pipelines GETs, one segment
// each, in groups of g, to a server that reads none of a group until all
// of it arrived (so a picked one waits for the copy while later, unpicked
// ones arrive); the server then answers with g responses, one segment
// each, which the client reads only after all were sent. k exchanges in
// all. With --sample 4 on both ends:
// every request and response has a record, each direction's records come
// in sequence order, and the pairing matches all k exchanges on both
// sockets (its summary: k requests, k matched, none unmatched).
func TestSampleHTTPPipelineOrder(t *testing.T) {
	nstest.RequireRoot(t)
	const n, k, g = 4, 48, 3
	ns := nstest.NewNS(t)
	run := nwtest.Start(t, "-t", "-i", "--sample", fmt.Sprint(n))
	var ln net.Listener
	var cl net.Conn
	if err := ns.Do(func() (err error) {
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		cl, err = net.Dial("tcp4", ln.Addr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	defer cl.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// Groups of g exchanges: g requests, one write (one segment:
	// TCP_NODELAY) each, read by the server only when all g arrived; then
	// g responses, read by the client only when all g were sent. At most
	// g HTTP starts wait per socket: within the RX_SLOTS payload copies a
	// socket keeps for waiting segments (more would lose text, sampled
	// or not).
	sr, cr := bufio.NewReader(srv), bufio.NewReader(cl)
	for i := 0; i < k; i += g {
		for j := i; j < i+g; j++ {
			if _, err := fmt.Fprintf(cl, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", j); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
		for j := i; j < i+g; j++ {
			req, err := http.ReadRequest(sr)
			if err != nil {
				t.Fatalf("request %d: %v", j, err)
			}
			req.Body.Close()
		}
		for j := i; j < i+g; j++ {
			body := fmt.Sprint(j)
			if _, err := fmt.Fprintf(srv, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
		for j := i; j < i+g; j++ {
			resp, err := http.ReadResponse(cr, nil)
			if err != nil {
				t.Fatalf("response %d: %v", j, err)
			}
			resp.Body.Close()
		}
	}
	cl.Close()
	srv.Close()
	saddr := ln.Addr().String()
	time.Sleep(300 * time.Millisecond)
	run.Stop()
	pk, stats := packets(run)

	// per socket and direction, the HTTP start records in output order
	type dir struct {
		server, rx bool
	}
	seqs := map[dir][]uint32{}
	pick := map[uint32]bool{}
	for _, x := range pk {
		server := x.src.String() == saddr
		if !server && x.dst.String() != saddr {
			continue
		}
		h := x.raw.Str("http_info")
		if !strings.HasPrefix(h, "GET ") && !strings.HasPrefix(h, "HTTP/1.1 ") {
			continue
		}
		d := dir{server, x.rx}
		seqs[d] = append(seqs[d], x.seq)
		pick[x.seq] = picked(x, n)
	}
	// received: unpicked HTTP starts that arrived while a picked one of
	// their group waited for the copy (the case under test)
	var behind int
	for _, d := range []dir{{true, true}, {false, true}} {
		u := slices.Clone(seqs[d])
		slices.SortFunc(u, func(a, b uint32) int { return int(int32(a - b)) })
		u = slices.Compact(u)
		for i := 0; i+g <= len(u); i += g {
			waiting := false
			for _, q := range u[i : i+g] {
				if pick[q] {
					waiting = true
				} else if waiting {
					behind++
				}
			}
		}
	}
	for _, d := range []dir{{true, true}, {true, false}, {false, true}, {false, false}} {
		s := seqs[d]
		// a tail loss probe (the receiver acks late: it does not read)
		// may send a segment twice: both are recorded
		if u := len(slices.Compact(slices.Clone(s))); u != k {
			t.Errorf("server=%v rx=%v: %d HTTP start segments recorded, want %d: %v", d.server, d.rx, u, k, s)
		}
		if !slices.IsSortedFunc(s, func(a, b uint32) int { return int(int32(a - b)) }) {
			t.Errorf("server=%v rx=%v: records out of sequence order: %v", d.server, d.rx, s)
		}
	}
	var sums int
	for _, e := range run.Events() {
		if e.Str("type") != "http_summary" || (e.Str("src") != saddr && e.Str("dst") != saddr) {
			continue
		}
		sums++
		if e.Num("requests") != k || e.Num("matched") != k || e.Num("unmatched") != 0 {
			t.Errorf("pairing: %v", e)
		}
	}
	t.Logf("HTTP start records per (server, rx): %d %d %d %d; received unpicked behind a waiting picked one: %d; summaries %d; lost %d",
		len(seqs[dir{true, true}]), len(seqs[dir{true, false}]), len(seqs[dir{false, true}]), len(seqs[dir{false, false}]), behind, sums, lost(stats))
	if sums != 2 {
		t.Errorf("%d http_summary records, want 2 (both sockets)", sums)
	}
	if behind == 0 {
		t.Errorf("no unpicked HTTP start after a picked one: the order was not put to the test")
	}
}
