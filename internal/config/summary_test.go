package config

import (
	"errors"
	"io"
	"testing"
)

func TestSummaryFlag(t *testing.T) {
	for _, args := range [][]string{{"--summary"}, {"--summary", "-t"}, {"--summary", "-t", "--sample=10"}} {
		c, err := Parse(args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !c.Summary || !c.Quiet {
			t.Errorf("%v: Summary %v Quiet %v, want both (--summary implies -q)", args, c.Summary, c.Quiet)
		}
	}
	for _, args := range [][]string{{"--summary", "--no-packets"}, {"--summary", "-i"}, {"--summary", "-ti"}} {
		_, err := Parse(args, io.Discard)
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
