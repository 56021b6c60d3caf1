// Package nstest creates network namespaces and veth pairs for tests and
// removes them again when the test ends, whether it passed or not.
//
// All traffic a test makes through this package stays on loopback or on the
// veth pairs it creates: the namespaces have no other interface and no route
// out of the host.
package nstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/nsenter"
	"github.com/netwatcher/netwatcher/internal/testsupport/nsclean"
)

// Prefix starts the name of every namespace this package creates.
const Prefix = "nwt-"

// RequireRoot skips the test when it does not run as root. When the
// environment variable CI is non-empty it fails instead: a CI run must never
// pass by skipping everything.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("test needs root, and CI is set: refusing to skip")
	}
	t.Skip("test needs root")
}

// RequireTools is like RequireRoot for external programs: it skips (or fails
// under CI) when one of them is not in PATH.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("test needs %q in PATH, and CI is set: refusing to skip", n)
			}
			t.Skipf("test needs %q in PATH", n)
		}
	}
}

// NS is a named network namespace (/run/netns/<Name>).
type NS struct {
	Name string

	mu   sync.Mutex
	cmds []*exec.Cmd // made by Cmd: killed at cleanup if still running
}

var (
	counter   atomic.Uint64
	sweepOnce sync.Once
)

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// NewNS creates a namespace named nwt-<pid>-<counter>-<random>, brings its
// loopback up and registers a cleanup that kills every process still inside
// and deletes it.
func NewNS(t testing.TB) *NS {
	t.Helper()
	RequireRoot(t)
	RequireTools(t, "ip")
	sweepOnce.Do(sweepStale)
	ns := &NS{Name: fmt.Sprintf("%s%d-%d-%s", Prefix, os.Getpid(), counter.Add(1), randHex(2))}
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns.Name, err, out)
	}
	t.Cleanup(func() {
		if err := ns.destroy(); err != nil {
			t.Errorf("cleanup of netns %s: %v", ns.Name, err)
		}
	})
	ns.Run(t, "ip", "link", "set", "lo", "up")
	return ns
}

// destroy kills the processes left in the namespace and deletes it.
func (ns *NS) destroy() error {
	// Commands from Cmd first: one started just now may still be `ip` in
	// the caller's namespace, invisible to `ip netns pids`, about to enter.
	ns.mu.Lock()
	for _, cmd := range ns.cmds {
		if cmd.Process != nil {
			_ = cmd.Process.Kill() // no-op once waited for; pidfd-safe
		}
	}
	ns.cmds = nil
	ns.mu.Unlock()
	return nsclean.Delete(ns.Name)
}

// sweepStale deletes namespaces left behind by test processes that died
// without running their cleanups (e.g. killed by `go test -timeout`). Only
// names whose creator pid no longer exists are touched.
func sweepStale() { nsclean.Sweep(Prefix, nil) }

// Cmd returns a command that runs name inside the namespace through
// `ip netns exec`. ip execs the program, so cmd.Process.Pid is the pid of
// the program itself. A nil *NS runs the command in the current namespace.
// If the command is still running when the namespace is cleaned up, it is
// killed.
func (ns *NS) Cmd(name string, args ...string) *exec.Cmd {
	cmd := ns.command(name, args...)
	if ns != nil {
		ns.mu.Lock()
		ns.cmds = append(ns.cmds, cmd)
		ns.mu.Unlock()
	}
	return cmd
}

func (ns *NS) command(name string, args ...string) *exec.Cmd {
	if ns == nil {
		return exec.Command(name, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Run runs the command inside the namespace and returns its standard output.
// The test fails (with the combined output in the message) if it fails.
func (ns *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := ns.command(name, args...) // waited for here: no need to track
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", strings.Join(cmd.Args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String()
}

// Path is the namespace's bind mount, /run/netns/<Name>.
func (ns *NS) Path() string { return filepath.Join(nsclean.Dir, ns.Name) }

// Inode returns the inode number of the namespace (the one netwatcher
// reports as netns, and that /proc/<pid>/ns/net shows for its processes).
func (ns *NS) Inode(t testing.TB) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(ns.Path(), &st); err != nil {
		t.Fatalf("stat %s: %v", ns.Path(), err)
	}
	return st.Ino
}

// Sysctl sets a sysctl (dotted key, e.g. net.ipv4.tcp_tw_reuse) inside the
// namespace.
func (ns *NS) Sysctl(t testing.TB, key, val string) {
	t.Helper()
	RequireTools(t, "sysctl")
	ns.Run(t, "sysctl", "-q", "-w", key+"="+val)
}

// Do runs fn on an OS thread that has joined the namespace, and waits for it.
// Sockets fn creates belong to the namespace and stay there when used from
// other goroutines later. Goroutines started by fn do not run in the
// namespace. The thread is thrown away afterwards, never reused.
func (ns *NS) Do(fn func() error) error { return nsenter.DoPath(ns.Path(), fn) }

// Pair is two namespaces joined by a veth pair: A (IfA, A4, A6) and B (IfB,
// B4, B6). N is the pair's number: addresses are 198.18.0.0/15's N-th /24
// and fd00:4e57:N::/64.
type Pair struct {
	A, B           *NS
	IfA, IfB       string
	A4, B4, A6, B6 netip.Addr
	N              int
}

var pairBase = func() uint64 {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return uint64(b[0])<<8 | uint64(b[1])
}()

// NewPair creates two namespaces joined by a veth pair, with addresses on
// both ends (IPv6 without DAD, usable at once), links up, tcp_tw_reuse=1 and
// a wide ip_local_port_range in both, and checks with one ping per family
// that the link works. Cleanup deletes both namespaces, and so the veth.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	n := int((pairBase + counter.Add(1)) % 512)
	p := &Pair{
		A: NewNS(t), B: NewNS(t),
		IfA: fmt.Sprintf("nwa%d", n), IfB: fmt.Sprintf("nwb%d", n),
		A4: netip.AddrFrom4([4]byte{198, 18 + byte(n>>8), byte(n), 1}),
		B4: netip.AddrFrom4([4]byte{198, 18 + byte(n>>8), byte(n), 2}),
		A6: netip.MustParseAddr(fmt.Sprintf("fd00:4e57:%x::1", n)),
		B6: netip.MustParseAddr(fmt.Sprintf("fd00:4e57:%x::2", n)),
		N:  n,
	}
	// Create both ends directly inside their namespaces, so the names never
	// meet other tests' interfaces in the root namespace.
	(*NS)(nil).Run(t, "ip", "link", "add", "name", p.IfA, "netns", p.A.Name,
		"type", "veth", "peer", "name", p.IfB, "netns", p.B.Name)
	sides := []struct {
		ns     *NS
		ifname string
		a4, a6 netip.Addr
	}{{p.A, p.IfA, p.A4, p.A6}, {p.B, p.IfB, p.B4, p.B6}}
	// Links go up before the IPv6 addresses are added: the other order
	// (measured here) leaves IPv6 neighbour discovery failing for ~2 s.
	for _, side := range sides {
		side.ns.Run(t, "ip", "link", "set", side.ifname, "up")
	}
	for _, side := range sides {
		side.ns.Run(t, "ip", "addr", "add", side.a4.String()+"/24", "dev", side.ifname)
		side.ns.Run(t, "ip", "addr", "add", side.a6.String()+"/64", "dev", side.ifname, "nodad")
		side.ns.Sysctl(t, "net.ipv4.tcp_tw_reuse", "1")
		side.ns.Sysctl(t, "net.ipv4.ip_local_port_range", "10000 65000")
	}
	p.checkLink(t)
	return p
}

func (p *Pair) checkLink(t testing.TB) {
	t.Helper()
	RequireTools(t, "ping")
	for _, dst := range []netip.Addr{p.B4, p.B6} {
		var out []byte
		var err error
		// The first probe can race the carrier coming up: allow a few.
		for try := 0; try < 5; try++ {
			out, err = p.A.Cmd("ping", "-n", "-c1", "-W1", dst.String()).CombinedOutput()
			if err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("pair %s<->%s: ping %s: %v: %s", p.A.Name, p.B.Name, dst, err, out)
		}
	}
}

// Side returns the namespace and interface of side A (onA) or B.
func (p *Pair) Side(onA bool) (*NS, string) {
	if onA {
		return p.A, p.IfA
	}
	return p.B, p.IfB
}

// TBF adds a tbf root qdisc (e.g. rate "1mbit", burst "4kb", latency
// "200ms") on side A's or B's veth, and removes it at cleanup.
func (p *Pair) TBF(t testing.TB, onA bool, rate, burst, latency string) {
	t.Helper()
	RequireTools(t, "tc")
	ns, ifname := p.Side(onA)
	ns.Run(t, "tc", "qdisc", "add", "dev", ifname, "root", "tbf",
		"rate", rate, "burst", burst, "latency", latency)
	t.Cleanup(func() {
		// Fails harmlessly if the namespace is already gone.
		_ = ns.Cmd("tc", "qdisc", "del", "dev", ifname, "root").Run()
	})
}

// RxChecksumOff turns receive checksum offload off on side B's (onB) or A's
// veth, so that the kernel verifies TCP checksums of what arrives there (and
// counts TcpInCsumErrors). Measured on 6.18: segments from a raw socket
// (CHECKSUM_NONE) are verified and counted even with offload on; this makes
// the result independent of the kernel's veth. Restored at cleanup.
func (p *Pair) RxChecksumOff(t testing.TB, onB bool) {
	t.Helper()
	RequireTools(t, "ethtool")
	ns, ifname := p.Side(!onB)
	ns.Run(t, "ethtool", "-K", ifname, "rx", "off")
	t.Cleanup(func() {
		_ = ns.Cmd("ethtool", "-K", ifname, "rx", "on").Run()
	})
}

// NoSegmentOffload turns TSO and GSO off on side A's (onA) or B's veth, so
// that what it sends crosses the link as MSS-sized segments. With offload
// on, veth carries ~64 KB GSO packets: a rule dropping 1 packet in N at the
// receiver then drops ~40 segments at once (measured: 18 drops, 668
// retransmitted segments). Restored at cleanup.
func (p *Pair) NoSegmentOffload(t testing.TB, onA bool) {
	t.Helper()
	RequireTools(t, "ethtool")
	ns, ifname := p.Side(onA)
	ns.Run(t, "ethtool", "-K", ifname, "tso", "off", "gso", "off")
	t.Cleanup(func() {
		_ = ns.Cmd("ethtool", "-K", ifname, "tso", "on", "gso", "on").Run()
	})
}
