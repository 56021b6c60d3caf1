package event

// TimeLayer is one of the layer times of a TCP packet record (-t): MAC,
// IP, TCP.
type TimeLayer uint8

const (
	TimeMac TimeLayer = iota
	TimeIP
	TimeTCP
	TimeLayers // number of layers
)

var timeLayerNames = [TimeLayers]string{"mac", "ip", "tcp"}

// String is the layer's name as in the packet records' field names
// (mac_time, ip_time, tcp_time): "mac", "ip", "tcp".
func (l TimeLayer) String() string {
	if l < TimeLayers {
		return timeLayerNames[l]
	}
	return "?"
}

// Anomaly is one latency anomaly (-L, internal/timeload): a packet whose
// layer time exceeded Factor times the moving average (EWMA) of that layer
// and direction on its connection, as did the packets just before it (Run). Made in user space from the packet
// records; the event's Conn names the connection and TS is the packet's.
type Anomaly struct {
	Layer   TimeLayer
	Rx      bool
	ValueNs uint64 // the packet's layer time
	// EWMANs: the EWMA of the connection's layer and direction before the
	// run of packets above the threshold began (the baseline).
	EWMANs  float64
	Factor  float64 // --timeload-factor
	Samples uint64  // samples of this layer and direction the connection had (this one included)
	Run     uint32  // packets above the threshold in a row, this one included
	// Suppressed: anomalies of this connection, layer and direction that
	// were not reported since its previous alert (the rate limit).
	Suppressed uint64
}

// Ratio is ValueNs / EWMANs.
func (a *Anomaly) Ratio() float64 {
	if a.EWMANs <= 0 {
		return 0
	}
	return float64(a.ValueNs) / a.EWMANs
}
