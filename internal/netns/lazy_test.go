package netns

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// TestManagerDefaultsFollowNew: with the default options (a change check
// every 500 ms, a full listing every 10 s) namespaces created after start
// are still hooked at once: an unnamed one (a new process that unshares
// its network namespace) and a named one (ip netns add: the file exists
// before the namespace is mounted on it, which must not count as a failed
// namespace). A process that existed before and moved to a new namespace
// is found by a Poke (what an event from an unknown namespace does).
func TestManagerDefaultsFollowNew(t *testing.T) {
	nstest.RequireRoot(t)
	m := New(func(uint64) ([]io.Closer, error) { return nil, nil }, Options{})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	// unnamed: a process of its own in a new namespace
	cmd := exec.Command("unshare", "-n", "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	unnamed := movedNS(t, cmd.Process.Pid)
	waitFor(t, "unnamed netns hooked", func() bool { return m.Known(unnamed) })

	// named
	name := fmt.Sprintf("%s%d-lazy", nstest.Prefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	named := (&nstest.NS{Name: name}).Inode(t)
	waitFor(t, "named netns hooked", func() bool { return m.Known(named) })
	m.mu.Lock()
	nfailed := len(m.failed)
	m.mu.Unlock()
	if nfailed != 0 {
		t.Errorf("%d namespaces failed to attach", nfailed)
	}

	// gone: the unnamed one with its only process
	cmd.Process.Kill()
	cmd.Wait()
	waitFor(t, "unnamed netns unhooked", func() bool { return !m.Known(unnamed) })

	// an existing process that moves to a new namespace keeps its pid: a
	// Poke lists everything again
	sh := exec.Command("sh", "-c", "read x; exec unshare -n sleep 30")
	in, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sh.Process.Kill(); sh.Wait() }()
	time.Sleep(time.Second) // listed in its first namespace
	in.Write([]byte("\n"))
	moved := movedNS(t, sh.Process.Pid)
	m.Poke()
	waitFor(t, "moved process's netns hooked after Poke", func() bool { return m.Known(moved) })
}

// movedNS waits until process pid is in a namespace other than the
// test's, and returns its inode.
func movedNS(t *testing.T, pid int) uint64 {
	t.Helper()
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	var ino uint64
	waitFor(t, fmt.Sprintf("process %d in a new netns", pid), func() bool {
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil {
			return false
		}
		ino = st.Ino
		return ino != self
	})
	return ino
}
