package output

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

func mysqlSample() *event.MySQLResult {
	r := &event.MySQLResult{Side: event.MySQLClient, TS: 5e9, Command: 3, Query: []byte("SELECT \"a\"\n\x01"), QueryLen: 400,
		Resp: event.MySQLErr, ErrCode: 1146, LatencyNs: 52497, ThreadID: 19}
	copy(r.SQLState[:], "42S02")
	r.Conn = event.Conn{ID: 4, Sock: 0xff01, Netns: 99, Src: netip.MustParseAddrPort("10.0.0.1:40000"),
		Dst: netip.MustParseAddrPort("10.0.0.2:3306"), Pid: 77, OwnerSrc: 1}
	copy(r.Conn.Comm[:], "mariadb")
	return r
}

func TestMySQLFormats(t *testing.T) {
	r := mysqlSample()
	p := Printer{Clock: NewClock(nil)}
	line := string(p.MySQL(nil, r))
	want := `[M] mysql client COM_QUERY "SELECT \"a\"\n\x01"... -> error 1146 (42S02) latency = 52.497us thread = 19: conn = 4 sock = 0xff01 10.0.0.1:40000 -> 10.0.0.2:3306 pid = 77 comm = mariadb` + "\n"
	if !strings.HasSuffix(line, want) {
		t.Errorf("console:\n%q\nwant suffix\n%q", line, want)
	}
	log := string(AppendMySQLLog(nil, r))
	wantLog := `mysql{netns="99",sock="0xff01",src="10.0.0.1:40000",dst="10.0.0.2:3306",pid="77",comm="mariadb",side="client",thread_id="19",command="COM_QUERY",query="SELECT \"a\"\n\x01",query_len="400",stmt_id="-",response="error",error="1146",sqlstate="42S02",affected="-",rows="-",latency="52.497",truncated="0",conn_id="4"}` + "\n"
	if log != wantLog {
		t.Errorf("log:\n%s\nwant\n%s", log, wantLog)
	}
	p.JSON = true
	var m map[string]any
	if err := json.Unmarshal(p.MySQL(nil, r), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"type": "mysql", "side": "client", "command": "COM_QUERY", "command_code": 3.0,
		"query": "SELECT \"a\"\n\x01", "query_len": 400.0, "response": "error", "error_code": 1146.0, "sql_state": "42S02",
		"affected": nil, "rows": nil, "latency_ns": 52497.0, "thread_id": 19.0, "conn_id": 4.0, "pid": 77.0, "stmt_id": nil} {
		if m[k] != v {
			t.Errorf("json %s = %#v, want %#v", k, m[k], v)
		}
	}
	// a command without response: latency null
	r = &event.MySQLResult{Command: 0x19, HasStmt: true, StmtID: 3, Resp: event.MySQLNoResp}
	if err := json.Unmarshal(p.MySQL(nil, r), &m); err != nil || m["latency_ns"] != nil || m["stmt_id"] != 3.0 || m["query"] != nil || m["thread_id"] != nil {
		t.Errorf("no response: %v %v", m, err)
	}
	s := &event.MySQLStats{MySQLStatKey: event.MySQLStatKey{Side: event.MySQLServer, Command: 3}, Calls: 5, Answered: 5,
		Errors: 1, Rows: 9, P50Ns: 1000, P99Ns: 9000, MaxNs: 9100}
	if err := json.Unmarshal(p.MySQLStats(nil, 1, s, true), &m); err != nil || m["type"] != "mysql_stats" || m["p99_ns"] != 9000.0 || m["event"] != "exit" {
		t.Errorf("stats json: %v %v", m, err)
	}
	if l := string(AppendMySQLStatsLog(nil, s, false)); l != `mysql_stats{side="server",event="interval",command="COM_QUERY",calls="5",errors="1",unanswered="0",rows="9",p50="1.000",p99="9.000",max="9.100"}`+"\n" {
		t.Errorf("stats log %s", l)
	}
}

func TestMySQLFormatNoAllocs(t *testing.T) {
	r := mysqlSample()
	p := Printer{Clock: NewClock(nil)}
	b := make([]byte, 0, 4096)
	for _, js := range []bool{false, true} {
		p.JSON = js
		if n := testing.AllocsPerRun(50, func() { b = p.MySQL(b[:0], r); b = AppendMySQLLog(b[:0], r) }); n != 0 {
			t.Errorf("json=%v: %v allocations", js, n)
		}
	}
}

func TestMySQLTruncatedRows(t *testing.T) {
	p := Printer{Clock: NewClock(nil)}
	r := &event.MySQLResult{Command: 3, Query: []byte("SELECT 1"), QueryLen: 8, Resp: event.MySQLRows, Rows: 259, Columns: 1, Truncated: true, LatencyNs: 1000}
	if l := string(p.MySQL(nil, r)); !strings.Contains(l, `COM_QUERY "SELECT 1" -> rows >= 259 columns = 1 latency = 1us`) {
		t.Errorf("%s", l)
	}
}
