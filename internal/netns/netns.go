// Package netns finds every network namespace of the host and keeps
// per-namespace hooks (netfilter links, tcx) attached in each of them: at
// start, as namespaces appear, and detached when they go away.
//
// Namespaces are found through /proc/*/ns/net (every namespace some process
// lives in) and /run/netns/* (named namespaces kept by a bind mount), and
// identified by inode (the value BPF reads from sk->__sk_common.skc_net).
// Listing costs a stat of /proc/PID/ns/net per process (~9 us each: ~0.9 ms
// for 90 processes), so the manager does not list every Interval: it
// checks a cheap stamp (/proc/loadavg's last pid and thread count, the
// named directories' mtimes) and lists only when it changed, statting only
// the processes it has not seen before; every FullEvery, and whenever Poke
// is called (an event names a namespace the manager does not know yet), it
// lists everything again (a process that moved to another namespace with
// setns or unshare keeps its pid).
package netns

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

	full    time.Duration // FullEvery
	nsfsDev uint64        // the device of namespace inodes (nsfs)

	// loop state (one scan at a time: scanMu)
	scanMu   sync.Mutex
	pids     map[int]procNS // /proc/PID -> its namespace, as last listed
	stamp    string         // changeStamp when last listed
	lastFull time.Time

	mu     sync.Mutex
	known  map[uint64]*entry
	failed map[uint64]bool // attach failed: not retried until it reappears
	poke   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

type procNS struct {
	ino    uint64
	path   string
	listed int // how many listings statted it (up to 2)
}

type entry struct {
	closers []io.Closer
	path    string // how it was last seen
}

// Options of a manager.
type Options struct {
	// Interval between checks for a change (default 500 ms).
	Interval time.Duration
	// FullEvery: a full listing at least this often (default 10 s).
	FullEvery time.Duration
	// NamedDirs are scanned besides /proc (default /run/netns, /var/run/netns).
	NamedDirs []string
	Log       *slog.Logger
}

// New returns a manager; nothing is attached before Start.
func New(attach AttachFunc, o Options) *Manager {
	if o.Interval <= 0 {
		o.Interval = 500 * time.Millisecond
	}
	if o.FullEvery <= 0 {
		o.FullEvery = 10 * time.Second
	}
	if o.NamedDirs == nil {
		o.NamedDirs = []string{"/run/netns", "/var/run/netns"}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Manager{
		attach: attach, log: o.Log, interval: o.Interval, roots: o.NamedDirs, full: o.FullEvery,
		known: map[uint64]*entry{}, failed: map[uint64]bool{},
		poke: make(chan struct{}, 1), pids: map[int]procNS{},
	}
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/net", &st) == nil {
		m.nsfsDev = st.Dev
	}
	return m
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
			if time.Since(m.lastFullAt()) < m.full && changeStamp(m.roots) == m.lastStamp() {
				continue
			}
			m.scan(time.Since(m.lastFullAt()) >= m.full)
		case <-m.poke:
			m.scan(true)
		}
	}
}

func (m *Manager) lastFullAt() time.Time {
	m.scanMu.Lock()
	defer m.scanMu.Unlock()
	return m.lastFull
}

func (m *Manager) lastStamp() string {
	m.scanMu.Lock()
	defer m.scanMu.Unlock()
	return m.stamp
}

// changeStamp changes when a namespace may have appeared or gone: a
// process was created (/proc/loadavg's last pid; pids are allocated
// cyclically, so a new process changes it) or exited (the thread count),
// or a named namespace was added or removed (its directory's mtime). A
// process that enters another namespace without one of these is found by
// the full listing (FullEvery) or a Poke.
func changeStamp(roots []string) string {
	b, _ := os.ReadFile("/proc/loadavg") // "0.00 0.01 0.05 1/123 4567"
	s := string(b)
	if i := strings.LastIndexByte(strings.TrimSpace(s), ' '); i > 0 {
		if j := strings.LastIndexByte(s[:i], '/'); j > 0 {
			s = s[j:] // "/123 4567\n": threads and last pid
		}
	}
	for _, dir := range roots {
		var st unix.Stat_t
		if unix.Stat(dir, &st) == nil {
			s += fmt.Sprintf(" %d:%d.%d", st.Ino, st.Mtim.Sec, st.Mtim.Nsec)
		}
	}
	return s
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
	m.scanMu.Lock()
	defer m.scanMu.Unlock()
	return m.list(true)
}

// list is List; without full, a process listed before keeps the namespace
// it had then (no stat). Call with scanMu held.
func (m *Manager) list(full bool) map[uint64]string {
	m.stamp = changeStamp(m.roots) // before listing: a change during it shows next time
	if full {
		m.lastFull = time.Now()
	}
	found := map[uint64]string{}
	add := func(p string) (uint64, bool) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return 0, false
		}
		// ip netns add creates the file, then bind-mounts the namespace
		// on it: not a namespace (yet) unless on nsfs
		if m.nsfsDev != 0 && st.Dev != m.nsfsDev {
			return 0, false
		}
		if _, ok := found[st.Ino]; !ok {
			found[st.Ino] = p
		}
		return st.Ino, true
	}
	// Named namespaces first: their path stays valid.
	for _, dir := range m.roots {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			add(filepath.Join(dir, e.Name()))
		}
	}
	var names []string
	if d, err := os.Open("/proc"); err == nil {
		names, _ = d.Readdirnames(-1)
		d.Close()
	}
	// A new process is statted by two listings: a runtime or unshare(1)
	// moves a fresh process to its new namespace right after creating
	// it, maybe after the first listing saw it (the next check then
	// lists again, whatever the stamp says).
	pids := make(map[int]procNS, len(m.pids))
	young := false
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		old, ok := m.pids[pid]
		if ok && !full && old.listed >= 2 {
			pids[pid] = old
			if _, ok := found[old.ino]; !ok {
				found[old.ino] = old.path
			}
			continue
		}
		p := filepath.Join("/proc", name, "ns", "net")
		if ino, ok := add(p); ok {
			pids[pid] = procNS{ino, p, min(old.listed+1, 2)}
			young = young || old.listed+1 < 2
		}
	}
	m.pids = pids
	if young {
		m.stamp = ""
	}
	return found
}

// Scan lists every namespace (List), attaches hooks in new ones and closes
// those of vanished ones. It returns how many namespaces have hooks and
// the errors of this pass.
func (m *Manager) Scan() (int, []error) { return m.scan(true) }

// scan is Scan; without full, with list's cache.
func (m *Manager) scan(full bool) (int, []error) {
	m.scanMu.Lock()
	defer m.scanMu.Unlock()
	found := m.list(full)
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
