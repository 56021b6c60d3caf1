package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/netwatcher/netwatcher/internal/kernel"
)

// neverRuns lists the candidates of the hook table that no kernel of the
// matrix can run, with the reason. Everything else must have run on at
// least one kernel (a "HOOK prog" line in its log, printed by runs.sh from
// netwatcher's -v "attached" lines), not only loaded in the verifier.
var neverRuns = map[string]string{}

// candidate is one program of the hook table with where it attaches.
type candidate struct {
	prog  string
	where []string // "boundary kind target"
}

func allCandidates() []candidate {
	by := map[string]*candidate{}
	for _, b := range kernel.Table() {
		for _, c := range b.Candidates {
			x := by[c.Prog]
			if x == nil {
				x = &candidate{prog: c.Prog}
				by[c.Prog] = x
			}
			x.where = append(x.where, fmt.Sprintf("%s %s %s", b.Name, c.Kind, c.Target))
		}
	}
	var out []candidate
	for _, c := range by {
		slices.Sort(c.where)
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b candidate) int { return strings.Compare(a.where[0], b.where[0]) })
	return out
}

// ranOn reads "HOOK prog" lines of each log (named by the file, without .log).
func ranOn(logs []string) (map[string][]string, error) {
	ran := map[string][]string{}
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(filepath.Base(path), ".log")
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(strings.TrimRight(sc.Text(), "\r"), "HOOK "); ok {
				if p = strings.TrimSpace(p); !slices.Contains(ran[p], name) {
					ran[p] = append(ran[p], name)
				}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return ran, nil
}

// hooksReport writes the coverage table (markdown) and returns the
// candidates that never ran and are not known to be unrunnable.
func hooksReport(w io.Writer, cands []candidate, ran map[string][]string) (never []string) {
	fmt.Fprintln(w, "| candidate (boundary, kind, target) | program | ran on |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, c := range cands {
		on := strings.Join(ran[c.prog], ", ")
		switch {
		case on != "":
		case neverRuns[c.prog] != "":
			on = "never: " + neverRuns[c.prog]
		default:
			on = "**never**"
			never = append(never, c.prog)
		}
		fmt.Fprintf(w, "| %s | `%s` | %s |\n", strings.Join(c.where, "; "), c.prog, on)
	}
	return never
}

// cmdHooks: nwkcheck hooks [--partial] LOG... Fails when a candidate ran
// nowhere (unless --partial: a subset of the matrix).
func cmdHooks(args []string, stdout, stderr io.Writer) int {
	partial := false
	if len(args) > 0 && args[0] == "--partial" {
		partial, args = true, args[1:]
	}
	ran, err := ranOn(args)
	if err != nil {
		fmt.Fprintln(stderr, "nwkcheck hooks:", err)
		return 2
	}
	never := hooksReport(stdout, allCandidates(), ran)
	if len(never) > 0 && !partial {
		fmt.Fprintf(stdout, "HOOKS never ran on any kernel: %s\n", strings.Join(never, " "))
		return 1
	}
	return 0
}
