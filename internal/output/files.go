package output

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Files owns connects.log (atomic snapshot), packets.log and err.log.
type Files struct {
	dir     string
	packets *appendFile
	errs    *appendFile
}

type appendFile struct {
	f *os.File
	w *bufio.Writer
}

// openNoFollow creates/truncates a 0600 file without following a symlink.
func openNoFollow(path string, flags int) (*os.File, error) {
	fd, err := unix.Open(path, flags|unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// OpenFiles creates dir (0700) and truncates the logs of a previous run.
func OpenFiles(dir string) (*Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	fs := &Files{dir: dir}
	for _, x := range []struct {
		name string
		dst  **appendFile
	}{{"packets.log", &fs.packets}, {"err.log", &fs.errs}} {
		f, err := openNoFollow(filepath.Join(dir, x.name), unix.O_TRUNC)
		if err != nil {
			fs.Close()
			return nil, err
		}
		*x.dst = &appendFile{f: f, w: bufio.NewWriterSize(f, 256<<10)}
	}
	if err := fs.WriteConnects(nil); err != nil {
		fs.Close()
		return nil, err
	}
	return fs, nil
}

// Packet appends complete packets.log lines.
func (fs *Files) Packet(line []byte) { fs.packets.w.Write(line) }

// Error appends complete err.log lines.
func (fs *Files) Error(line []byte) { fs.errs.w.Write(line) }

// WriteConnects replaces connects.log atomically (temp file + rename): a
// reader never sees a torn file.
func (fs *Files) WriteConnects(content []byte) error {
	tmp := filepath.Join(fs.dir, ".connects.log.tmp")
	os.Remove(tmp)
	f, err := openNoFollow(tmp, unix.O_TRUNC|unix.O_EXCL)
	if err != nil {
		return err
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return fmt.Errorf("write connects.log: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write connects.log: %w", err)
	}
	return os.Rename(tmp, filepath.Join(fs.dir, "connects.log"))
}

// Flush writes buffered lines (only whole lines are ever buffered).
func (fs *Files) Flush() error {
	var first error
	for _, a := range []*appendFile{fs.packets, fs.errs} {
		if a == nil {
			continue
		}
		if err := a.w.Flush(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Close flushes and closes.
func (fs *Files) Close() error {
	err := fs.Flush()
	for _, a := range []*appendFile{fs.packets, fs.errs} {
		if a != nil {
			if e := a.f.Close(); e != nil && err == nil {
				err = e
			}
		}
	}
	return err
}
