package output

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/track"
)

// AppendConnLogKept is AppendConnLog of a table entry, with the line of a
// closed connection kept in its entry (track.Entry.SetLine) and copied
// from there the next times: with -a under connection churn connects.log
// is ~16k kept closed connections rewritten every second, and formatting
// them was ~40% of that rewrite's CPU. A closed connection's line changes
// only if the table changes its entry (which drops the kept line) or the
// fields change (the key); its duration is up to its close, not now (a
// close without a time, which would use now, is not kept). Open
// connections are formatted each time.
func AppendConnLogKept(b []byte, e *track.Entry, f Fields, nowNs uint64) []byte {
	if !e.Closed || e.CloseNs == 0 {
		return AppendConnLog(b, e, f, nowNs)
	}
	key := f.lineKey()
	if l := e.Line(key); l != nil {
		return append(b, l...)
	}
	n := len(b)
	b = AppendConnLog(b, e, f, nowNs)
	e.SetLine(key, b[n:])
	return b
}

// lineKey names f for track.Entry.Line (not 0).
func (f Fields) lineKey() uint8 {
	k := uint8(1)
	if f.Extra {
		k |= 2
	}
	if f.Retrans {
		k |= 4
	}
	return k
}

// connsChunk: a connects.log snapshot is written to its temp file in
// chunks of this size as it is formatted (ConnsWriter), not built whole
// in memory first: with -a under connection churn (16,384 kept closed
// connections, ~330 bytes a line with -x) the whole snapshot was a 5.4
// MiB buffer held for the run, and its growth another ~7 MiB of garbage
// at the heap's peak. The chunks are whole MiBs at MiB offsets: the page
// cache then takes a write in large folios (ext4 on Linux 6.18), and most
// of ext4's work is per folio (BenchmarkRefreshKeptClosed, 5.4 MB: 3.5 ms
// CPU a snapshot with 64 KiB chunks, ~2 with 1 MiB ones at any offset,
// ~1.5 with 1 MiB ones at 1 MiB offsets).
const connsChunk = 1 << 20

// ConnsWriter writes connects.log snapshots as they are formatted. The
// zero value is ready; keep it for the run (its buffer is reused).
type ConnsWriter struct {
	fs  *Files
	f   *os.File // the temp file; nil when it could not be created
	err error    // first failure of this snapshot
	buf []byte
}

func (fs *Files) connsTmp() string { return filepath.Join(fs.dir, ".connects.log.tmp") }

// Begin starts a snapshot of fs's connects.log: append its lines to the
// returned buffer and hand it back with Put (which writes it when a chunk
// is full) and, at the end, End. The file is replaced only by a complete
// snapshot (temp file, rename), as by Files.WriteConnects.
func (w *ConnsWriter) Begin(fs *Files) []byte {
	if w.f != nil { // an unfinished snapshot: drop it
		w.f.Close()
	}
	if w.buf == nil {
		w.buf = make([]byte, 0, connsChunk+64<<10) // Put keeps less than a chunk and a line
	}
	w.fs, w.f, w.err, w.buf = fs, nil, nil, w.buf[:0]
	tmp := fs.connsTmp()
	os.Remove(tmp)
	w.f, w.err = openNoFollow(tmp, unix.O_TRUNC|unix.O_EXCL)
	return w.buf
}

// Put takes back the snapshot's buffer with lines appended and returns it
// to append more: what is left after whole chunks were written.
func (w *ConnsWriter) Put(b []byte) []byte {
	n := len(b) &^ (connsChunk - 1)
	if n == 0 {
		return b
	}
	w.write(b[:n])
	return b[:copy(b, b[n:])]
}

func (w *ConnsWriter) write(b []byte) {
	if w.buf = b; w.err == nil && len(b) > 0 {
		_, w.err = w.f.Write(b)
	}
}

// End writes the rest of the snapshot (b, the buffer with the last lines
// appended) and replaces connects.log with it. Failures are counted and
// reported as by Files.WriteConnects.
func (w *ConnsWriter) End(b []byte) error {
	w.write(b)
	err := w.err
	if w.f != nil {
		if cerr := w.f.Close(); err == nil {
			err = cerr
		}
		w.f = nil
	}
	fs := w.fs
	if err == nil {
		err = replaceConns(fs.connsTmp(), filepath.Join(fs.dir, "connects.log"))
	}
	if err != nil {
		os.Remove(fs.connsTmp())
		err = fmt.Errorf("connects.log: %w", err)
	}
	w.buf = w.buf[:0]
	return fs.connsDone(err)
}

// connsDone counts a failed snapshot and returns an error for the first
// one only (the caller logs one line, not one a second while the disk
// stays full).
func (fs *Files) connsDone(err error) error {
	fs.connStale = err != nil
	if err == nil {
		return nil
	}
	fs.connFailures.Add(1)
	if fs.connErr != nil {
		return nil
	}
	fs.connErr = err
	return fmt.Errorf("%w (the last complete connects.log stays; failures are counted, writing is retried)", err)
}

// replaceConns replaces connects.log (dst) with the snapshot in tmp, by
// exchanging the two names (renameat2 RENAME_EXCHANGE) and removing the
// old snapshot under tmp's name, or by a rename when there is no
// connects.log yet or the file system cannot exchange. A rename over an
// existing file makes ext4 (auto_da_alloc) start writing the new file to
// disk at once: every second the whole snapshot (5.4 MB with -a under
// churn) went to the disk, ~0.4 ms of CPU and a few ms of waiting a
// snapshot; exchanged, a snapshot replaced within the kernel's write-back
// delay (30 s by default) never reaches the disk (after a crash of the
// system connects.log may be empty: it is a live view, not a record). A reader
// sees the old file or the new one, whole, as with a rename: the old one
// is removed, never written again.
func replaceConns(tmp, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if err != nil {
		return os.Rename(tmp, dst)
	}
	if err := unix.Unlink(tmp); err != nil {
		// not a file (a directory named connects.log): put it back
		// and fail as the rename would
		unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
		return &os.LinkError{Op: "rename", Old: tmp, New: dst, Err: err}
	}
	return nil
}
