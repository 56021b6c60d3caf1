package output

import (
	"math"
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// ---- latency anomalies (-L) ----

// AnomalyLogName is the log of -L in --data-dir.
const AnomalyLogName = "anomaly.log"

func anomalyDir(a *event.Anomaly) string {
	if a.Rx {
		return "rx"
	}
	return "tx"
}

// ewmaNs rounds the EWMA to whole ns for printing.
func ewmaNs(a *event.Anomaly) uint64 { return uint64(math.Round(a.EWMANs)) }

// appendRatio appends value/EWMA with one decimal.
func appendRatio(b []byte, a *event.Anomaly) []byte {
	return strconv.AppendFloat(b, math.Round(a.Ratio()*10)/10, 'f', -1, 64)
}

func appendFactor(b []byte, f float64) []byte { return strconv.AppendFloat(b, f, 'g', -1, 64) }

// Anomaly formats one latency anomaly (-L): a console line
//
//	<time> [W] anomaly ip rx: conn = 9 sock = 0x... src -> dst ip_time = 85.2us ewma = 2.1us ratio = 40.6 factor = 5 samples = 1234 run = 4 suppressed = 0 pid = 42 comm = curl
//
// or a JSON record of type "anomaly" (times in ns).
func (p *Printer) Anomaly(b []byte, ev *event.Event, a *event.Anomaly) []byte {
	if p.JSON {
		b = p.jHead(b, "anomaly", ev.TS)
		b = jConn(b, &ev.Conn)
		b = append(b, `,"layer":"`...)
		b = append(b, a.Layer.String()...)
		b = append(b, `","direction":"`...)
		b = append(b, anomalyDir(a)...)
		b = append(b, '"')
		b = jU(b, "value_ns", a.ValueNs)
		b = jU(b, "ewma_ns", ewmaNs(a))
		b = append(b, `,"ratio":`...)
		b = appendRatio(b, a)
		b = append(b, `,"factor":`...)
		b = appendFactor(b, a.Factor)
		b = jU(b, "samples", a.Samples)
		b = jU(b, "run", uint64(a.Run))
		b = jU(b, "suppressed", a.Suppressed)
		return append(b, "}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [W] anomaly "...)
	b = append(b, a.Layer.String()...)
	b = append(b, ' ')
	b = append(b, anomalyDir(a)...)
	b = appendConnHead(b, &ev.Conn)
	b = append(b, ' ')
	b = appendFlowText(b, ev.Conn.Src, ev.Conn.Dst)
	b = append(b, ' ')
	b = append(b, a.Layer.String()...)
	b = append(b, "_time = "...)
	b = layerUs(b, a.ValueNs, false)
	b = append(b, "us ewma = "...)
	b = layerUs(b, ewmaNs(a), false)
	b = append(b, "us ratio = "...)
	b = appendRatio(b, a)
	b = append(b, " factor = "...)
	b = appendFactor(b, a.Factor)
	b = append(b, " samples = "...)
	b = strconv.AppendUint(b, a.Samples, 10)
	b = append(b, " run = "...)
	b = strconv.AppendUint(b, uint64(a.Run), 10)
	b = append(b, " suppressed = "...)
	b = strconv.AppendUint(b, a.Suppressed, 10)
	b = appendOwnerText(b, &ev.Conn)
	return append(b, '\n')
}

// AppendAnomalyLog appends one anomaly.log line (times in µs like
// packets.log).
func AppendAnomalyLog(b []byte, ev *event.Event, a *event.Anomaly) []byte {
	b = append(b, `anomaly{sock="`...)
	b = appendHex(b, ev.Conn.Sock)
	b = append(b, '"')
	b = kv(b, "src", false)
	b = appendAP(b, ev.Conn.Src)
	b = append(b, '"')
	b = kv(b, "dst", false)
	b = appendAP(b, ev.Conn.Dst)
	b = append(b, '"')
	b = kv(b, "layer", false)
	b = append(b, a.Layer.String()...)
	b = append(b, '"')
	b = kv(b, "direction", false)
	b = append(b, anomalyDir(a)...)
	b = append(b, '"')
	b = kv(b, "time", false)
	b = layerUs(b, a.ValueNs, false)
	b = append(b, '"')
	b = kv(b, "ewma", false)
	b = layerUs(b, ewmaNs(a), false)
	b = append(b, '"')
	b = kv(b, "ratio", false)
	b = appendRatio(b, a)
	b = append(b, '"')
	b = kv(b, "factor", false)
	b = appendFactor(b, a.Factor)
	b = append(b, '"')
	b = kvU(b, "samples", a.Samples)
	b = kvU(b, "run", uint64(a.Run))
	b = kvU(b, "suppressed", a.Suppressed)
	b = kvOwner(b, ev.Conn.Pid, &ev.Conn.Comm, false)
	b = kvID(b, ev.Conn.ID)
	return append(b, "}\n"...)
}
