package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// A run directory holds one netwatcher run, written by the guest's init (or
// by run.sh for the host kernel):
//
//	args     the flags it ran with (one line, informative)
//	out.json its stdout (-o json)
//	stderr   its stderr
//	exit     its exit status (absent: it never ended)
//	ready    present once the --ready-file appeared; holds the seconds it took
//	data/    its --data-dir
type runDir struct {
	name    string
	dir     string
	args    string
	ready   bool
	readyS  string
	exit    int // -1: unknown (no exit file)
	stderr  []string
	records []record
	stats   map[string]json.Number
	badJSON int
}

// record is the union of the JSON record kinds (internal/output/printer.go).
// Pointers tell "absent or null" from zero; the layer times keep their raw
// text because null (boundary not observed) and absent (-t off) differ.
type record struct {
	Type     string  `json:"type"`
	Event    string  `json:"event"`
	Netns    *uint64 `json:"netns"`
	ConnID   *uint64 `json:"conn_id"`
	Src      *string `json:"src"`
	Dst      *string `json:"dst"`
	Pid      *uint64 `json:"pid"`
	Comm     *string `json:"comm"`
	Owner    string  `json:"owner"`
	IsServer *uint64 `json:"is_server"`

	Cwnd   *uint64 `json:"cwnd"`
	SrttUs *uint64 `json:"srtt_us"`

	TotalRetrans   *uint64 `json:"total_retrans"` // -x: the kernel's own count
	FastRetrans    *uint64 `json:"fast_retrans"`
	TimeoutRetrans *uint64 `json:"timeout_retrans"`
	RetransSegs    *uint64 `json:"retrans_segs"`

	Rx       *uint64         `json:"rx"`
	Mac      json.RawMessage `json:"mac_time_ns"`
	IP       json.RawMessage `json:"ip_time_ns"`
	TCP      json.RawMessage `json:"tcp_time_ns"`
	HTTPInfo json.RawMessage `json:"http_info"`

	Reason    *string `json:"reason"`
	Kind      string  `json:"kind"`
	LatencyNs *uint64 `json:"latency_ns"`

	Old        string  `json:"old"` // tcpstate
	New        string  `json:"new"`
	DurationNs *uint64 `json:"duration_ns"`

	Dir   string          `json:"dir"`   // rst
	State json.RawMessage `json:"state"` // a number in -x connection records

	Proto    string  `json:"proto"` // drop (-k)
	Location *string `json:"location"`

	Count *uint64 `json:"count"` // rtt
	// layer_summary (--summary)
	Direction string   `json:"direction"`
	Layer     *string  `json:"layer"`
	Segments  *uint64  `json:"segments"`
	P50Us     *float64 `json:"p50_us"`

	Verdict string            `json:"verdict"` // netfilter (-n)
	Hooks   map[string]uint64 `json:"hooks"`

	ICMPTime json.RawMessage `json:"icmp_time_ns"` // icmp (-I); rx, kind, mac/ip times above
	RttNs    json.RawMessage `json:"rtt_ns"`

	Side  string  `json:"side"` // dns (-N); event, proto, latency_ns above
	QName *string `json:"qname"`
	QType *string `json:"qtype"`
	Rcode string  `json:"rcode"`

	Cmd   *string `json:"cmd"` // redis (-R); event, side, pid, latency_ns above
	Reply *string `json:"reply"`

	RxDgramsTotal *uint64         `json:"rx_dgrams_total"` // udp (-u); event, pid, rx, mac/ip times above
	TxDgramsTotal *uint64         `json:"tx_dgrams_total"`
	UDPTime       json.RawMessage `json:"udp_time_ns"`
}

// readRun loads one run directory. A missing out.json is not an error: a
// netwatcher that refused to start printed nothing.
func readRun(dir string) (*runDir, error) {
	r := &runDir{name: filepath.Base(dir), dir: dir, exit: -1}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("run directory %s: not a directory", dir)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "args")); err == nil {
		r.args = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ready")); err == nil {
		r.ready, r.readyS = true, strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "exit")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			r.exit = n
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "stderr")); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if l = strings.TrimRight(l, "\r"); l != "" {
				r.stderr = append(r.stderr, l)
			}
		}
	}
	f, err := os.Open(filepath.Join(dir, "out.json"))
	if err != nil {
		return r, nil
	}
	defer f.Close()
	return r, r.parse(f)
}

func (r *runDir) parse(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil {
			r.badJSON++
			continue
		}
		if rec.Type == "stats" {
			r.stats = map[string]json.Number{}
			d := json.NewDecoder(strings.NewReader(string(line)))
			d.UseNumber()
			var m map[string]any
			if d.Decode(&m) == nil {
				for k, v := range m {
					if n, ok := v.(json.Number); ok {
						r.stats[k] = n
					}
				}
			}
			continue
		}
		r.records = append(r.records, rec)
	}
	return sc.Err()
}

// workload says which records belong to the scripted workload: its ports,
// and on the host its network namespace (netwatcher traces the whole host).
type workload struct {
	netns        uint64          // 0: any
	ports        map[uint16]bool // the workload's server ports
	nwpeerServer map[uint16]bool // server ports whose server is nwpeer (the others: busybox nc)
}

func port(s *string) (uint16, bool) {
	if s == nil {
		return 0, false
	}
	ap, err := netip.ParseAddrPort(*s)
	if err != nil {
		return 0, false
	}
	return ap.Port(), true
}

func (w *workload) owns(rec *record) bool {
	if strings.HasSuffix(rec.Type, "_summary") {
		// an aggregate (per command, per hook) names no connection nor
		// namespace: on the host, other processes' traffic may be in it
		// too, which a check of its presence does not mind
		return true
	}
	if w.netns != 0 && (rec.Netns == nil || *rec.Netns != w.netns) {
		return false
	}
	sp, ok1 := port(rec.Src)
	dp, ok2 := port(rec.Dst)
	if !ok1 && !ok2 {
		// unnamed record: ours only if its namespace says so
		return w.netns != 0 || rec.Netns != nil
	}
	return w.ports[sp] || w.ports[dp]
}

// serverPort is the workload port of a record (the local port of a server
// side, the remote port of a client side).
func (w *workload) serverPort(rec *record) uint16 {
	sp, _ := port(rec.Src)
	dp, _ := port(rec.Dst)
	if rec.IsServer != nil && *rec.IsServer == 1 {
		return sp
	}
	return dp
}

// feature is one line of the verdict: FEATURE name status detail. The
// detail's first clause (up to "; ") is short: it is the compatibility
// table's cell; "none" there means nothing at all was seen.
type feature struct {
	name, status, detail string
}

const (
	ok      = "ok"
	missing = "missing"
	bad     = "bad"
)

// featureNames is the order of the FEATURE lines (and of the table rows).
var featureNames = []string{"start", "lost", "conn_owner", "conn_extra", "packets", "layer_times", "http", "retrans", "errors", "tcpstate", "rst", "drops", "rtt", "udp", "udp_times", "icmp", "dns", "redis", "netfilter", "summary"}

// tableRows are the rows of expect.tsv and of the table: the features of
// check, then the one the kernel log gives (kernel_warn).
var tableRows = append(append([]string{}, featureNames...), kernelFeature)

// check computes every feature over all runs (a feature is seen when any
// run shows it; start must hold for each run).
func check(runs []*runDir, w *workload) (feats []feature, notes []string) {
	var recs []*record
	for _, r := range runs {
		for i := range r.records {
			if w.owns(&r.records[i]) {
				recs = append(recs, &r.records[i])
			}
		}
	}
	feats = []feature{
		checkStart(runs),
		checkLost(runs),
		checkOwner(recs, w),
		checkExtra(recs),
		checkPackets(recs),
		checkLayers(recs),
		checkHTTP(recs),
		checkRetrans(recs),
		checkErrors(recs),
		checkStates(recs),
		checkRst(recs),
		checkDrops(recs),
		checkRtt(recs),
		checkUDP(recs),
		checkUDPTimes(recs),
		checkICMP(recs),
		checkDNS(recs),
		checkRedis(recs),
		checkNetfilter(recs, nfFallback(runs)),
		checkSummary(recs),
	}
	return feats, collectNotes(runs)
}

var goPanic = regexp.MustCompile(`^(panic: |fatal error: )`)
var warnLine = regexp.MustCompile(`(?i)warn|unavailable|needs kernel|not supported|fall(s|ing)? ?back`)

// collectNotes returns the WARN lines netwatcher printed and a FATAL line
// per Go panic.
func collectNotes(runs []*runDir) []string {
	var out []string
	for _, r := range runs {
		seen := map[string]bool{}
		for _, l := range r.stderr {
			l = clip(l, 400)
			switch {
			case goPanic.MatchString(l):
				out = append(out, fmt.Sprintf("FATAL %s netwatcher panicked: %s", r.name, l))
			case warnLine.MatchString(l) && !seen[l]:
				seen[l] = true
				out = append(out, fmt.Sprintf("WARN %s %s", r.name, l))
			}
		}
		if r.badJSON > 0 {
			out = append(out, fmt.Sprintf("FATAL %s %d stdout lines are not valid JSON", r.name, r.badJSON))
		}
	}
	return out
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func u(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// worst orders statuses: bad > missing > ok.
func worst(a, b string) string {
	rank := map[string]int{ok: 0, missing: 1, bad: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// start: the ready file appeared, exit 0, the final stats record is
// there. Never ready is "missing" (the kernel refused it), the rest "bad".
// The first clause of the detail is the worst run's problem (the table's
// cell), then one clause per run.
func checkStart(runs []*runDir) feature {
	f := feature{name: "start", status: ok}
	if len(runs) == 0 {
		return feature{"start", missing, "no run"}
	}
	var parts, ready []string
	short := ""
	for _, r := range runs {
		st, why := ok, []string{}
		switch {
		case !r.ready:
			st = missing
			msg := "never ready"
			if r.exit >= 0 {
				msg += fmt.Sprintf(", exit %d", r.exit)
			}
			if len(r.stderr) > 0 {
				msg += ": " + clip(strings.TrimPrefix(lastError(r.stderr), "netwatcher: "), 160)
			}
			why = append(why, msg)
		default:
			ready = append(ready, r.readyS)
			why = append(why, "ready after "+r.readyS+" s")
			if r.exit != 0 {
				st = bad
				why = append(why, fmt.Sprintf("exit %d", r.exit))
			}
			if r.stats == nil {
				st = bad
				why = append(why, "no stats record")
			}
		}
		if worst(f.status, st) != f.status || (st != ok && short == "") {
			short = strings.Join(why, ", ")
		}
		f.status = worst(f.status, st)
		parts = append(parts, r.name+": "+strings.Join(why, ", "))
	}
	if f.status == ok {
		short = "ready after " + strings.Join(ready, "/") + " s"
	}
	f.detail = short + "; " + strings.Join(parts, "; ")
	return f
}

// lost: the stats record at exit counts no lost event (isLossKey). Split from start: a
// workload that overflows a queue is a finding, not a refusal to run.
func checkLost(runs []*runDir) feature {
	var parts []string
	total, withStats := int64(0), 0
	for _, r := range runs {
		if r.stats == nil {
			parts = append(parts, r.name+": no stats record")
			continue
		}
		withStats++
		l := lost(r.stats)
		total += l
		what := ""
		for _, k := range sortedKeys(r.stats) {
			if isLossKey(k) {
				if n, _ := r.stats[k].Int64(); n > 0 {
					what += fmt.Sprintf(" %s=%d", k, n)
				}
			}
		}
		parts = append(parts, fmt.Sprintf("%s: %d lost%s", r.name, l, what))
	}
	switch {
	case withStats == 0:
		return feature{"lost", missing, "no stats record; " + strings.Join(parts, "; ")}
	case total > 0:
		return feature{"lost", bad, fmt.Sprintf("%d lost; %s", total, strings.Join(parts, "; "))}
	}
	return feature{"lost", ok, "0 lost; " + strings.Join(parts, "; ")}
}

func sortedKeys(m map[string]json.Number) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// isLossKey: the counters netwatcher's own "events lost" warning lists
// (ring or queue full, connection or packet-stamp table full) and the
// output's losses (console lines dropped, log lines lost).
func isLossKey(k string) bool {
	return strings.HasPrefix(k, "lost_") || strings.HasSuffix(k, "_lost") || strings.HasSuffix(k, "_dropped") ||
		k == "conn_table_full" || k == "pkt_table_full"
}

// lastError picks the stderr line that says why it stopped.
func lastError(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(strings.ToLower(lines[i]), "error") || strings.Contains(lines[i], "netwatcher:") {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}

// lost sums every counter of events that never reached the output.
func lost(stats map[string]json.Number) int64 {
	var n int64
	for k, v := range stats {
		if isLossKey(k) {
			x, _ := v.Int64()
			n += x
		}
	}
	return n
}

// conn_owner: open and close of the workload's connections, client and
// server side, named after nwpeer (non-zero pid, comm "nwpeer").
func checkOwner(recs []*record, w *workload) feature {
	var open, close [2]int // [is_server]
	wrong := 0
	example := ""
	for _, r := range recs {
		if r.Type != "connection" || (r.Event != "open" && r.Event != "close") {
			continue
		}
		side := int(u(r.IsServer) & 1)
		if side == 1 && !w.nwpeerServer[w.serverPort(r)] {
			continue // the never-reading receiver is busybox nc
		}
		if u(r.Pid) == 0 || r.Comm == nil || *r.Comm != "nwpeer" {
			wrong++
			if example == "" {
				comm := "null"
				if r.Comm != nil {
					comm = strconv.Quote(*r.Comm)
				}
				example = fmt.Sprintf(" (e.g. %s is_server=%d pid=%d comm=%s owner=%s)", r.Event, side, u(r.Pid), comm, r.Owner)
			}
			continue
		}
		if r.Event == "open" {
			open[side]++
		} else {
			close[side]++
		}
	}
	d := fmt.Sprintf("open/close: client %d/%d, server %d/%d", open[0], close[0], open[1], close[1])
	switch {
	case wrong > 0:
		return feature{"conn_owner", bad, fmt.Sprintf("%d records with a wrong owner%s; %s", wrong, example, d)}
	case open == [2]int{} && close == [2]int{}:
		return feature{"conn_owner", missing, "none; " + d}
	case open[0] == 0 || open[1] == 0 || close[0] == 0 || close[1] == 0:
		return feature{"conn_owner", missing, d}
	}
	return feature{"conn_owner", ok, d}
}

// conn_extra: -x values (srtt, cwnd) on sample or close records.
func checkExtra(recs []*record) feature {
	with, nonzero := 0, 0
	for _, r := range recs {
		if r.Type != "connection" || (r.Event != "sample" && r.Event != "close") {
			continue
		}
		if r.Cwnd == nil && r.SrttUs == nil {
			continue
		}
		with++
		if u(r.Cwnd) > 0 && u(r.SrttUs) > 0 {
			nonzero++
		}
	}
	d := fmt.Sprintf("%d sample/close records with -x values, %d with srtt and cwnd > 0", with, nonzero)
	switch {
	case with == 0:
		return feature{"conn_extra", missing, "none; " + d}
	case nonzero == 0:
		return feature{"conn_extra", bad, "srtt or cwnd always 0; " + d}
	}
	return feature{"conn_extra", ok, d}
}

// packets: records of both directions, with addresses and a conn_id.
func checkPackets(recs []*record) feature {
	var n, named [2]int // [rx]
	for _, r := range recs {
		if r.Type != "packet" {
			continue
		}
		rx := int(u(r.Rx) & 1)
		n[rx]++
		if r.ConnID != nil && r.Src != nil && r.Dst != nil {
			named[rx]++
		}
	}
	d := fmt.Sprintf("rx %d (%d named), tx %d (%d named)", n[1], named[1], n[0], named[0])
	switch {
	case n[0]+n[1] == 0:
		return feature{"packets", missing, "none; no packet records"}
	case named[0]+named[1] == 0:
		return feature{"packets", bad, "none has src/dst/conn_id; " + d}
	case named[0] == 0 || named[1] == 0:
		return feature{"packets", missing, "one direction missing; " + d}
	}
	return feature{"packets", ok, d}
}

// boundary names in the order of the spec: receive link -> IP -> TCP, send
// TCP -> IP -> device.
var boundaries = []string{"rx_mac", "rx_ip", "rx_tcp", "tx_tcp", "tx_ip", "tx_mac"}

// maxLayerNs: a layer time above this is a wrapped subtraction, not a delay.
const maxLayerNs = 60e9

// layer_times: how many of the 6 boundaries were ever observed (non-null).
func checkLayers(recs []*record) feature {
	seen := map[string]int{}
	timed := [2]int{}
	wrapped := 0
	for _, r := range recs {
		if r.Type != "packet" || (r.Mac == nil && r.IP == nil && r.TCP == nil) {
			continue
		}
		dir := "tx_"
		if u(r.Rx) == 1 {
			dir = "rx_"
		}
		timed[u(r.Rx)&1]++
		for name, raw := range map[string]json.RawMessage{"mac": r.Mac, "ip": r.IP, "tcp": r.TCP} {
			s := string(raw)
			if s == "" || s == "null" {
				continue
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || v < 0 || v > maxLayerNs {
				wrapped++
				continue
			}
			seen[dir+name]++
		}
	}
	if timed[0]+timed[1] == 0 {
		return feature{"layer_times", missing, "none; no packet record with layer times"}
	}
	var have, lack []string
	for _, b := range boundaries {
		if seen[b] > 0 {
			have = append(have, fmt.Sprintf("%s %d", b, seen[b]))
		} else {
			lack = append(lack, b)
		}
	}
	d := fmt.Sprintf("%d/6", len(have))
	if len(lack) > 0 {
		d += ", never " + strings.Join(lack, " ")
	}
	if wrapped > 0 {
		d += fmt.Sprintf(", %d values negative or > %.0f s", wrapped, maxLayerNs/1e9)
	}
	d += fmt.Sprintf("; of rx %d tx %d timed packets: %s", timed[1], timed[0], strings.Join(have, ", "))
	switch {
	case wrapped > 0:
		return feature{"layer_times", bad, d}
	case len(lack) > 0:
		return feature{"layer_times", missing, d}
	}
	return feature{"layer_times", ok, d}
}

// http: request and status lines on packets, and request/response pairs
// with a latency.
func checkHTTP(recs []*record) feature {
	req, resp, pairs, withLat := 0, 0, 0, 0
	for _, r := range recs {
		switch r.Type {
		case "packet":
			var s string
			if len(r.HTTPInfo) == 0 || json.Unmarshal(r.HTTPInfo, &s) != nil || s == "" {
				continue
			}
			if strings.HasPrefix(s, "HTTP/") {
				resp++
			} else {
				req++
			}
		case "http":
			pairs++
			if u(r.LatencyNs) > 0 {
				withLat++
			}
		}
	}
	d := fmt.Sprintf("%d request lines, %d status lines, %d pairs (%d with latency)", req, resp, pairs, withLat)
	switch {
	case pairs > withLat:
		return feature{"http", bad, "a pair without latency; " + d}
	case req+resp+pairs == 0:
		return feature{"http", missing, "none; " + d}
	case req == 0 || resp == 0 || withLat == 0:
		return feature{"http", missing, d}
	}
	return feature{"http", ok, d}
}

// retrans: episodes, retransmitted segments, or counters on connections.
func checkRetrans(recs []*record) feature {
	kinds := map[string]int{}
	episodes, segs := 0, 0
	var counters, kernel uint64
	for _, r := range recs {
		switch r.Type {
		case "retrans":
			episodes++
			kinds[r.Kind]++
		case "retrans_segment":
			segs++
		case "connection":
			counters = max(counters, u(r.FastRetrans)+u(r.TimeoutRetrans)+u(r.RetransSegs))
			kernel = max(kernel, u(r.TotalRetrans))
		}
	}
	// total_retrans (-x, read from tcp_sock) says whether the kernel did
	// retransmit: context for a "missing", not a verdict
	d := fmt.Sprintf("%d episodes%s, %d retrans_segment records, max -r counter %d, max -x total_retrans %d",
		episodes, histo(kinds), segs, counters, kernel)
	if episodes == 0 && segs == 0 && counters == 0 {
		return feature{"retrans", missing, "none; " + d}
	}
	return feature{"retrans", ok, d}
}

// errors: rejected segments, each with the kernel's reason by name.
func checkErrors(recs []*record) feature {
	reasons := map[string]int{}
	n, unnamed := 0, 0
	for _, r := range recs {
		if r.Type != "error" {
			continue
		}
		n++
		if r.Reason == nil || *r.Reason == "" || strings.HasPrefix(strings.ToLower(*r.Reason), "unknown") {
			unnamed++
			continue
		}
		reasons[*r.Reason]++
	}
	d := fmt.Sprintf("%d error records%s", n, histo(reasons))
	switch {
	case n == 0:
		return feature{"errors", missing, "none; " + d}
	case unnamed > 0:
		return feature{"errors", bad, fmt.Sprintf("%d without a reason name; %s", unnamed, d)}
	}
	return feature{"errors", ok, d}
}

// tcpstate (-P): transitions with the kernel's state names; the
// workload's connecting sides have timed handshakes (SYN_SENT ->
// ESTABLISHED) and its connections end in CLOSE.
func checkStates(recs []*record) feature {
	n, hs, closes, unnamed := 0, 0, 0, 0
	for _, r := range recs {
		if r.Type != "tcpstate" {
			continue
		}
		n++
		if r.Old == "" || r.New == "" || strings.HasPrefix(r.Old, "state") || strings.HasPrefix(r.New, "state") {
			unnamed++
		}
		if r.Old == "SYN_SENT" && r.New == "ESTABLISHED" && u(r.DurationNs) > 0 {
			hs++
		}
		if r.New == "CLOSE" {
			closes++
		}
	}
	d := fmt.Sprintf("%d transitions, %d timed handshakes, %d closes", n, hs, closes)
	switch {
	case n == 0:
		return feature{"tcpstate", missing, "none; " + d}
	case unnamed > 0:
		return feature{"tcpstate", bad, fmt.Sprintf("%d with an unknown state; %s", unnamed, d)}
	case hs == 0 || closes == 0:
		return feature{"tcpstate", bad, "no timed handshake or no close; " + d}
	}
	return feature{"tcpstate", ok, d}
}

// rst (--rst): the workload's aborts (the bulk receiver that never reads
// is killed with data unread) show as RSTs sent and received, each with a
// direction and, for a socket, its state.
func checkRst(recs []*record) feature {
	dirs := map[string]int{}
	n, unnamed := 0, 0
	for _, r := range recs {
		if r.Type != "rst" {
			continue
		}
		n++
		dirs[r.Dir]++
		if r.Dir != "sent" && r.Dir != "received" {
			unnamed++
		}
	}
	d := fmt.Sprintf("%d rst records%s", n, histo(dirs))
	switch {
	case n == 0:
		return feature{"rst", missing, "none; " + d}
	case unnamed > 0:
		return feature{"rst", bad, fmt.Sprintf("%d without a direction; %s", unnamed, d)}
	}
	return feature{"rst", ok, d}
}

// drops (-k): dropped packets of the workload (the zero-window probes the
// receiver rejects, the segments the rr blackout's socket filter drops)
// with a reason name and a kernel location symbolised to a function.
func checkDrops(recs []*record) feature {
	reasons := map[string]int{}
	n, bare := 0, 0
	for _, r := range recs {
		if r.Type != "drop" {
			continue
		}
		n++
		if r.Reason == nil || *r.Reason == "" || r.Location == nil || !strings.Contains(*r.Location, "+0x") {
			bare++
			continue
		}
		reasons[*r.Reason]++
	}
	d := fmt.Sprintf("%d drop records%s", n, histo(reasons))
	switch {
	case n == 0:
		return feature{"drops", missing, "none; " + d}
	case bare > 0:
		return feature{"drops", bad, fmt.Sprintf("%d without a reason or a symbolised location; %s", bare, d)}
	}
	return feature{"drops", ok, d}
}

// rtt (--rtt): histograms of the kernel's RTT samples for the workload's
// connections, with samples and a median.
func checkRtt(recs []*record) feature {
	n, empty := 0, 0
	var samples uint64
	for _, r := range recs {
		if r.Type != "rtt" {
			continue
		}
		n++
		if u(r.Count) == 0 || r.P50Us == nil {
			empty++
			continue
		}
		samples += u(r.Count)
	}
	d := fmt.Sprintf("%d rtt records, %d samples", n, samples)
	switch {
	case n == 0:
		return feature{"rtt", missing, "none; " + d}
	case empty > 0:
		return feature{"rtt", bad, fmt.Sprintf("%d without samples or median; %s", empty, d)}
	}
	return feature{"rtt", ok, d}
}

// histo formats counts by name: " (a 3, b 1)", most frequent first.
func histo(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// formatFeatures writes the verdict lines.
func formatFeatures(w io.Writer, feats []feature, notes []string) {
	for _, f := range feats {
		fmt.Fprintf(w, "FEATURE %s %s %s\n", f.name, f.status, oneLine(f.detail))
	}
	for _, n := range notes {
		fmt.Fprintln(w, oneLine(n))
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
