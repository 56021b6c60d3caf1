package main

import (
	"math"
	"reflect"
	"testing"
)

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{
		0: "0", 7: "7", 999: "999", 1000: "1,000", 14115.4: "14,115", 110651: "110,651",
		1718000: "1,718,000", 10e9: "10,000,000,000", -1234567: "-1,234,567", -12: "-12", 999.6: "1,000",
	} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestFmtOr(t *testing.T) {
	if got := fmtOr(true, "%.2f", 1.234); got != "1.23" {
		t.Error(got)
	}
	for _, tc := range []struct {
		ok bool
		v  float64
	}{{false, 1}, {true, math.NaN()}, {true, math.Inf(1)}, {true, math.Inf(-1)}} {
		if got := fmtOr(tc.ok, "%.2f", tc.v); got != "–" {
			t.Errorf("fmtOr(%v, %v) = %q", tc.ok, tc.v, got)
		}
	}
}

func TestMdEscape(t *testing.T) {
	if got := mdEscape("a | b\nc|d"); got != `a \| b c\|d` {
		t.Fatal(got)
	}
}

func TestLastLines(t *testing.T) {
	if got := lastLines("a\nb\nc\nd\n", 3); got != "b | c | d" {
		t.Error(got)
	}
	if got := lastLines("  only\n", 3); got != "only" {
		t.Error(got)
	}
	if got := lastLines("", 3); got != "" {
		t.Error(got)
	}
}

func TestUniq(t *testing.T) {
	if got := uniq([]string{"a(1)", "b(2)", "a(1)", "c(3)", "b(2)"}); !reflect.DeepEqual(got, []string{"a(1)", "b(2)", "c(3)"}) {
		t.Fatal(got)
	}
	if uniq(nil) != nil {
		t.Fatal("uniq(nil)")
	}
}
