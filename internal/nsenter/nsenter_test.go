package nsenter

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// fn runs in the target namespace, the caller's thread stays where it was,
// and fn's error comes back.
func TestDoEntersAndReturns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	name := "nwnsenter" + string(rune('a'+os.Getpid()%26))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	path := "/run/netns/" + name
	want, self := inode(t, path), inode(t, "/proc/self/ns/net")
	var inside uint64
	boom := errors.New("boom")
	err := DoPath(path, func() error {
		inside = inode(t, "/proc/thread-self/ns/net")
		return boom
	})
	if !errors.Is(err, boom) || inside != want {
		t.Errorf("err %v, inside %d want %d", err, inside, want)
	}
	for i := 0; i < 20; i++ { // no thread left behind in the namespace
		if got := inode(t, "/proc/thread-self/ns/net"); got != self {
			t.Fatalf("a thread stayed in the namespace: %d", got)
		}
	}
	if err := DoPath("/nonexistent", func() error { return nil }); err == nil {
		t.Error("no error for a missing namespace")
	}
}
