package main

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ (only for an intended change of the report's format)")

var goldenMeta = reportMeta{
	now:      time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	machine:  "Linux 6.1.0-test, nproc 2, Test CPU, 8 GiB RAM",
	revision: "abc1234",
	nproc:    2,
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) == string(want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("%s differs at line %d:\n got: %q\nwant: %q", path, i+1, g, w)
		}
	}
	t.Fatalf("%s differs", path)
}

// The goldens in testdata/ were written by the code before it was split by
// role (with the date, machine and revision lines replaced by goldenMeta's):
// the report must stay byte-identical.
func TestReportGolden(t *testing.T) {
	for _, g := range goldenCases(t) {
		t.Run(g.name, func(t *testing.T) {
			rep := renderReport(goldenMeta, reportInput{o: g.o, notes: g.notes,
				wls: namesToWorkloads(t, g.wls), cfgs: namesToConfigs(t, g.cfgs), results: g.results, elapsed: goldenElapsed})
			checkGolden(t, "testdata/report_"+g.name+".md", []byte(rep))
		})
	}
}

func TestResultsJSONGolden(t *testing.T) {
	for _, g := range goldenCases(t) {
		t.Run(g.name, func(t *testing.T) {
			js, err := resultsJSON(g.results)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "testdata/results_"+g.name+".json", js)
		})
	}
}

func TestWriteResults(t *testing.T) {
	dir := t.TempDir()
	out := dir + "/sub/latest.md"
	rs := baselineResults()
	writeResults(out, "# report\n", rs)
	md, err := os.ReadFile(out)
	if err != nil || string(md) != "# report\n" {
		t.Fatalf("report: %q %v", md, err)
	}
	js, err := os.ReadFile(dir + "/sub/latest.json")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile("testdata/results_baseline.json")
	if string(js) != string(want) {
		t.Fatalf("json:\n%s\nwant:\n%s", js, want)
	}
}
