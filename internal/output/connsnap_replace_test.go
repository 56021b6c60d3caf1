package output

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestConnsReplaceKeepsReaders: connects.log is replaced by exchanging
// names (replaceConns), and the old snapshot is removed, not reused: a
// reader that opened connects.log before later snapshots reads the
// snapshot it opened, whole (a file is never written again once it is
// connects.log); no temp file is left; a symlink named connects.log is replaced, its target untouched.
func TestConnsReplaceKeepsReaders(t *testing.T) {
	fs, dir, path := connsTestFiles(t)
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("not ours\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	var w ConnsWriter
	snap := func(line string, n int) []byte {
		var want []byte
		b := w.Begin(fs)
		for range n {
			want = append(want, line...)
			b = w.Put(append(b, line...))
		}
		if err := w.End(b); err != nil {
			t.Fatal(err)
		}
		return want
	}
	first := snap("connection{conn_id=\"1\"}\n", 100000) // 2.4 MB: several chunks
	if b, _ := os.ReadFile(victim); string(b) != "not ours\n" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
		t.Fatalf("connects.log is not a regular file: %v", err)
	}
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i, line := range []string{"connection{conn_id=\"2\"}\n", "connection{conn_id=\"3\"}\n", "x{}\n"} {
		want := snap(line, 1000*(i+1))
		if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
			t.Fatalf("snapshot %d: connects.log has %d bytes, want %d", i+2, len(got), len(want))
		}
	}
	var rd bytes.Buffer
	_, err = rd.ReadFrom(r)
	if got := rd.Bytes(); err != nil || !bytes.Equal(got, first) {
		t.Errorf("a reader of the first snapshot read %d bytes of it (%v), want all %d unchanged", len(got), err, len(first))
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() == ".connects.log.tmp" {
			t.Error("temp file left")
		}
	}
}
