package output

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestConnsWriterSnapshot: a snapshot written in chunks as it is formatted
// replaces connects.log only when complete (a reader meanwhile sees the
// previous one), equals the lines given, and leaves no temp file.
func TestConnsWriterSnapshot(t *testing.T) {
	fs, dir, path := connsTestFiles(t)
	var w ConnsWriter
	var prev []byte
	for round, n := range []int{60000, 10, 0, 30000} { // 60000 lines: several chunks
		var want []byte
		b := w.Begin(fs)
		for i := 0; i < n; i++ {
			line := fmt.Appendf(nil, "connection{pid=\"%d\",sock=\"0x%x\",conn_id=\"%d\"}\n", round, i, i)
			want = append(want, line...)
			b = w.Put(append(b, line...))
			if i == n/2 && prev != nil {
				if got, _ := os.ReadFile(path); !bytes.Equal(got, prev) {
					t.Fatalf("round %d: connects.log changed before the snapshot was complete", round)
				}
			}
		}
		if cap(b) > 2*connsChunk {
			t.Errorf("round %d: buffer grew to %d", round, cap(b))
		}
		if err := w.End(append(b, "listener{}\n"...)); err != nil {
			t.Fatal(err)
		}
		want = append(want, "listener{}\n"...)
		if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
			t.Fatalf("round %d: connects.log has %d bytes, want %d", round, len(got), len(want))
		}
		if _, err := os.Stat(filepath.Join(dir, ".connects.log.tmp")); !os.IsNotExist(err) {
			t.Errorf("round %d: temp file left: %v", round, err)
		}
		prev = want
	}
}

// TestConnsWriterFailure: a snapshot that cannot replace connects.log is
// dropped with its temp file, counted each time and reported once, and the
// next one that can is written.
func TestConnsWriterFailure(t *testing.T) {
	dir := t.TempDir()
	fs, err := OpenFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "connects.log")
	os.Remove(path)
	if err := os.Mkdir(path, 0o700); err != nil { // rename onto a directory fails
		t.Fatal(err)
	}
	var w ConnsWriter
	reported := 0
	for range 3 {
		b := w.Begin(fs)
		for i := 0; i < 2000; i++ {
			b = w.Put(append(b, "connection{conn_id=\"1\"}\n"...))
		}
		if err := w.End(b); err != nil {
			reported++
		}
		if _, err := os.Stat(filepath.Join(dir, ".connects.log.tmp")); !os.IsNotExist(err) {
			t.Errorf("temp file left after a failure: %v", err)
		}
	}
	if n := fs.Lost()["connects_log_write_failures"]; reported != 1 || n != 3 {
		t.Errorf("reported %d failures, counted %d: want 1 and 3", reported, n)
	}
	os.Remove(path)
	if err := w.End(w.Begin(fs)); err != nil {
		t.Fatalf("after the cause went away: %v", err)
	}
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		t.Errorf("connects.log not written after the failures: %v", err)
	}
	if err := fs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
}

// connsTestFiles opens Files in a temp dir (closed at the end of the test)
// and returns it with the dir and connects.log's path.
func connsTestFiles(t *testing.T) (*Files, string, string) {
	t.Helper()
	dir := t.TempDir()
	fs, err := OpenFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs, dir, filepath.Join(dir, "connects.log")
}
