package timeload

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netwatcher/netwatcher/internal/event"
)

const ms = uint64(1e6)

var noMac = uint8(event.MissingMac) // rx loopback-like records: no MAC time

func ip(ns uint64) [event.TimeLayers]uint64 { return [event.TimeLayers]uint64{0, ns, 1000} }

// feed sends n rx records of key k with IP time v, 1 ms apart from *ts on;
// it returns the alerts made.
func feed(d *Detector, k Key, ts *uint64, n int, v uint64) []event.Anomaly {
	var out []event.Anomaly
	var buf [event.TimeLayers]event.Anomaly
	for range n {
		*ts += ms
		m := d.Observe(k, *ts, true, ip(v), noMac, &buf)
		out = append(out, buf[:m]...)
	}
	return out
}

func TestWarmupNoAlert(t *testing.T) {
	d := New(4)
	k := Key{Sock: 1, EstLo: 2}
	ts := uint64(1)
	// wildly varying samples during warm-up: never an alert
	var buf [event.TimeLayers]event.Anomaly
	for i := range Warmup {
		v := uint64(2000)
		if i%10 == 9 {
			v = 500_000
		}
		ts += ms
		if n := d.Observe(k, ts, true, ip(v), noMac, &buf); n != 0 {
			t.Fatalf("alert during warm-up at sample %d", i+1)
		}
	}
	// the EWMA after warm-up is the mean of the warm-up samples, each
	// clamped to 2x the mean so far: 90% at 2 µs and 10% spikes at 2x the
	// average settle at 0.9*2000/(1-0.1*2) = 2250 ns (the plain mean would
	// be 51,800 ns: the spikes)
	if got := d.conns[k].ewma[event.TimeIP][1]; got < 2000 || got > 2500 {
		t.Errorf("ewma after warm-up = %v, want ~2250", got)
	}
	if d.Alerts+d.Suppressed != 0 {
		t.Errorf("counted %d/%d during warm-up", d.Alerts, d.Suppressed)
	}
}

func TestAlertFactorAndFloor(t *testing.T) {
	d := New(4)
	k := Key{Sock: 1}
	ts := uint64(1)
	feed(d, k, &ts, Warmup+50, 10_000) // steady at 10 µs
	if a := feed(d, k, &ts, 10, 39_000); len(a) != 0 {
		t.Fatalf("3.9x alerted: %+v", a)
	}
	feed(d, k, &ts, 20, 10_000)
	// lone spikes (Confirm-1 in a row) are jitter
	for range 5 {
		if a := feed(d, k, &ts, Confirm-1, 400_000); len(a) != 0 {
			t.Fatalf("%d spikes in a row alerted", Confirm-1)
		}
		feed(d, k, &ts, 1, 10_000)
	}
	feed(d, k, &ts, 20, 10_000)
	base := d.conns[k].ewma[event.TimeIP][1]
	a := feed(d, k, &ts, Confirm, 400_000)
	if len(a) != 1 || d.Counts[event.TimeIP][1] != 1 || d.Alerts != 1 {
		t.Fatalf("40x %d in a row: %d alerts, counts %v", Confirm, len(a), d.Counts)
	}
	x := a[0]
	if x.Layer != event.TimeIP || !x.Rx || x.ValueNs != 400_000 || x.Factor != 4 || x.Samples != Warmup+50+10+20+5*Confirm+20+Confirm || x.Suppressed != 0 || x.Run != Confirm {
		t.Errorf("alert %+v", x)
	}
	// the baseline is the EWMA before the run (the spikes were averaged
	// in at the threshold: it is above 10 µs)
	if x.EWMANs != base || base < 10_000 || x.Ratio() != 400_000/base {
		t.Errorf("ewma %v ratio %v", x.EWMANs, x.Ratio())
	}
	// the floor: a tiny baseline times 10 is still under MinExcessNs above it
	d2 := New(4)
	ts = 1
	feed(d2, k, &ts, Warmup+10, 300)
	if a := feed(d2, k, &ts, Confirm, 3000); len(a) != 0 {
		t.Errorf("a jump of %d ns (< MinExcessNs) alerted", 3000-300)
	}
	if a := feed(d2, k, &ts, Confirm, 300+MinExcessNs+1000); len(a) != 1 {
		t.Errorf("a jump over MinExcessNs did not alert")
	}
}

func TestRateLimitPerConnection(t *testing.T) {
	d := New(4)
	a, b := Key{Sock: 1}, Key{Sock: 2}
	tsA, tsB := uint64(1), uint64(1)
	feed(d, a, &tsA, Warmup, 10_000)
	feed(d, b, &tsB, Warmup, 10_000)
	// A gets slower and slower (each packet above 4x the adapting EWMA),
	// 100 ms apart, for 2.5 s: 3 alerts (t0, t0+1s, t0+2s), the rest
	// suppressed and carried by the next alert
	var alerts []event.Anomaly
	var buf [event.TimeLayers]event.Anomaly
	anomalies := 0
	for range 25 {
		v := uint64(5*d.conns[a].ewma[event.TimeIP][1]) + MinExcessNs
		tsA += 100 * ms
		before := d.Counts[event.TimeIP][1]
		n := d.Observe(a, tsA, true, ip(v), noMac, &buf)
		alerts = append(alerts, buf[:n]...)
		anomalies += int(d.Counts[event.TimeIP][1] - before)
	}
	if len(alerts) != 3 {
		t.Fatalf("%d alerts in 2.5 s, want 3 (one per second)", len(alerts))
	}
	if alerts[0].Suppressed != 0 || alerts[1].Suppressed == 0 {
		t.Errorf("suppressed carried: %d, %d", alerts[0].Suppressed, alerts[1].Suppressed)
	}
	var carried uint64
	for _, x := range alerts {
		carried += x.Suppressed
	}
	if d.Alerts != 3 || int(d.Alerts+d.Suppressed) != anomalies || d.Suppressed < carried {
		t.Errorf("alerts %d suppressed %d anomalies %d carried %d", d.Alerts, d.Suppressed, anomalies, carried)
	}
	// B is not limited by A
	if x := feed(d, b, &tsB, Confirm, 1_000_000); len(x) != 1 {
		t.Errorf("connection B: %d alerts", len(x))
	}
}

func TestLastingShiftBecomesNormal(t *testing.T) {
	d := New(4)
	k := Key{Sock: 1}
	ts := uint64(1)
	feed(d, k, &ts, Warmup, 10_000)
	feed(d, k, &ts, 200, 400_000) // 40x for 200 packets
	// the clamped EWMA has caught up: 400 µs is normal now
	ts += 2 * Every
	if a := feed(d, k, &ts, 10, 400_000); len(a) != 0 {
		t.Errorf("still alerting after the shift: ewma %v", d.conns[k].ewma[event.TimeIP][1])
	}
	c := d.Counts[event.TimeIP][1]
	if c < 20 || c > 100 {
		t.Errorf("%d anomalies before the shift was absorbed (expected some tens)", c)
	}
}

func TestMissingAndDirections(t *testing.T) {
	d := New(4)
	k := Key{Sock: 1}
	var buf [event.TimeLayers]event.Anomaly
	ts := uint64(1)
	for range Warmup {
		ts += ms
		d.Observe(k, ts, false, [event.TimeLayers]uint64{20_000, 20_000, 20_000}, 0, &buf)
	}
	// rx is a direction of its own: not warmed up
	if n := d.Observe(k, ts+ms, true, [event.TimeLayers]uint64{900_000, 900_000, 900_000}, 0, &buf); n != 0 {
		t.Errorf("rx judged by tx's average")
	}
	// a missing boundary is no sample
	for i := range uint64(Confirm - 1) {
		d.Observe(k, ts+2*ms+i, false, [event.TimeLayers]uint64{900_000, 900_000, 900_000}, event.MissingMac|event.MissingTCP, &buf)
	}
	if n := d.Observe(k, ts+2*ms+Confirm, false, [event.TimeLayers]uint64{900_000, 900_000, 900_000}, event.MissingMac|event.MissingTCP, &buf); n != 1 || buf[0].Layer != event.TimeIP || buf[0].Rx {
		t.Errorf("missing: %d alerts %+v", n, buf[0])
	}
	if d.conns[k].n[event.TimeMac][0] != Warmup || d.conns[k].n[event.TimeIP][0] != Warmup+Confirm {
		t.Errorf("a missing MAC time was counted")
	}
	if n := d.Observe(k, ts+3*ms, false, [event.TimeLayers]uint64{}, event.MissingMac|event.MissingIP|event.MissingTCP, &buf); n != 0 {
		t.Errorf("nothing present alerted")
	}
}

func TestForgetAndIdle(t *testing.T) {
	d := New(4)
	ts := uint64(1)
	feed(d, Key{Sock: 1}, &ts, 5, 1000)
	feed(d, Key{Sock: 2}, &ts, 5, 1000)
	d.Forget(Key{Sock: 1})
	if d.Len() != 1 {
		t.Fatalf("len %d after Forget", d.Len())
	}
	ts += IdleNs + Every
	feed(d, Key{Sock: 3}, &ts, 1, 1000) // a new connection sweeps the idle one
	if d.Len() != 1 {
		t.Errorf("len %d after idle sweep, want 1", d.Len())
	}
}

func TestMaxConns(t *testing.T) {
	d := New(4)
	var buf [event.TimeLayers]event.Anomaly
	for i := range MaxConns + 10 {
		d.Observe(Key{Sock: uint64(i)}, 5, true, ip(1000), noMac, &buf)
	}
	if d.Len() != MaxConns || d.Untracked != 10 {
		t.Errorf("len %d untracked %d", d.Len(), d.Untracked)
	}
}

func BenchmarkObserve(b *testing.B) {
	d := New(4)
	var buf [event.TimeLayers]event.Anomaly
	ts := uint64(1)
	for i := range b.N {
		ts += 1000
		d.Observe(Key{Sock: uint64(i & 63)}, ts, i&1 == 0, [event.TimeLayers]uint64{1000, 2000, 3000}, 0, &buf)
	}
}

// The metric counts every anomaly (reported or suppressed), by layer and
// direction; all six series exist from the start.
func TestMetric(t *testing.T) {
	d := New(4)
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.Collector())
	k := Key{Sock: 1}
	ts := uint64(1)
	feed(d, k, &ts, Warmup, 10_000)
	feed(d, k, &ts, Confirm+5, 1_000_000) // 6 anomalies: 1 alert, 5 suppressed
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "netwatcher_anomalies_total" {
		t.Fatalf("gather: %v %v", mfs, err)
	}
	got := map[string]float64{}
	for _, m := range mfs[0].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		got[l["layer"]+"/"+l["direction"]] = m.GetCounter().GetValue()
	}
	want := map[string]float64{"mac/rx": 0, "mac/tx": 0, "ip/rx": 6, "ip/tx": 0, "tcp/rx": 0, "tcp/tx": 0}
	if len(got) != len(want) {
		t.Errorf("series %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if d.Alerts != 1 || d.Suppressed != 5 {
		t.Errorf("alerts %d suppressed %d", d.Alerts, d.Suppressed)
	}
}
