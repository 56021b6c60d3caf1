package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
)

func runBin(t *testing.T, cred *syscall.Credential, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin := nwtest.Binary(t)
	cmd := exec.Command(bin, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{"-d", "0"}, {"--sport=70000"}, {"--bogus"}, {"--duration=soon"}, {"-o", "yaml"}, {"stray"}} {
		out, errOut, code := runBin(t, nil, args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: code %d stdout %q stderr %q (want exit 2 and one stderr line)", args, code, out, errOut)
		}
	}
	for _, a := range []string{"--help", "-?", "--usage"} {
		out, _, code := runBin(t, nil, a)
		if code != 0 || !strings.Contains(out, "Usage: netwatcher") {
			t.Errorf("%s: code %d out %q", a, code, out)
		}
	}
}

func TestNotRootSaysWhatIsMissing(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nwtest.Binary(t)
	// the binary must be reachable by an unprivileged user
	dir, err := os.MkdirTemp("", "nwbin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	data, _ := os.ReadFile(bin)
	pub := filepath.Join(dir, "netwatcher")
	if err := os.WriteFile(pub, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pub, "--data-dir", filepath.Join(dir, "d"), "--duration", "1s")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v: %s", err, out)
	}
	if !strings.Contains(string(out), "not root") || strings.Count(string(out), "\n") != 1 {
		t.Errorf("want one line naming the missing privilege: %q", out)
	}
}

// TestSignalsAndDuration: SIGTERM and --duration both end with exit 0,
// complete files and a final stats record.
func TestSignalsAndDuration(t *testing.T) {
	nstest.RequireRoot(t)
	r := nwtest.Start(t, "-x")
	r.Stop()
	if len(r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "stats" })) != 1 {
		t.Error("no final stats record")
	}
	for _, f := range []string{"connects.log", "packets.log", "err.log"} {
		st, err := os.Lstat(filepath.Join(r.DataDir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", f, err, st.Mode())
		}
	}
	st, _ := os.Stat(r.DataDir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v", st.Mode().Perm())
	}

	dir := t.TempDir()
	start := time.Now()
	_, errOut, code := runBin(t, nil, "--duration", "1s", "-q", "--data-dir", dir)
	if code != 0 || time.Since(start) > 15*time.Second {
		t.Errorf("--duration 1s: code %d after %v: %s", code, time.Since(start), errOut)
	}
}

func TestSymlinkedLogIsNotFollowed(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "victim")
	os.WriteFile(target, []byte("keep"), 0o600)
	os.MkdirAll(filepath.Join(dir, "d"), 0o700)
	os.Symlink(target, filepath.Join(dir, "d", "packets.log"))
	_, errOut, code := runBin(t, nil, "--duration", "1s", "-q", "--data-dir", filepath.Join(dir, "d"))
	if code == 0 {
		t.Errorf("followed or ignored a symlinked log: %s", errOut)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Error("symlink target was modified")
	}
}
