package output

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Files owns connects.log (atomic snapshot), packets.log, err.log and the
// logs of the concerns that have one (OpenFiles' extra names: tcpstate.log
// for -P, ...).
//
// A full disk (or any write error) never leaves half a line in a log and
// never goes uncounted: the append logs are written in whole lines only, a
// short write is cut back to the last complete line, and every line that
// could not be written is counted (Lost). Writing is retried at every
// flush, since space may come back. Files is used by one goroutine (the
// pipeline); Lost may be read from any.
type Files struct {
	dir     string
	packets *appendFile
	errs    *appendFile
	logs    []*appendFile          // every append log, in OpenFiles order
	byName  map[string]*appendFile // extra logs by file name

	connFailures atomic.Uint64
	connStale    bool  // the last connects.log snapshot was not written
	connErr      error // first connects.log failure
}

// fileBuf is the write buffer of an append log: one write(2) per MiB.
// The page cache takes a 1 MiB write in larger folios, and the kernel's
// work per write is mostly per folio: tool CPU per event on http -q
// -tixre (perf stat, A/B/A/B/A/B): 0.43 µs with 256 KiB, 0.34 with 1 MiB.
// (Measured before on this VM as 5-10x dearer: that was the first touch
// of never-used guest memory, a host fault, which the page cache paid;
// see bench/README, "warm memory".)
const fileBuf = 1 << 20

// file is what appendFile needs of an *os.File (tests fake a full disk).
type file interface {
	WriteAt(b []byte, off int64) (int, error)
	Truncate(size int64) error
	Close() error
}

// preallocStep: on ext4 an append log's blocks are allocated ahead of its
// writes (fallocate, keeping the file's size) this much at a time. A write
// into blocks not allocated yet goes through ext4's delayed allocation, a
// reservation per block (ext4_da_get_block_prep and the extent status
// tree): ~4% of the tool's CPU with -q -tixre under HTTP load (perf), ~0.5%
// into allocated blocks. What is allocated past the last line is given
// back at Close (a truncate to the file's size); after a crash, by the next
// run's truncate of the logs. Not on other file systems: tmpfs would take
// the memory at once, and XFS preallocates by itself.
const preallocStep = 16 << 20

// allocator is a file whose blocks can be allocated ahead (fdFile).
type allocator interface {
	Allocate(off, n int64) error
}

type appendFile struct {
	name     string // packets.log, for messages
	path     string
	f        file
	buf      []byte // whole lines only
	off      int64  // end of the last complete line in the file
	torn     bool   // the file may extend past off (a cut-back failed): cut first
	lost     atomic.Uint64
	err      error // first write error
	reported bool  // Flush returned it
	prealloc bool  // allocate ahead (preallocStep): ext4, and no failure yet
	preEnd   int64 // blocks are allocated up to here
}

// fdFile is an append log's descriptor. Not an *os.File: its WriteAt
// returns n = 0 when a pwrite loop ends in an error after a partial write
// (ENOSPC after the last pages that fitted), and the cut-back needs the
// exact count.
type fdFile int

func (fd fdFile) WriteAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, err := pwrite(int(fd), b[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, unix.EIO
		}
		n += m
	}
	return n, nil
}

func (fd fdFile) Truncate(size int64) error { return unix.Ftruncate(int(fd), size) }
func (fd fdFile) Close() error              { return unix.Close(int(fd)) }

// Allocate is fallocate(2), a raw system call like pwrite (see there: a
// Go system call woke sysmon, measured: 680 more of its wakeups in 5 s of
// rr -q, once every 16 MiB).
func (fd fdFile) Allocate(off, n int64) error {
	if runtime.GOMAXPROCS(0) < 2 {
		return unix.Fallocate(int(fd), unix.FALLOC_FL_KEEP_SIZE, off, n)
	}
	_, _, e := unix.RawSyscall6(unix.SYS_FALLOCATE, uintptr(fd), unix.FALLOC_FL_KEEP_SIZE, uintptr(off), uintptr(n), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// onExt4 reports whether fd's file is on ext4 (see preallocStep).
func onExt4(fd int) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(fd, &st) == nil && st.Type == unix.EXT4_SUPER_MAGIC
}

// write buffers line (one or more complete lines). When it does not fit,
// the buffer is written first: a line is never split between two writes,
// so a failure between them cannot tear it.
func (a *appendFile) write(line []byte) {
	if len(a.buf)+len(line) > cap(a.buf) {
		a.drain()
	}
	if len(line) > cap(a.buf) {
		a.out(line)
		return
	}
	a.buf = append(a.buf, line...)
}

// flush writes the buffer; it returns an error only once, for the first
// failure of this file (see Files.Flush), also when that failure happened
// in a write that made room for a line.
func (a *appendFile) flush() error {
	a.drain()
	if a.err == nil || a.reported {
		return nil
	}
	a.reported = true
	return fmt.Errorf("%w (lines that cannot be written are counted, writing is retried)", a.err)
}

func (a *appendFile) drain() {
	if len(a.buf) > 0 {
		a.out(a.buf)
		a.buf = a.buf[:0]
	}
}

// out writes complete lines at the end of the last complete line. On a
// short write (ENOSPC mid-buffer) the file is cut back to the last complete
// line that made it, and the lines that did not are counted as lost: they
// are not kept for a retry, the next lines are (a buffer kept for a disk
// that stays full would only grow).
func (a *appendFile) out(b []byte) {
	if a.torn {
		if err := a.f.Truncate(a.off); err != nil {
			a.lost.Add(countLines(b))
			a.fail(err)
			return
		}
		a.torn = false
	}
	if a.prealloc && a.off+int64(len(b)) > a.preEnd {
		a.allocate(a.off + int64(len(b)))
	}
	// pwrite at our own offset: after a cut-back the fd's position would
	// be past the end of the file (a hole on the next write).
	n, err := a.f.WriteAt(b, a.off)
	if err == nil {
		a.off += int64(n)
		return
	}
	n = min(max(n, 0), len(b))
	keep := bytes.LastIndexByte(b[:n], '\n') + 1
	a.off += int64(keep)
	a.lost.Add(countLines(b[keep:]))
	if n > keep {
		if terr := a.f.Truncate(a.off); terr != nil {
			a.torn = true
		}
	}
	a.fail(err)
}

// allocate allocates the file's blocks up to past end (preallocStep). A
// failure (a full disk, a file system without fallocate) ends it for this
// file: the writes go on as without it, and count what a full disk refuses.
func (a *appendFile) allocate(end int64) {
	al, ok := a.f.(allocator)
	start := max(a.preEnd, a.off)
	end = (end + preallocStep) &^ (1<<20 - 1)
	if !ok || al.Allocate(start, end-start) != nil {
		a.prealloc = false
		return
	}
	a.preEnd = end
}

// close gives back the blocks allocated past the last line, and closes.
func (a *appendFile) close() error {
	if a.preEnd > a.off {
		_ = a.f.Truncate(a.off) // blocks past the end are given back; a failure keeps them, no data is lost
	}
	return a.f.Close()
}

func (a *appendFile) fail(err error) {
	if a.err == nil {
		a.err = &os.PathError{Op: "write", Path: a.path, Err: err}
	}
}

// SymlinkError: a log or ready file is a symlink. Writing through it as
// root would overwrite whatever it points to.
type SymlinkError struct{ Path string }

func (e *SymlinkError) Error() string { return "refusing to write through a symlink: " + e.Path }

// openNoFollow creates/truncates a 0600 file without following a symlink.
// Only the last component is checked: a data dir that is itself a symlink
// is followed (pointing --data-dir at another disk with a link is a normal
// thing to do, and the directory was chosen by whoever runs netwatcher); a
// planted link in place of a log file is what must not be written through.
func openNoFollow(path string, flags int) (*os.File, error) {
	fd, err := openNoFollowFd(path, flags)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

func openNoFollowFd(path string, flags int) (int, error) {
	fd, err := unix.Open(path, flags|unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return -1, openError(path, err)
	}
	return fd, nil
}

func openError(path string, err error) error {
	if errors.Is(err, unix.ELOOP) {
		// ELOOP also means "too many links" on the way to it; only a
		// link in the last component is named as such.
		if st, lerr := os.Lstat(path); lerr == nil && st.Mode()&os.ModeSymlink != 0 {
			return &SymlinkError{Path: path}
		}
	}
	return &os.PathError{Op: "open", Path: path, Err: err}
}

// DataDirError: --data-dir cannot be used (not a directory, cannot be
// created, no permission). It is a bad invocation: the caller exits 2.
type DataDirError struct {
	Dir string
	Err error
}

func (e *DataDirError) Error() string { return fmt.Sprintf("--data-dir %s: %v", e.Dir, e.Err) }
func (e *DataDirError) Unwrap() error { return e.Err }

// dataDirErrno are the errors of creating a file in a directory that say
// the directory is unusable, not that one file is.
func dataDirErrno(err error) bool {
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EROFS) || errors.Is(err, unix.ENOTDIR)
}

// OpenFiles creates dir (0700) and truncates the logs of a previous run:
// packets.log, err.log and the extra append logs named (tcpstate.log, ...).
// An unusable dir is a *DataDirError; a log that is a symlink a
// *SymlinkError.
func OpenFiles(dir string, extra ...string) (*Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		if st, lerr := os.Lstat(dir); lerr == nil && st.Mode()&os.ModeSymlink != 0 {
			err = errors.New("a symlink to a missing directory") // MkdirAll says "file exists"
		}
		return nil, &DataDirError{Dir: dir, Err: err}
	}
	fs := &Files{dir: dir, byName: map[string]*appendFile{}}
	type named struct {
		name string
		dst  **appendFile
	}
	all := []named{{"packets.log", &fs.packets}, {"err.log", &fs.errs}}
	for _, name := range extra {
		if name == "packets.log" || name == "err.log" || name == "connects.log" || fs.byName[name] != nil || filepath.Base(name) != name {
			fs.Close()
			return nil, fmt.Errorf("log file %q: reserved, repeated or not a plain name", name)
		}
		a := new(*appendFile)
		all = append(all, named{name, a})
		fs.byName[name] = nil // reserved; set below
	}
	for _, x := range all {
		path := filepath.Join(dir, x.name)
		fd, err := openNoFollowFd(path, unix.O_TRUNC)
		if err != nil {
			fs.Close()
			if dataDirErrno(err) {
				return nil, &DataDirError{Dir: dir, Err: err}
			}
			return nil, err
		}
		a := &appendFile{name: x.name, path: path, f: fdFile(fd), buf: make([]byte, 0, fileBuf), prealloc: onExt4(fd)}
		*x.dst = a
		fs.logs = append(fs.logs, a)
		if _, ok := fs.byName[x.name]; ok {
			fs.byName[x.name] = a
		}
	}
	if err := fs.writeConnects(nil); err != nil {
		fs.Close()
		if dataDirErrno(err) {
			return nil, &DataDirError{Dir: dir, Err: err}
		}
		return nil, err
	}
	return fs, nil
}

// Packet appends complete packets.log lines.
func (fs *Files) Packet(line []byte) { fs.packets.write(line) }

// PacketBuf returns packets.log's buffer with room for n more bytes: the
// caller appends one complete line of at most n bytes to it and hands it
// back with PacketDone (the line is formatted in place, not copied).
func (fs *Files) PacketBuf(n int) []byte {
	a := fs.packets
	if len(a.buf)+n > cap(a.buf) {
		a.drain()
	}
	return a.buf
}

// PacketDone takes back the buffer PacketBuf returned, the line appended.
func (fs *Files) PacketDone(b []byte) { fs.packets.buf = b }

// Error appends complete err.log lines.
func (fs *Files) Error(line []byte) { fs.errs.write(line) }

// Log returns the writer of an extra log named at OpenFiles (nil for any
// other name). Its Write takes complete lines.
func (fs *Files) Log(name string) *Log {
	if a := fs.byName[name]; a != nil {
		return &Log{a}
	}
	return nil
}

// Log is one extra append log (whole lines, losses counted like the others).
type Log struct{ a *appendFile }

// Write appends complete lines.
func (l *Log) Write(line []byte) { l.a.write(line) }

// WriteConnects replaces connects.log atomically (temp file + rename): a
// reader never sees a torn file. A snapshot that cannot be written (disk
// full) is dropped with its temp file, leaving the last good connects.log
// in place, and counted (connects_log_write_failures). Like Flush, it
// returns an error only the first time: the caller logs it once, not once
// a second.
func (fs *Files) WriteConnects(content []byte) error {
	return fs.connsDone(fs.writeConnects(content))
}

func (fs *Files) writeConnects(content []byte) error {
	tmp := filepath.Join(fs.dir, ".connects.log.tmp")
	os.Remove(tmp)
	f, err := openNoFollow(tmp, unix.O_TRUNC|unix.O_EXCL)
	if err != nil {
		return err
	}
	_, err = f.Write(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(fs.dir, "connects.log"))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("connects.log: %w", err)
	}
	return nil
}

// Flush writes the buffered lines. It returns an error only the first
// time a file fails (disk full, I/O error), so the caller logs one line,
// not one a second while the disk stays full; from then on lost lines are
// only counted (Lost) and Close reports the total as a *LostError.
func (fs *Files) Flush() error {
	var first error
	for _, a := range fs.logs {
		if err := a.flush(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Lost counts what could not be written, for the final stats:
// <log>_log_lines_lost for every append log (packets_log_lines_lost,
// err_log_lines_lost, ...) and connects_log_write_failures (snapshots).
func (fs *Files) Lost() map[string]uint64 {
	m := map[string]uint64{"connects_log_write_failures": fs.connFailures.Load()}
	for _, a := range fs.logs {
		m[strings.TrimSuffix(a.name, ".log")+"_log_lines_lost"] = a.lost.Load()
	}
	return m
}

// LostError: the run's files are incomplete (lines lost to a full disk or
// a write error, or the final connects.log not written). The run must not
// end as if it had succeeded: scripts read the exit status.
type LostError struct {
	PacketLines, ErrLines uint64
	Other                 []LostLines // the extra logs that lost lines
	ConnectsStale         bool        // the final connects.log snapshot was not written
	Err                   error       // the first write error
}

// LostLines: lines an extra log lost.
type LostLines struct {
	Name  string
	Lines uint64
}

func (e *LostError) Error() string {
	var parts []string
	if e.PacketLines > 0 {
		parts = append(parts, fmt.Sprintf("%d packets.log lines", e.PacketLines))
	}
	if e.ErrLines > 0 {
		parts = append(parts, fmt.Sprintf("%d err.log lines", e.ErrLines))
	}
	for _, o := range e.Other {
		parts = append(parts, fmt.Sprintf("%d %s lines", o.Lines, o.Name))
	}
	s := "log files incomplete: " + strings.Join(parts, " and ")
	if len(parts) > 0 {
		s += " lost"
		if e.ConnectsStale {
			s += ", "
		}
	}
	if e.ConnectsStale {
		s += "last connects.log snapshot not written"
	}
	return fmt.Sprintf("%s (%v)", s, e.Err)
}

func (e *LostError) Unwrap() error { return e.Err }

// Close flushes and closes. Files that lost lines (or a final connects.log
// that could not be written) make it return a *LostError, even when Flush
// already reported the first failure.
func (fs *Files) Close() error {
	ferr := fs.Flush()
	var cerr error
	for _, a := range fs.logs {
		if e := a.close(); e != nil && cerr == nil {
			cerr = e
		}
	}
	le := &LostError{ConnectsStale: fs.connStale}
	for _, a := range fs.logs {
		if a.err != nil && le.Err == nil {
			le.Err = a.err
		}
		if n := a.lost.Load(); n > 0 && a != fs.packets && a != fs.errs {
			le.Other = append(le.Other, LostLines{a.name, n})
		}
	}
	if fs.packets != nil {
		le.PacketLines = fs.packets.lost.Load()
	}
	if fs.errs != nil {
		le.ErrLines = fs.errs.lost.Load()
	}
	if le.ConnectsStale && le.Err == nil {
		le.Err = fs.connErr
	}
	if le.PacketLines > 0 || le.ErrLines > 0 || len(le.Other) > 0 || le.ConnectsStale {
		return le
	}
	if ferr != nil {
		return ferr
	}
	return cerr
}

// WriteReadyFile writes our pid to path, 0600, refusing a symlink (a link
// planted there would have root overwrite its target) and anything but a
// regular file with one link. remove deletes it if it is still the file we
// wrote, so a script never finds a stale pid after exit.
func WriteReadyFile(path string) (remove func(), err error) {
	// O_NONBLOCK: a FIFO planted there must not hang us (ENXIO without
	// a reader); no effect on a regular file.
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, openError(path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	// A hard link to another file would be written through like a symlink.
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		return nil, fmt.Errorf("refusing to write the ready file %s: not a regular file with a single link", path)
	}
	pid := fmt.Appendf(nil, "%d\n", os.Getpid())
	if err := unix.Ftruncate(fd, 0); err != nil {
		return nil, &os.PathError{Op: "truncate", Path: path, Err: err}
	}
	if err := unix.Fchmod(fd, 0o600); err != nil {
		return nil, &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	if n, err := unix.Write(fd, pid); err != nil || n != len(pid) {
		if err == nil {
			err = unix.EIO
		}
		return nil, &os.PathError{Op: "write", Path: path, Err: err}
	}
	// Ours = same inode (numbers are reused at once: also same content).
	dev, ino := st.Dev, st.Ino
	return func() {
		var now unix.Stat_t
		if unix.Lstat(path, &now) != nil || now.Dev != dev || now.Ino != ino {
			return
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, pid) {
			os.Remove(path)
		}
	}, nil
}

// pwrite writes to a log file as a raw system call when the tool has more
// than one P. A log write lands in the page cache within a fraction of a
// millisecond; through Go's entersyscall it would wake sysmon from its deep
// sleep each time the tool had gone idle, and sysmon then ticks every 20 µs
// while the tool works: ~15% of the tool's CPU per event and two thirds of
// its context switches under request/response load (bench/README, issue
// 17). The price: while a write blocks (dirty-page throttling, a slow
// filesystem) its P is not handed to another thread, and the other P keeps
// the ring readers going. With a single P that would stall them, so there
// the write goes through the scheduler as usual.
func pwrite(fd int, b []byte, off int64) (int, error) {
	if runtime.GOMAXPROCS(0) < 2 {
		return unix.Pwrite(fd, b, off)
	}
	n, _, e := unix.RawSyscall6(unix.SYS_PWRITE64, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(off), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
