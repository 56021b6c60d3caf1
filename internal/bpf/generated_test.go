package bpf

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGeneratedObjectsAreUpToDate rebuilds every concern's BPF object with
// the exact `go:generate` line of its gen.go into a temporary folder and
// requires the committed .o and .go files to be byte-identical: the
// committed objects are what runs, so they must come from the sources.
func TestGeneratedObjectsAreUpToDate(t *testing.T) {
	// The gen.go lines pin the compiler (clang-14, Debian 12's): another
	// clang makes other bytes from the same sources. Without it the check
	// is skipped, except in CI (scripts/deps.sh test installs it).
	if _, err := exec.LookPath("clang-14"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("clang-14 missing in CI (scripts/deps.sh test installs it)")
		}
		t.Skip("clang-14 not installed (apt-get install clang-14 llvm-14 libbpf-dev)")
	}
	gens, _ := filepath.Glob("../*/gen.go")
	if len(gens) < 4 {
		t.Fatalf("found only %d gen.go files", len(gens))
	}
	re := regexp.MustCompile(`(?m)^//go:generate go tool bpf2go (.*)$`)
	for _, gen := range gens {
		dir := filepath.Dir(gen)
		src, err := os.ReadFile(gen)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range re.FindAllSubmatch(src, -1) {
			t.Run(fmt.Sprintf("%s/%d", filepath.Base(dir), i), func(t *testing.T) {
				out := t.TempDir()
				args := append([]string{"tool", "bpf2go", "-output-dir", out}, splitArgs(string(m[1]))...)
				cmd := exec.Command("go", args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "GOPACKAGE="+filepath.Base(dir))
				if o, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("bpf2go: %v\n%s", err, o)
				}
				fresh, _ := filepath.Glob(filepath.Join(out, "*"))
				if len(fresh) == 0 {
					t.Fatal("bpf2go wrote nothing")
				}
				for _, f := range fresh {
					want, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					got, err := os.ReadFile(filepath.Join(dir, filepath.Base(f)))
					if err != nil {
						t.Fatalf("%s is generated but not committed: %v", filepath.Base(f), err)
					}
					if !bytes.Equal(got, want) {
						t.Errorf("%s/%s differs from what `go generate` makes from the sources: run make generate", dir, filepath.Base(f))
					}
				}
			})
		}
	}
}

// splitArgs splits a go:generate argument list, honouring double quotes.
func splitArgs(s string) []string {
	var out []string
	var cur strings.Builder
	inq, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inq = !inq
			have = true
		case r == ' ' && !inq:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}
