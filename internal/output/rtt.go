package output

import (
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// ---- RTT histograms (--rtt) ----

// RttLogName is the log of --rtt in --data-dir.
const RttLogName = "rtt.log"

func rttKind(r *event.RttInfo) string {
	if r.Close {
		return "close"
	}
	return "interval"
}

func rttSource(r *event.RttInfo) string {
	if r.Srtt {
		return "srtt"
	}
	return "mrtt"
}

// appendUs appends a µs value with at most one decimal.
func appendUs(b []byte, us float64) []byte {
	return strconv.AppendFloat(b, float64(int64(us*10+0.5))/10, 'f', -1, 64)
}

// appendRttBuckets appends the non-empty buckets as "lo:count" pairs
// (lo: the bucket's lower bound in µs; 0 for the first bucket, [0, 2)),
// separated by sep.
func appendRttBuckets(b []byte, r *event.RttInfo, sep byte) []byte {
	first := true
	for i, n := range r.Buckets {
		if n == 0 {
			continue
		}
		if !first {
			b = append(b, sep)
		}
		first = false
		lo := uint64(1) << i
		if i == 0 {
			lo = 0
		}
		b = strconv.AppendUint(b, lo, 10)
		b = append(b, ':')
		b = strconv.AppendUint(b, uint64(n), 10)
	}
	return b
}

// Rtt formats one RTT histogram (an interval's samples, or the whole
// connection's at close): console line or JSON record.
func (p *Printer) Rtt(b []byte, ev *event.Event) []byte {
	r := &ev.Ext.Rtt
	if p.JSON {
		b = p.jHead(b, "rtt", ev.TS)
		c := ev.Conn
		if !c.Src.IsValid() {
			c.Src, c.Dst = r.Src, r.Dst
		}
		b = jConn(b, &c)
		b = append(b, `,"event":"`...)
		b = append(b, rttKind(r)...)
		b = append(b, `","source":"`...)
		b = append(b, rttSource(r)...)
		b = append(b, '"')
		b = jU(b, "count", r.Count())
		b = append(b, `,"p50_us":`...)
		b = appendUs(b, r.QuantileUs(0.5))
		b = append(b, `,"p99_us":`...)
		b = appendUs(b, r.QuantileUs(0.99))
		b = append(b, `,"mean_us":`...)
		b = appendUs(b, r.MeanUs())
		b = jU(b, "min_us", uint64(r.MinUs))
		b = jU(b, "max_us", uint64(r.MaxUs))
		b = append(b, `,"buckets":[`...)
		for i, n := range r.Buckets {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(n), 10)
		}
		return append(b, "]}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [T] rtt "...)
	b = append(b, rttKind(r)...)
	if r.Srtt {
		b = append(b, " (srtt)"...)
	}
	b = appendConnHead(b, &ev.Conn)
	b = append(b, ' ')
	if ev.Conn.Src.IsValid() {
		b = appendFlowText(b, ev.Conn.Src, ev.Conn.Dst)
	} else {
		b = appendFlowText(b, r.Src, r.Dst)
	}
	b = append(b, " samples = "...)
	b = strconv.AppendUint(b, r.Count(), 10)
	b = append(b, " p50 = "...)
	b = appendUs(b, r.QuantileUs(0.5))
	b = append(b, "us p99 = "...)
	b = appendUs(b, r.QuantileUs(0.99))
	b = append(b, "us mean = "...)
	b = appendUs(b, r.MeanUs())
	b = append(b, "us min/max = "...)
	b = strconv.AppendUint(b, uint64(r.MinUs), 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(r.MaxUs), 10)
	b = append(b, "us buckets = "...)
	b = appendRttBuckets(b, r, ' ')
	b = appendOwnerText(b, &ev.Conn)
	return append(b, '\n')
}

// AppendRttLog appends one rtt.log line: quantiles and mean in µs (one
// decimal), buckets as "lo:count" pairs of the non-empty ones.
func AppendRttLog(b []byte, ev *event.Event) []byte {
	r := &ev.Ext.Rtt
	src, dst := ev.Conn.Src, ev.Conn.Dst
	if !src.IsValid() {
		src, dst = r.Src, r.Dst
	}
	b = append(b, `rtt{sock="`...)
	b = appendHex(b, ev.Conn.Sock)
	b = append(b, '"')
	b = kv(b, "src", false)
	b = appendAP(b, src)
	b = append(b, '"')
	b = kv(b, "dst", false)
	b = appendAP(b, dst)
	b = append(b, '"')
	b = kv(b, "event", false)
	b = append(b, rttKind(r)...)
	b = append(b, '"')
	b = kv(b, "source", false)
	b = append(b, rttSource(r)...)
	b = append(b, '"')
	b = kvU(b, "count", r.Count())
	b = kv(b, "p50", false)
	b = appendUs(b, r.QuantileUs(0.5))
	b = append(b, '"')
	b = kv(b, "p99", false)
	b = appendUs(b, r.QuantileUs(0.99))
	b = append(b, '"')
	b = kv(b, "mean", false)
	b = appendUs(b, r.MeanUs())
	b = append(b, '"')
	b = kvU(b, "min", uint64(r.MinUs))
	b = kvU(b, "max", uint64(r.MaxUs))
	b = kv(b, "buckets", false)
	b = appendRttBuckets(b, r, ',')
	b = append(b, '"')
	b = kvID(b, ev.Conn.ID)
	return append(b, "}\n"...)
}
