package output

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

// fakeFile is a disk that holds limit bytes: a write past it is short,
// with ENOSPC, like a full tmpfs.
type fakeFile struct {
	data      []byte
	limit     int
	writes    [][]byte
	failTrunc bool
}

func (f *fakeFile) WriteAt(b []byte, off int64) (int, error) {
	f.writes = append(f.writes, append([]byte(nil), b...))
	n := min(len(b), max(f.limit-int(off), 0))
	if end := int(off) + n; end > len(f.data) {
		f.data = append(f.data, make([]byte, end-len(f.data))...)
	}
	copy(f.data[off:], b[:n])
	if n < len(b) {
		return n, syscall.ENOSPC
	}
	return n, nil
}

func (f *fakeFile) Truncate(size int64) error {
	if f.failTrunc {
		return syscall.EIO
	}
	if int(size) < len(f.data) {
		f.data = f.data[:size]
	}
	return nil
}

func (f *fakeFile) Close() error { return nil }

func testLine(i int) []byte {
	return fmt.Appendf(nil, "line{n=\"%d\",pad=\"%s\"}\n", i, strings.Repeat("p", i%23))
}

// linesOf checks that every line of data is a whole testLine and returns
// their numbers.
func linesOf(t *testing.T, data []byte) []int {
	t.Helper()
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("torn last line: %q", data[max(0, len(data)-40):])
	}
	var ns []int
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if l == "" {
			continue
		}
		rest, ok := strings.CutPrefix(l, `line{n="`)
		num, _, _ := strings.Cut(rest, `"`)
		n, err := strconv.Atoi(num)
		if !ok || err != nil || string(testLine(n)) != l {
			t.Fatalf("torn line %q", l)
		}
		ns = append(ns, n)
	}
	return ns
}

// Only whole lines are written: when a line does not fit, the buffer goes
// out first (bufio split lines at its buffer size).
func TestAppendFileWritesWholeLines(t *testing.T) {
	ff := &fakeFile{limit: 1 << 30}
	a := &appendFile{name: "packets.log", path: "/x/packets.log", f: ff, buf: make([]byte, 0, 100)}
	var want []byte
	for i := 0; i < 200; i++ {
		a.write(testLine(i))
		want = append(want, testLine(i)...)
	}
	big := append(bytes.Repeat([]byte("b"), 250), '\n')
	a.write(big)
	want = append(want, big...)
	a.write(testLine(7))
	want = append(want, testLine(7)...)
	if err := a.flush(); err != nil {
		t.Fatal(err)
	}
	for _, w := range ff.writes {
		if w[len(w)-1] != '\n' || (len(w) > 100 && !bytes.Equal(w, big)) {
			t.Fatalf("write of %d bytes not made of whole lines within the buffer: %q", len(w), w)
		}
	}
	if !bytes.Equal(ff.data, want) {
		t.Fatal("file content differs from the lines written")
	}
}

// A full disk: a short write is cut back to the last complete line, every
// line not written is counted, the error is reported once, and writing
// resumes when space comes back.
func TestAppendFileFullDisk(t *testing.T) {
	for _, failTrunc := range []bool{false, true} {
		t.Run(fmt.Sprintf("failTrunc=%v", failTrunc), func(t *testing.T) {
			ff := &fakeFile{limit: 1000}
			a := &appendFile{name: "packets.log", path: "/x/packets.log", f: ff, buf: make([]byte, 0, 256)}
			errs := 0
			n := 0
			write := func(k int) {
				for ; k > 0; k-- {
					a.write(testLine(n))
					n++
					if n%10 == 0 {
						if err := a.flush(); err != nil {
							errs++
							if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "packets.log") {
								t.Errorf("flush error %v", err)
							}
						}
					}
				}
			}
			// a failed cut-back leaves the torn tail until the next try
			ff.failTrunc = failTrunc
			write(100)
			ff.failTrunc = false
			write(20) // still full: the tail is cut now
			if errs != 1 {
				t.Errorf("%d flush errors while the disk was full, want 1", errs)
			}
			got := linesOf(t, ff.data)
			if uint64(len(got))+a.lost.Load() != uint64(n) || a.lost.Load() == 0 {
				t.Fatalf("%d lines written + %d lost != %d", len(got), a.lost.Load(), n)
			}
			// space comes back
			ff.limit = 1 << 20
			before := len(got)
			write(50)
			a.flush()
			got = linesOf(t, ff.data)
			if len(got) != before+50 || uint64(len(got))+a.lost.Load() != uint64(n) {
				t.Fatalf("after space came back: %d lines, %d lost, %d written", len(got), a.lost.Load(), n)
			}
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("lines out of order: %v", got)
				}
			}
		})
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a temp dir.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	nstest.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

var packetLine = regexp.MustCompile(`^packet\{sock="0x[0-9a-f]+",seq="[0-9]+",ack="[0-9]+",mac_time="-",ip_time="-",tcp_time="-",http_info="-",rx="[01]"\}$`)

// The real thing: fill a 256 KiB tmpfs through Files.
func TestFilesFullTmpfs(t *testing.T) {
	dir := filepath.Join(mountTmpfs(t, "256k"), "data")
	fs, err := OpenFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000 // ~1.2 MB of packets.log
	var conns [][]byte
	flushErrs, connErrs := 0, 0
	for i := 0; i < n; i++ {
		line := fmt.Appendf(nil, `packet{sock="0x%x",seq="%d",ack="%d",mac_time="-",ip_time="-",tcp_time="-",http_info="-",rx="%d"}`+"\n", 0xffff888100000000+uint64(i), 1000000+i, 2000000+i, i%2)
		fs.Packet(line)
		if i%10 == 0 {
			fs.Error(fmt.Appendf(nil, `error{sock="0x1",seq="%d",ack="0",reason="Invalid SEQ"}`+"\n", i))
		}
		if i%500 == 0 {
			snap := bytes.Repeat(fmt.Appendf(nil, `connection{pid="%d",sock="0x2",src="127.0.0.1:1",dst="127.0.0.1:2",is_server="0"}`+"\n", i), 30)
			conns = append(conns, snap)
			if err := fs.WriteConnects(snap); err != nil {
				connErrs++
			}
			if err := fs.Flush(); err != nil {
				flushErrs++
				if !errors.Is(err, syscall.ENOSPC) {
					t.Errorf("flush: %v", err)
				}
			}
		}
	}
	if flushErrs != 1 || connErrs > 1 {
		t.Errorf("Flush reported %d errors, WriteConnects %d: want exactly one, at most one", flushErrs, connErrs)
	}
	err = fs.Close()
	var le *LostError
	if !errors.As(err, &le) || le.PacketLines == 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Close = %v, want a LostError with packets.log lines lost (ENOSPC)", err)
	}
	if !strings.Contains(err.Error(), strconv.FormatUint(le.PacketLines, 10)+" packets.log lines") || strings.Contains(err.Error(), "\n") {
		t.Errorf("message does not name the lost lines in one line: %q", err)
	}
	lost := fs.Lost()
	b, _ := os.ReadFile(filepath.Join(dir, "packets.log"))
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Fatalf("packets.log empty or torn at its end (%d bytes)", len(b))
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for _, l := range lines {
		if !packetLine.MatchString(l) {
			t.Fatalf("torn line in packets.log: %q", l)
		}
	}
	if uint64(len(lines))+lost["packets_log_lines_lost"] != n {
		t.Errorf("packets.log: %d lines + %d lost != %d", len(lines), lost["packets_log_lines_lost"], n)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "err.log"))
	if got := uint64(bytes.Count(b, []byte("\n"))); got+lost["err_log_lines_lost"] != n/10 || (len(b) > 0 && b[len(b)-1] != '\n') {
		t.Errorf("err.log: %d lines + %d lost != %d (or torn)", got, lost["err_log_lines_lost"], n/10)
	}
	// connects.log is one of the snapshots, whole; no temp file is left.
	b, _ = os.ReadFile(filepath.Join(dir, "connects.log"))
	whole := len(b) == 0
	for _, s := range conns {
		whole = whole || bytes.Equal(b, s)
	}
	if !whole {
		t.Errorf("connects.log is not one of the snapshots: %d bytes", len(b))
	}
	if lost["connects_log_write_failures"] == 0 {
		t.Error("no connects.log failure counted on a full disk")
	}
	if _, err := os.Lstat(filepath.Join(dir, ".connects.log.tmp")); err == nil {
		t.Error("a half-written temp file was left behind")
	}
}

// A log file replaced by a symlink is refused by name; a symlinked data
// dir is followed.
func TestOpenFilesSymlinks(t *testing.T) {
	root := t.TempDir()
	victim := filepath.Join(root, "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	dir := filepath.Join(root, "d")
	os.Mkdir(dir, 0o700)
	link := filepath.Join(dir, "err.log")
	os.Symlink(victim, link)
	_, err := OpenFiles(dir)
	var se *SymlinkError
	if !errors.As(err, &se) || err.Error() != "refusing to write through a symlink: "+link {
		t.Errorf("OpenFiles = %v, want \"refusing to write through a symlink: %s\"", err, link)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Error("symlink target modified")
	}

	real := filepath.Join(root, "real")
	os.Mkdir(real, 0o700)
	os.Symlink(real, filepath.Join(root, "linkdir"))
	fs, err := OpenFiles(filepath.Join(root, "linkdir"))
	if err != nil {
		t.Fatalf("symlinked data dir: %v", err)
	}
	fs.Close()
	if _, err := os.Stat(filepath.Join(real, "packets.log")); err != nil {
		t.Error(err)
	}
}

func TestOpenFilesDataDirErrors(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o600)
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		_, err := OpenFiles(dir)
		var de *DataDirError
		if !errors.As(err, &de) {
			t.Errorf("OpenFiles(%s) = %v, want a DataDirError", dir, err)
		}
	}
}

func TestWriteReadyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ready")
	remove, err := WriteReadyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	st, _ := os.Lstat(path)
	if string(b) != fmt.Sprintf("%d\n", os.Getpid()) || st.Mode().Perm() != 0o600 {
		t.Errorf("ready file %q mode %v", b, st.Mode())
	}
	remove()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Error("ready file not removed")
	}

	// a stale file of a previous run is overwritten
	os.WriteFile(path, []byte("999999999999\n"), 0o644)
	remove, err = WriteReadyFile(path)
	if b, _ := os.ReadFile(path); err != nil || string(b) != fmt.Sprintf("%d\n", os.Getpid()) {
		t.Errorf("stale ready file: %v %q", err, b)
	}
	// not ours any more: left alone
	os.Remove(path)
	os.WriteFile(path, []byte("someone else\n"), 0o600)
	remove()
	if _, err := os.Lstat(path); err != nil {
		t.Error("removed a file that was not ours")
	}
	os.Remove(path)

	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	os.Symlink(victim, path)
	if _, err := WriteReadyFile(path); err == nil || err.Error() != "refusing to write through a symlink: "+path {
		t.Errorf("symlink: %v", err)
	}
	hard := filepath.Join(dir, "hard")
	os.Link(victim, hard)
	if _, err := WriteReadyFile(hard); err == nil {
		t.Error("wrote through a hard link")
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Error("target modified")
	}
}

// TestAppendFilePrealloc: on ext4 an append log's blocks are allocated
// ahead of its writes (preallocStep), and what is past its last line is
// given back at Close; the lines are as written.
func TestAppendFilePrealloc(t *testing.T) {
	dir := t.TempDir()
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil || sfs.Type != unix.EXT4_SUPER_MAGIC {
		t.Skipf("%s is not on ext4", dir)
	}
	fs, err := OpenFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := 0; len(want) < 3<<20; i++ {
		fs.Packet(testLine(i))
		want = append(want, testLine(i)...)
	}
	if err := fs.Flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "packets.log")
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(len(want)) || st.Blocks*512 < st.Size+preallocStep/2 {
		t.Errorf("while open: size %d, allocated %d: want the size written and ~%d more allocated", st.Size, st.Blocks*512, preallocStep)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > st.Size+(64<<10) {
		t.Errorf("after Close: %d allocated for %d bytes: the blocks past the end were not given back", st.Blocks*512, st.Size)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
		t.Error("packets.log differs from the lines written")
	}
}

// failAlloc is a file whose blocks cannot be allocated ahead (a full disk).
type failAlloc struct {
	fakeFile
	calls int
}

func (f *failAlloc) Allocate(off, n int64) error { f.calls++; return syscall.ENOSPC }

// A failing allocation ends preallocation for the file; writing goes on.
func TestAppendFilePreallocFails(t *testing.T) {
	ff := &failAlloc{fakeFile: fakeFile{limit: 1 << 30}}
	a := &appendFile{name: "packets.log", path: "/x/packets.log", f: ff, buf: make([]byte, 0, 100), prealloc: true}
	var want []byte
	for i := 0; i < 200; i++ {
		a.write(testLine(i))
		want = append(want, testLine(i)...)
	}
	if err := a.flush(); err != nil {
		t.Fatal(err)
	}
	if ff.calls != 1 || a.prealloc {
		t.Errorf("%d allocations tried, prealloc %v: want one, then off", ff.calls, a.prealloc)
	}
	if !bytes.Equal(ff.data, want) {
		t.Fatal("file content differs from the lines written")
	}
}
