package output

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// connsChunk: a connects.log snapshot is written to its temp file in
// chunks of about this size as it is formatted (ConnsWriter), not built
// whole in memory first: with -a
// under connection churn (16,384 kept closed connections, ~330 bytes a
// line with -x) the whole snapshot was a 5.4 MiB buffer held for the
// run, and its growth another ~7 MiB of garbage at the heap's peak.
const connsChunk = 64 << 10

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
		w.buf = make([]byte, 0, connsChunk+connsChunk/4)
	}
	w.fs, w.f, w.err, w.buf = fs, nil, nil, w.buf[:0]
	tmp := fs.connsTmp()
	os.Remove(tmp)
	w.f, w.err = openNoFollow(tmp, unix.O_TRUNC|unix.O_EXCL)
	return w.buf
}

// Put takes back the snapshot's buffer with lines appended and returns it
// to append more: empty after a chunk was written.
func (w *ConnsWriter) Put(b []byte) []byte {
	if len(b) < connsChunk {
		return b
	}
	w.write(b)
	return b[:0]
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
		err = os.Rename(fs.connsTmp(), filepath.Join(fs.dir, "connects.log"))
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
