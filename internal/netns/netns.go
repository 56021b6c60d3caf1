// Package netns finds every network namespace of the host and keeps
// per-namespace hooks (netfilter links, tcx) attached in each of them: at
// start, as namespaces appear, and detached when they go away.
//
// Namespaces are found through /proc/*/ns/net (every namespace some process
// lives in) and /run/netns/* (named namespaces kept by a bind mount), and
// identified by inode (the value BPF reads from sk->__sk_common.skc_net).
// A scan runs every Interval and whenever Poke is called (for instance when
// an event names a namespace the manager does not know yet).
package netns

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/nsenter"
)

// AttachFunc attaches the hooks of one namespace. It runs on an OS thread
// that has joined the namespace (and leaves it afterwards). The closers it
// returns are closed when the namespace disappears or the manager closes.
type AttachFunc func(inode uint64) ([]io.Closer, error)

// Manager keeps per-namespace hooks attached.
type Manager struct {
	attach   AttachFunc
	log      *slog.Logger
	interval time.Duration
	roots    []string // directories of named namespaces

	mu     sync.Mutex
	known  map[uint64]*entry
	failed map[uint64]bool // attach failed: not retried until it reappears
	poke   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

type entry struct {
	closers []io.Closer
	path    string // how it was last seen
}

// Options of a manager.
type Options struct {
	// Interval between scans (default 500 ms).
	Interval time.Duration
	// NamedDirs are scanned besides /proc (default /run/netns, /var/run/netns).
	NamedDirs []string
	Log       *slog.Logger
}

// New returns a manager; nothing is attached before Start.
func New(attach AttachFunc, o Options) *Manager {
	if o.Interval <= 0 {
		o.Interval = 500 * time.Millisecond
	}
	if o.NamedDirs == nil {
		o.NamedDirs = []string{"/run/netns", "/var/run/netns"}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Manager{
		attach: attach, log: o.Log, interval: o.Interval, roots: o.NamedDirs,
		known: map[uint64]*entry{}, failed: map[uint64]bool{},
		poke: make(chan struct{}, 1),
	}
}

// Start scans once (synchronously: when it returns, every namespace that
// exists now has its hooks) and then keeps scanning in the background.
// It returns an error only if no namespace at all could be attached.
func (m *Manager) Start() error {
	n, errs := m.Scan()
	if n == 0 && len(errs) > 0 {
		return fmt.Errorf("no network namespace could be hooked: %w", errors.Join(errs...))
	}
	stop, done := make(chan struct{}), make(chan struct{})
	m.mu.Lock()
	m.stop, m.done = stop, done
	m.mu.Unlock()
	go m.loop(stop, done)
	return nil
}

func (m *Manager) loop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-m.poke:
		}
		m.Scan()
	}
}

// Poke asks for a scan soon (never blocks).
func (m *Manager) Poke() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// Known reports whether hooks are attached in the namespace with this inode.
func (m *Manager) Known(inode uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.known[inode]
	return ok
}

// Inodes lists the namespaces with hooks attached.
func (m *Manager) Inodes() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]uint64, 0, len(m.known))
	for k := range m.known {
		out = append(out, k)
	}
	return out
}

// List returns every network namespace visible now: inode -> a path that
// opens it.
func (m *Manager) List() map[uint64]string {
	found := map[uint64]string{}
	add := func(p string) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return
		}
		if _, ok := found[st.Ino]; !ok {
			found[st.Ino] = p
		}
	}
	// Named namespaces first: their path stays valid.
	for _, dir := range m.roots {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			add(filepath.Join(dir, e.Name()))
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		add(filepath.Join("/proc", e.Name(), "ns", "net"))
	}
	return found
}

// Scan attaches hooks in new namespaces and closes those of vanished ones.
// It returns how many namespaces have hooks and the errors of this pass.
func (m *Manager) Scan() (int, []error) {
	found := m.List()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, nil
	}
	var errs []error
	for ino, e := range m.known {
		if _, ok := found[ino]; !ok {
			closeAll(e.closers)
			delete(m.known, ino)
			m.log.Debug("netns gone, hooks detached", "netns", ino)
		}
	}
	for ino := range m.failed {
		if _, ok := found[ino]; !ok {
			delete(m.failed, ino)
		}
	}
	for ino, p := range found {
		if _, ok := m.known[ino]; ok || m.failed[ino] {
			continue
		}
		cl, err := m.attachIn(p, ino)
		if err != nil {
			// The namespace may have vanished between listing and entering.
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
				continue
			}
			m.failed[ino] = true
			errs = append(errs, fmt.Errorf("netns %d (%s): %w", ino, p, err))
			m.log.Warn("per-netns hooks not attached", "netns", ino, "path", p, "err", err)
			continue
		}
		m.known[ino] = &entry{closers: cl, path: p}
		m.log.Debug("netns hooked", "netns", ino, "path", p, "links", len(cl))
	}
	return len(m.known), errs
}

// attachIn runs the attach function on a locked OS thread inside the
// namespace at path, then returns the thread to its original namespace. A
// thread that cannot go back is never reused (it stays locked and exits).
func (m *Manager) attachIn(path string, ino uint64) ([]io.Closer, error) {
	target, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	// Make sure the inode did not change under the path (pid reuse).
	var st unix.Stat_t
	if err := unix.Fstat(int(target.Fd()), &st); err != nil || st.Ino != ino {
		return nil, os.ErrNotExist
	}
	var cl []io.Closer
	err = nsenter.Do(target, func() error {
		var aerr error
		cl, aerr = m.attach(ino)
		return aerr
	})
	if err != nil {
		closeAll(cl)
		return nil, err
	}
	return cl, nil
}

func closeAll(cl []io.Closer) {
	for _, c := range cl {
		c.Close()
	}
}

// Close stops scanning and closes every namespace's hooks.
func (m *Manager) Close() {
	m.mu.Lock()
	stop, done := m.stop, m.done
	m.stop = nil
	m.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for ino, e := range m.known {
		closeAll(e.closers)
		delete(m.known, ino)
	}
}

// Self returns the inode of the calling thread's network namespace.
func Self() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
