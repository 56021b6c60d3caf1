package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// column is one kernel of the compatibility table.
type column struct {
	label string
	res   *logResult
}

// writeTable writes the feature × kernel compatibility table in markdown.
// A cell is the status; a status other than ok carries the first clause of
// its detail (what is missing), layer_times always its n/6 count.
func writeTable(w io.Writer, cols []column) {
	fmt.Fprint(w, "| feature |")
	for _, c := range cols {
		fmt.Fprintf(w, " %s |", c.label)
	}
	fmt.Fprint(w, "\n|---|")
	for range cols {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for _, name := range tableRows {
		fmt.Fprintf(w, "| %s |", name)
		for _, c := range cols {
			fmt.Fprintf(w, " %s |", cell(c.res, name))
		}
		fmt.Fprintln(w)
	}
}

func cell(res *logResult, name string) string {
	f, found := res.features[name]
	if !found {
		return "no result"
	}
	short := shortDetail(f)
	switch {
	case f.status == ok && name != "layer_times":
		return ok
	case short == "" || short == "none":
		return f.status
	}
	return f.status + ": " + short
}

// shortDetail is the first clause of a detail, safe in a table cell.
func shortDetail(f feature) string {
	d, _, _ := strings.Cut(f.detail, "; ")
	d = strings.ReplaceAll(d, "|", "/")
	return clip(strings.TrimSpace(d), 100)
}

// runTable implements "nwkcheck table LABEL=LOG...".
func runTable(w io.Writer, args []string) error {
	var cols []column
	for _, a := range args {
		label, path, found := strings.Cut(a, "=")
		if !found {
			return fmt.Errorf("%q: want LABEL=LOGFILE", a)
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		res, err := parseLog(f)
		f.Close()
		if err != nil {
			return err
		}
		cols = append(cols, column{label, res})
	}
	writeTable(w, cols)
	return nil
}
