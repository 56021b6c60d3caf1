package nsclean

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestCreatorPid(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		want         int
	}{
		{"nwb-4242-a", "nwb-", 4242}, {"nwb-4242-b", "nwb-", 4242}, {"nwb-17", "nwb-", 17},
		{"nwt-99-3-ab12", "nwt-", 99}, {"nwt-99-mgr", "nwt-", 99},
	} {
		if pid, ok := CreatorPid(tc.name, tc.prefix); !ok || pid != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, pid, ok, tc.want)
		}
	}
	for _, name := range []string{"nwb-x-a", "nwb--a", "nwb-0-a", "nwb--5-a", "other-4242-a", "nwtest-1", "nwt-1-a"} {
		if _, ok := CreatorPid(name, "nwb-"); ok {
			t.Errorf("%s taken for a nwb- namespace", name)
		}
	}
}

// TestSweep creates a namespace named after a pid that is gone and one
// named after this (live) process: Sweep deletes the first only.
func TestSweep(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("test needs root, and CI is set: refusing to skip")
		}
		t.Skip("test needs root")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	const prefix = "nwsweep-"
	dead := fmt.Sprintf("%s%d-x", prefix, cmd.Process.Pid) // reaped: gone
	live := fmt.Sprintf("%s%d-x", prefix, os.Getpid())
	for _, name := range []string{dead, live} {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() {
			if _, err := os.Stat(filepath.Join(Dir, name)); err == nil {
				_ = Delete(name)
			}
		})
	}
	if got := Sweep(prefix, t.Logf); !slices.Equal(got, []string{dead}) {
		t.Errorf("Sweep = %q, want [%s]", got, dead)
	}
	if _, err := os.Stat(filepath.Join(Dir, dead)); err == nil {
		t.Errorf("%s still exists", dead)
	}
	if _, err := os.Stat(filepath.Join(Dir, live)); err != nil {
		t.Errorf("%s (live creator) deleted: %v", live, err)
	}
	if err := Delete(live); err != nil {
		t.Fatal(err)
	}
	if err := Delete(live); err == nil {
		t.Error("Delete of a missing namespace: no error")
	}
}
