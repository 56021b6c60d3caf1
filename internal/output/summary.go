package output

import (
	"strconv"

	"github.com/netwatcher/netwatcher/internal/event"
)

// ---- --summary: data segments and layer-time histograms per direction ----

// SummaryLogName is the log of --summary in --data-dir.
const SummaryLogName = "summary.log"

func sumKind(s *event.LayerSumInfo) string {
	if s.Final {
		return "exit"
	}
	return "interval"
}

func sumDir(s *event.LayerSumInfo) string {
	if s.Rx {
		return "rx"
	}
	return "tx"
}

// sumLayers is the order a direction's layers are printed in: the order a
// packet crosses them (received: mac, ip, tcp; sent: tcp, ip, mac).
func sumLayers(s *event.LayerSumInfo) [event.Layers]int {
	if s.Rx {
		return [event.Layers]int{event.LayerMac, event.LayerIP, event.LayerTCP}
	}
	return [event.Layers]int{event.LayerTCP, event.LayerIP, event.LayerMac}
}

type sumStatVal struct {
	k string
	v float64
}

// sumStats are a layer's p50, p99, mean and max (ns).
func sumStats(h *event.LayerHist) [4]sumStatVal {
	return [4]sumStatVal{{"p50", h.QuantileNs(0.5)}, {"p99", h.QuantileNs(0.99)},
		{"mean", h.MeanNs()}, {"max", float64(h.MaxInNs())}}
}

// sumUs appends ns as µs with three decimals.
func sumUs(b []byte, ns float64) []byte { return strconv.AppendFloat(b, ns/1e3, 'f', 3, 64) }

// LayerSum formats a --summary record: one line per layer of its direction
// with -t, else one line for the direction (console lines or JSON records
// of type layer_summary).
func (p *Printer) LayerSum(b []byte, ev *event.Event) []byte {
	s := &ev.Ext.Layer
	if !s.Timed {
		return p.layerSumLine(b, ev, -1)
	}
	for _, l := range sumLayers(s) {
		b = p.layerSumLine(b, ev, l)
	}
	return b
}

// layerSumLine appends the line of layer l (-1: the direction's counts only).
func (p *Printer) layerSumLine(b []byte, ev *event.Event, l int) []byte {
	s := &ev.Ext.Layer
	var h *event.LayerHist
	if l >= 0 {
		h = &s.L[l]
	}
	if p.JSON {
		b = p.jHead(b, "layer_summary", ev.TS)
		b = append(b, `,"event":"`...)
		b = append(b, sumKind(s)...)
		b = append(b, `","direction":"`...)
		b = append(b, sumDir(s)...)
		b = append(b, `","layer":`...)
		if h == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '"')
			b = append(b, event.LayerNames[l]...)
			b = append(b, '"')
		}
		b = jU(b, "segments", s.Segs)
		b = jU(b, "bytes", s.Bytes)
		if h == nil {
			return append(b, `,"count":null,"missing":null,"p50_us":null,"p99_us":null,"mean_us":null,"max_us":null,"buckets":null}`+"\n"...)
		}
		b = jU(b, "count", h.Count())
		b = jU(b, "missing", h.Missing)
		for _, q := range sumStats(h) {
			b = append(b, `,"`...)
			b = append(b, q.k...)
			b = append(b, `_us":`...)
			if h.Count() == 0 {
				b = append(b, "null"...)
			} else {
				b = sumUs(b, q.v)
			}
		}
		b = append(b, `,"buckets":[`...)
		for i, c := range h.Buckets {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, c, 10)
		}
		return append(b, "]}\n"...)
	}
	b = p.Clock.AppendTable(b, ev.TS)
	b = append(b, " [S] summary "...)
	b = append(b, sumKind(s)...)
	b = append(b, ' ')
	b = append(b, sumDir(s)...)
	if h != nil {
		b = append(b, ' ')
		b = append(b, event.LayerNames[l]...)
	}
	b = append(b, ": segments = "...)
	b = strconv.AppendUint(b, s.Segs, 10)
	if h == nil {
		b = append(b, " bytes = "...)
		b = strconv.AppendUint(b, s.Bytes, 10)
		return append(b, '\n')
	}
	b = append(b, " count = "...)
	b = strconv.AppendUint(b, h.Count(), 10)
	for _, q := range sumStats(h) {
		b = append(b, ' ')
		b = append(b, q.k...)
		b = append(b, " = "...)
		if h.Count() == 0 {
			b = append(b, '-')
		} else {
			b = sumUs(b, q.v)
			b = append(b, "us"...)
		}
	}
	b = append(b, " missing = "...)
	b = strconv.AppendUint(b, h.Missing, 10)
	return append(b, '\n')
}

// AppendLayerSumLog appends the summary.log lines of a --summary record:
// layer_summary{event,direction,layer,segments,bytes,count,missing,p50,p99,mean,max}
// (µs, three decimals; "-" when not known), one per layer with -t, else one
// with layer="-".
func AppendLayerSumLog(b []byte, ev *event.Event) []byte {
	s := &ev.Ext.Layer
	if !s.Timed {
		return appendLayerSumLog(b, s, -1)
	}
	for _, l := range sumLayers(s) {
		b = appendLayerSumLog(b, s, l)
	}
	return b
}

func appendLayerSumLog(b []byte, s *event.LayerSumInfo, l int) []byte {
	b = append(b, "layer_summary{"...)
	b = kv(b, "event", true)
	b = append(b, sumKind(s)...)
	b = append(b, '"')
	b = kv(b, "direction", false)
	b = append(b, sumDir(s)...)
	b = append(b, '"')
	b = kv(b, "layer", false)
	if l < 0 {
		b = append(b, '-')
	} else {
		b = append(b, event.LayerNames[l]...)
	}
	b = append(b, '"')
	b = kvU(b, "segments", s.Segs)
	b = kvU(b, "bytes", s.Bytes)
	if l < 0 {
		for _, k := range [...]string{"count", "missing", "p50", "p99", "mean", "max"} {
			b = kv(b, k, false)
			b = append(b, `-"`...)
		}
		return append(b, "}\n"...)
	}
	h := &s.L[l]
	b = kvU(b, "count", h.Count())
	b = kvU(b, "missing", h.Missing)
	for _, q := range sumStats(h) {
		b = kv(b, q.k, false)
		if h.Count() == 0 {
			b = append(b, '-')
		} else {
			b = sumUs(b, q.v)
		}
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}
