// Package nsclean deletes named network namespaces (/run/netns/NAME): the
// ones a test or a bench run is done with, and the ones earlier runs left
// behind when they were killed before their cleanup ran.
//
// Namespaces it may sweep are named <prefix><pid>[-...], where pid is the
// process that created them: a namespace is stale once that process is gone.
// It does not import testing, so that programs (bench/nwbench) can use it.
package nsclean

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Dir is where named network namespaces live.
const Dir = "/run/netns"

// CreatorPid returns the pid in a namespace name <prefix><pid>[-...], or
// false if name is not of that form.
func CreatorPid(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	pidStr, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// Stale lists the namespaces named <prefix><pid>[-...] whose creator pid no
// longer exists. Names of live processes, and other names, are never listed.
func Stale(prefix string) []string {
	ents, _ := os.ReadDir(Dir)
	var out []string
	for _, e := range ents {
		pid, ok := CreatorPid(e.Name(), prefix)
		if !ok {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // creator still alive
		}
		out = append(out, e.Name())
	}
	return out
}

// Sweep deletes the namespaces Stale(prefix) lists, calling logf (if not
// nil) before each, and returns their names.
func Sweep(prefix string, logf func(format string, args ...any)) []string {
	names := Stale(prefix)
	for _, name := range names {
		if logf != nil {
			logf("removing stale namespace %s", name)
		}
		if err := Delete(name); err != nil && logf != nil {
			logf("cleanup: %v", err)
		}
	}
	return names
}

// Delete kills the processes left in the named namespace (waiting up to
// about half a second for them to go) and deletes it (ip netns del, which
// fails if there is no such namespace).
func Delete(name string) error {
	for attempt := 0; attempt < 50; attempt++ {
		pids := Pids(name)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "del", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip netns del %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}

// Pids lists the live (non-zombie) processes in the named namespace, other
// than this one. Zombies have already dropped their namespace references.
func Pids(name string) []int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}
