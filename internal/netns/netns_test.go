package netns

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

type closer struct {
	n      *atomic.Int32
	ino    uint64
	closed *sync.Map
}

func (c closer) Close() error { c.n.Add(1); c.closed.Store(c.ino, true); return nil }

// The manager attaches inside every namespace (the attach function really
// runs in it), follows namespaces created later, detaches from those that
// go away, and leaves the calling thread in its own namespace.
func TestManagerFollowsNamespaces(t *testing.T) {
	nstest.RequireRoot(t)
	before := nstest.NewNS(t)
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ranIn := map[uint64]uint64{} // requested inode -> inode the attach ran in
	var closed atomic.Int32
	var closedIno sync.Map
	m := New(func(ino uint64) ([]io.Closer, error) {
		got, err := Self()
		if err != nil {
			return nil, err
		}
		mu.Lock()
		ranIn[ino] = got
		mu.Unlock()
		return []io.Closer{closer{&closed, ino, &closedIno}}, nil
	}, Options{Interval: 100 * time.Millisecond})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.Known(before.Inode(t)) || !m.Known(self) {
		t.Fatalf("namespaces existing at start not hooked: %v", m.Inodes())
	}
	mu.Lock()
	for want, got := range ranIn {
		if want != got {
			t.Errorf("attach for netns %d ran in netns %d", want, got)
		}
	}
	mu.Unlock()
	if now, _ := Self(); now != self {
		t.Fatalf("test thread moved to netns %d", now)
	}

	// A namespace created later, then deleted.
	name := fmt.Sprintf("%s%d-mgr", nstest.Prefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	del := func() { exec.Command("ip", "netns", "del", name).Run() }
	defer del()
	later := (&nstest.NS{Name: name}).Inode(t)
	waitFor(t, "new netns hooked", func() bool { return m.Known(later) })
	del()
	waitFor(t, "deleted netns unhooked", func() bool { return !m.Known(later) })
	if _, ok := closedIno.Load(later); !ok {
		t.Fatal("hooks of the deleted netns not closed")
	}
	// Other tests may create and delete namespaces meanwhile: count after
	// the loop has stopped.
	m.Close()
	mu.Lock()
	attached := int32(len(ranIn))
	mu.Unlock()
	if closed.Load() != attached {
		t.Fatalf("Close: %d hooks closed, %d attached", closed.Load(), attached)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
