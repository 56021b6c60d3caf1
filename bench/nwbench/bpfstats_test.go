package main

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

const mapFdinfo = `pos:	0
flags:	02000002
mnt_id:	15
ino:	2067
map_type:	27
key_size:	0
value_size:	0
max_entries:	16777216
map_flags:	0x0
map_extra:	0x0
memlock:	16801792
map_id:	101
frozen:	0
`

const progFdinfo = `pos:	0
flags:	02000000
mnt_id:	15
ino:	2067
prog_type:	26
prog_jited:	1
prog_tag:	a04f5eef06a7f555
memlock:	4096
prog_id:	%s
run_time_ns:	%s
run_cnt:	%s
recursion_misses:	0
verified_insns:	1200
`

func progInfo(id, ns, cnt string) map[string]string {
	return parseFdinfo(fmt.Sprintf(progFdinfo, id, ns, cnt))
}

func TestParseFdinfo(t *testing.T) {
	f := parseFdinfo(mapFdinfo)
	if f["memlock"] != "16801792" || f["map_id"] != "101" || f["flags"] != "02000002" || f["map_extra"] != "0x0" {
		t.Fatalf("got %v", f)
	}
	if len(parseFdinfo("")) != 0 {
		t.Fatal("empty")
	}
}

func TestBPFObjectsMaps(t *testing.T) {
	var o bpfObjects
	o.addMap(parseFdinfo(mapFdinfo))
	o.addMap(parseFdinfo(mapFdinfo)) // a second fd of the same map
	o.addMap(parseFdinfo("memlock:\t4096\nmap_id:\t102\n"))
	o.addMap(nil) // fdinfo unreadable (fd closed meanwhile)
	if o.maps != 2 || o.mapMemlock != 16801792+4096 {
		t.Fatalf("got %d maps, %v bytes", o.maps, o.mapMemlock)
	}
}

func TestBPFObjectsProgs(t *testing.T) {
	var o bpfObjects
	o.addProg(progInfo("7", "1500000", "10000"))
	o.addProg(progInfo("7", "1500000", "10000")) // the same program twice
	o.addProg(progInfo("8", "500", "5"))
	o.addProg(nil)
	if o.progs != 2 || !o.progStatsOK || o.progRunNs != 1500500 || o.progRunCnt != 10005 {
		t.Fatalf("got %+v", o)
	}
	// Without BPF stats the kernel prints no run_time_ns.
	var n bpfObjects
	n.addProg(parseFdinfo("prog_type:\t26\nprog_id:\t9\n"))
	if n.progs != 1 || n.progStatsOK || n.progRunNs != 0 {
		t.Fatalf("no stats: %+v", n)
	}
}

func TestProcBPFMissing(t *testing.T) {
	if _, err := procBPF(-1); err == nil {
		t.Fatal("no error for a missing process")
	}
}

// The accounting's share of run_time_ns is measured, not assumed (root).
func TestStatsNs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if bpfStatsEnabled() {
		t.Skip("kernel.bpf_stats_enabled=1: no runs without the statistics")
	}
	off, err := measureEmpty()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := statsNs(off, off); err == nil {
		t.Error("calibrated without the statistics on")
	}
	fd, err := enableBPFStats()
	if err != nil {
		t.Fatal(err)
	}
	on, err := measureEmpty()
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := statsNs(off, on)
	if err != nil {
		t.Fatal(err)
	}
	if ns <= 0 || ns > on.runTime {
		t.Errorf("accounting per run %.1f ns, an empty program counted %.1f", ns, on.runTime)
	}
	t.Logf("test run %.1f ns a run without the statistics, %.1f with (%.1f counted): %.1f ns taken off per run", off.dur, on.dur, on.runTime, ns)
}

func TestStatsNsRules(t *testing.T) {
	for _, tc := range []struct {
		off, on emptyRuns
		want    float64
		ok      bool
	}{
		{emptyRuns{21, -1}, emptyRuns{88, 41.5}, 33.5, true},  // half the added cost
		{emptyRuns{21, -1}, emptyRuns{121, 41.5}, 41.5, true}, // never more than counted
		{emptyRuns{21, -1}, emptyRuns{88, -1}, 0, false},      // nothing counted
		{emptyRuns{90, -1}, emptyRuns{88, 41.5}, 0, false},    // no cost measured
	} {
		got, err := statsNs(tc.off, tc.on)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("statsNs(%v, %v) = %v, %v; want %v", tc.off, tc.on, got, err, tc.want)
		}
	}
}
