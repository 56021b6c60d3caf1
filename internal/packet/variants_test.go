package packet

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/conn"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

var allBoundaries = append(append(append([]string{}, tracepointBoundaries...), BRxTCP, BTxOut), nsBoundaries...)

// TestEveryCandidateLoads (issue 11): every program of every candidate of
// the packet boundaries passes this kernel's verifier, the fallbacks for
// older kernels included: the cgroup_skb variants without
// bpf_cast_to_kern_ctx (before 6.2) and the kprobe candidates for the
// send-side TCP entry (no tracepoint before 6.13) and the IP entry (no
// netfilter links before 6.4), which load here although kprobes cannot
// attach. Only
// programs whose recorded features this kernel lacks are exempt.
func TestEveryCandidateLoads(t *testing.T) {
	nstest.RequireRoot(t)
	for _, cfg := range []*config.Config{{Time: true, HTTP: true}, {Time: true}, {HTTP: true}, {},
		{Time: true, HTTP: true, Sample: 10}, {Time: true, Sample: 10}, {HTTP: true, Sample: 10}, {Sample: 10}} {
		cp, err := conn.Load(conn.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c := New(cfg)
		if err := c.Load(cfg, cp.SharedMaps()); err != nil {
			cp.Close()
			t.Fatalf("-t=%v -i=%v --sample=%d: %v", cfg.Time, cfg.HTTP, cfg.Sample, err)
		}
		kinds := map[kernel.Kind]int{}
		for _, name := range allBoundaries {
			b := kernel.Hooks[name]
			if len(b.Candidates) == 0 {
				t.Fatalf("boundary %s has no candidates", name)
			}
			for _, cand := range b.Candidates {
				if !cfg.Time && cand.Kind != kernel.CgroupSKB {
					continue // only the record makers without -t
				}
				if cand.Kind == kernel.Netfilter && netfilterAvailable() != nil {
					continue
				}
				p := c.Coll.Programs[cand.Prog]
				if p == nil {
					if err := kernel.Available(cand); err != nil && len(kernel.ProgNeeds(cand.Prog)) > 0 {
						t.Logf("%s %s %s: not for this kernel (%v)", name, cand.Kind, cand.Prog, err)
						continue
					}
					t.Errorf("-t=%v -i=%v: %s: candidate %s %s: program %s not loaded", cfg.Time, cfg.HTTP, name, cand.Kind, cand.Target, cand.Prog)
					continue
				}
				kinds[cand.Kind]++
				if cand.Kind == kernel.Kprobe && p.Type() != ebpf.Kprobe {
					t.Errorf("%s is a %v program", cand.Prog, p.Type())
				}
			}
		}
		if cfg.Time && kinds[kernel.Kprobe] != 4 {
			t.Errorf("-t: %d kprobe candidates verified, want 4 (send TCP entry twice, IP entry both ways)", kinds[kernel.Kprobe])
		}
		if kinds[kernel.CgroupSKB] != 4 {
			t.Errorf("%d cgroup_skb variants verified, want 4", kinds[kernel.CgroupSKB])
		}
		c.Close()
		cp.Close()
	}
}

// TestContextVariants: the cgroup_skb record makers that do without
// bpf_cast_to_kern_ctx (what runs before 6.2) record the same segments:
// both directions, payload bytes for -i, and with -t the link stamp found
// by the context's own address (the kernel's sk_buff) and the TCP-entry
// stamp of sent segments. The kfunc variants are removed, so the hook table
// falls back to the context variants, as on a kernel without the kfunc.
func TestContextVariants(t *testing.T) {
	nstest.RequireRoot(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cp, err := conn.Load(conn.Options{PktRingBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if err := cp.Attach(log); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Time: true, HTTP: true}
	c := New(cfg)
	if err := c.Load(cfg, cp.SharedMaps()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, name := range []string{"nw_pkt_rx_tcp", "nw_pkt_tx_out"} {
		c.Coll.Programs[name].Close()
		delete(c.Coll.Programs, name)
	}
	if err := c.Attach(log); err != nil {
		t.Fatal(err)
	}
	rd, err := ringbuf.NewReader(cp.PacketEvents())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	p := nstest.NewPair(t)
	time.Sleep(time.Second) // the namespace manager hooks the new namespaces
	tc := lab.Dial(t, p, false, 0, 0)
	req := "GET /variant HTTP/1.1\r\nHost: x\r\n\r\n"
	for i := 0; i < 20; i++ {
		if _, err := tc.Client.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(req))
		if _, err := io.ReadFull(tc.Server, buf); err != nil {
			t.Fatal(err)
		}
		if err := tc.RoundTrip(3000, byte(i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Detach()

	var rx, tx, rxMac, txTCP, http int
	var ev event.Event
	rd.SetDeadline(time.Now().Add(300 * time.Millisecond))
	for {
		rec, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !Decode(rec.RawSample, &ev) || ev.Conn.Netns != uint32(p.A.Inode(t)) && ev.Conn.Netns != uint32(p.B.Inode(t)) {
			continue
		}
		if ev.Packet.Rx {
			rx++
			if ev.Packet.Missing&event.MissingMac == 0 {
				rxMac++
			}
		} else {
			tx++
			if ev.Packet.Missing&event.MissingTCP == 0 {
				txTCP++
			}
		}
		if strings.HasPrefix(string(ev.Packet.HTTP[:ev.Packet.HTTPLen]), "GET /variant") {
			http++
		}
	}
	t.Logf("records: rx %d (link stamp %d), tx %d (TCP entry %d), HTTP lines %d", rx, rxMac, tx, txTCP, http)
	// 20 requests and 20 round trips, each direction of each seen twice (sent, received)
	if rx < 60 || tx < 60 {
		t.Errorf("rx %d tx %d records, want >= 60 each", rx, tx)
	}
	if rxMac < rx*9/10 {
		t.Errorf("only %d of %d received records found their link stamp by the context's address", rxMac, rx)
	}
	if txTCP < tx*9/10 {
		t.Errorf("only %d of %d sent records have their TCP entry stamp", txTCP, tx)
	}
	if http < 40 {
		t.Errorf("%d records with the request line, want 40 (20 sent, 20 received)", http)
	}
}
