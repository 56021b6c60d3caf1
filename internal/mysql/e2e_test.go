package mysql_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/myclient"
	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
)

// server bootstraps MariaDB into a temporary directory and runs it in
// p.B on port 3306 of its addresses, v4 and v6 (killed at cleanup); it returns its unix socket, the
// oracle's way in (not TCP: netwatcher does not see it).
func server(t *testing.T, p *nstest.Pair) string {
	t.Helper()
	nstest.RequireTools(t, "mariadbd", "mariadb-install-db", "mariadb")
	dir := t.TempDir()
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--user=root").CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	var log bytes.Buffer
	cmd := p.B.Cmd("mariadbd", "--no-defaults", "--datadir="+data, "--user=root", "--socket="+sock,
		"--port=3306", "--bind-address="+p.B4.String()+","+p.B6.String(), "--skip-log-bin", "--innodb-buffer-pool-size=16M")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if err := exec.Command("mariadb", "--no-defaults", "--socket="+sock, "-uroot", "-e", "SELECT 1").Run(); err == nil {
			break
		}
		if i == 150 {
			t.Fatalf("mariadbd does not answer:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// a throwaway user without password, allowed from the other namespace
	if out, err := exec.Command("mariadb", "--no-defaults", "--socket="+sock, "-uroot", "-e",
		"CREATE USER 'nw'@'%'; GRANT ALL ON *.* TO 'nw'@'%'").CombinedOutput(); err != nil {
		t.Fatalf("create user: %v %s", err, out)
	}
	return sock
}

// status is SHOW GLOBAL STATUS (through the unix socket).
func status(t *testing.T, sock string) map[string]int64 {
	t.Helper()
	out, err := exec.Command("mariadb", "--no-defaults", "--socket="+sock, "-uroot", "-N", "-B", "-e", "SHOW GLOBAL STATUS").Output()
	if err != nil {
		t.Fatalf("SHOW GLOBAL STATUS: %v", err)
	}
	m := map[string]int64{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "\t"); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				m[k] = n
			}
		}
	}
	return m
}

// The script the mariadb client runs: 12 statements, one error (a missing
// table: 1146), a prepared statement in SQL (PREPARE/EXECUTE/DEALLOCATE
// are COM_QUERY), a result set of 50 rows.
const script = `CREATE DATABASE %[1]s;
USE %[1]s;
CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20));
INSERT INTO t VALUES (1,'a'),(2,'b'),(3,'c');
SELECT * FROM t;
SELECT * FROM missing_table;
PREPARE s FROM 'SELECT name FROM t WHERE id = ?';
SET @x = 2;
EXECUTE s USING @x;
DEALLOCATE PREPARE s;
UPDATE t SET name='z' WHERE id < 3;
SELECT seq FROM seq_1_to_50;
`

// binary runs the binary protocol from p.A (myclient: mariadb has no
// --ps-protocol) to the server's IPv6 address: COM_INIT_DB, COM_PING,
// COM_STMT_PREPARE, two COM_STMT_EXECUTE, COM_STMT_RESET, COM_STMT_CLOSE,
// a COM_QUERY, COM_QUIT.
func binary(t *testing.T, p *nstest.Pair, db string) {
	t.Helper()
	err := p.A.Do(func() error {
		c, err := myclient.Dial(netip.AddrPortFrom(p.B6, 3306).String(), "nw", 0)
		if err != nil {
			return err
		}
		defer c.Close() // on an error below (after Quit it has nothing to do)
		if err := c.InitDB(db); err != nil {
			return err
		}
		if err := c.Ping(); err != nil {
			return err
		}
		s, err := c.Prepare("SELECT id, name FROM t WHERE id >= ?")
		if err != nil {
			return err
		}
		for _, v := range []int64{2, 1} {
			if r, err := c.Execute(s, v); err != nil || r.Rows != int(4-v) {
				return fmt.Errorf("execute(%d): %d rows, %v", v, r.Rows, err)
			}
		}
		if err := c.Reset(s); err != nil {
			return err
		}
		if err := c.CloseStmt(s); err != nil {
			return err
		}
		if _, err := c.Query("SELECT COUNT(*) FROM t"); err != nil {
			return err
		}
		return c.Quit()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// call is a request with its response as both ends reported it.
type call struct {
	command, query, response string
	errCode, rows            float64
	latency                  float64
}

func calls(evs []nwtest.Ev) []call {
	var cs []call
	for _, e := range evs {
		cs = append(cs, call{e.Str("command"), e.Str("query"), e.Str("response"), e.Num("error_code"), e.Num("rows"), e.Num("latency_ns")})
	}
	return cs
}

var reLog = regexp.MustCompile(`^mysql\{netns="\d+",sock="0x[0-9a-f]+",src="[^"]+",dst="[^"]+",pid="\d+",comm="[^"]+",side="(client|server)",thread_id="\d+",command="[A-Za-z_]+",query=("[^"]*"|"-"),query_len="[-0-9]+",stmt_id="[-0-9]+",response="[a-z]+",error="[-0-9]+",sqlstate="[-0-9A-Z]+",affected="[-0-9]+",rows="[-0-9]+",latency="[-0-9.]+",truncated="0",(version="[^"]+",)?conn_id="\d+"\}$`)

// The oracle: the server's own counters (SHOW GLOBAL STATUS deltas) equal
// what netwatcher saw at the server's socket, command by command; the
// client's socket saw the same requests with the same responses, each
// waiting longer than the server took; the error is the one the client
// printed; alone and with -t -x -r.
func TestServerCountersMatch(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	sock := server(t, p)
	nsA, nsB := float64(p.A.Inode(t)), float64(p.B.Inode(t))
	for i, flags := range [][]string{{"-M"}, {"-M", "-t", "-x", "-r"}} {
		t.Run(strings.Join(flags, " "), func(t *testing.T) {
			db := fmt.Sprintf("nw%d", i)
			nw := nwtest.Start(t, flags...)
			before := status(t, sock)
			cmd := p.A.Cmd("mariadb", "--no-defaults", "-h", p.B4.String(), "-P3306", "-unw", "--force")
			cmd.Stdin = strings.NewReader(fmt.Sprintf(script, db))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			_ = cmd.Run() // exit 1: the error
			if !strings.Contains(stderr.String(), "ERROR 1146 (42S02)") {
				t.Fatalf("the client did not see the error: %s", stderr.String())
			}
			binary(t, p, db)
			after := status(t, sock)
			d := func(k string) int64 { return after[k] - before[k] }
			mine := func(e nwtest.Ev, side string, ns float64) bool {
				return e.Str("type") == "mysql" && e.Str("side") == side && e.Num("netns") == ns
			}
			// both ends' last records: the two sessions' COM_QUIT
			for _, w := range []struct {
				side string
				ns   float64
			}{{"server", nsB}, {"client", nsA}} {
				for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					q := nw.Find(func(e nwtest.Ev) bool { return mine(e, w.side, w.ns) && e.Str("command") == "COM_QUIT" })
					if len(q) == 2 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s side: %d COM_QUIT records", w.side, len(q))
					}
				}
			}
			nw.Stop()
			srv := nw.Find(func(e nwtest.Ev) bool { return mine(e, "server", nsB) })
			cli := nw.Find(func(e nwtest.Ev) bool { return mine(e, "client", nsA) })
			n := map[string]int64{}
			for _, e := range srv {
				n[e.Str("command")]++
			}
			t.Logf("server side: %v; status deltas: Questions %d Connections %d Com_stmt_prepare %d Com_stmt_execute %d Com_stmt_close %d Com_stmt_reset %d Com_admin_commands %d Com_change_db %d",
				n, d("Questions"), d("Connections"), d("Com_stmt_prepare"), d("Com_stmt_execute"), d("Com_stmt_close"), d("Com_stmt_reset"), d("Com_admin_commands"), d("Com_change_db"))
			// Questions: every COM_QUERY, COM_INIT_DB, COM_STMT_EXECUTE and
			// COM_QUIT; + 2 of the oracle's own (its second SHOW, and its
			// first session's COM_QUIT). SQL PREPARE/EXECUTE/DEALLOCATE also
			// count in Com_stmt_*: their Com_*_sql are taken off.
			for _, c := range []struct {
				what      string
				got, want int64
			}{
				{"Questions - 2", n["COM_QUERY"] + n["COM_INIT_DB"] + n["COM_STMT_EXECUTE"] + n["COM_QUIT"], d("Questions") - 2},
				{"Connections - 1", n["handshake"], d("Connections") - 1},
				{"Com_stmt_prepare - Com_prepare_sql", n["COM_STMT_PREPARE"], d("Com_stmt_prepare") - d("Com_prepare_sql")},
				{"Com_stmt_execute - Com_execute_sql", n["COM_STMT_EXECUTE"], d("Com_stmt_execute") - d("Com_execute_sql")},
				{"Com_stmt_close - Com_dealloc_sql", n["COM_STMT_CLOSE"], d("Com_stmt_close") - d("Com_dealloc_sql")},
				{"Com_stmt_reset", n["COM_STMT_RESET"], d("Com_stmt_reset")},
				{"Com_admin_commands (COM_PING)", n["COM_PING"], d("Com_admin_commands")},
				{"Com_change_db", n["COM_INIT_DB"], d("Com_change_db")},
			} {
				if c.got != c.want {
					t.Errorf("%s: netwatcher %d, server %d", c.what, c.got, c.want)
				}
			}
			if n["COM_QUERY"] < 13 || n["COM_STMT_PREPARE"] != 1 || n["COM_STMT_EXECUTE"] != 2 {
				t.Errorf("fewer requests than sent: %v", n)
			}
			// the error, the rows, the prepared statement
			var errs, rows50, rows3, prepared int
			for _, e := range srv {
				switch {
				case e.Str("response") == "error":
					errs++
					if e.Num("error_code") != 1146 || e.Str("sql_state") != "42S02" || e.Str("query") != "SELECT * FROM missing_table" {
						t.Errorf("error record %v", e)
					}
				case e.Str("query") == "SELECT seq FROM seq_1_to_50" && e.Num("rows") == 50 && e.Num("truncated") == 0:
					rows50++
				case e.Str("query") == "SELECT * FROM t" && e.Num("rows") == 3 && e.Num("columns") == 2:
					rows3++
				case e.Str("command") == "COM_STMT_PREPARE" && e.Str("response") == "prepared" && e.Num("params") == 1 && e.Num("columns") == 2:
					prepared++
				}
			}
			if errs != 1 || rows50 != 1 || rows3 != 1 || prepared != 1 {
				t.Errorf("errors %d, 50 rows %d, 3 rows %d, prepared %d", errs, rows50, rows3, prepared)
			}
			// the client's socket: the same calls, each longer than at the server
			cc, sc := calls(cli), calls(srv)
			if len(cc) != len(sc) {
				t.Fatalf("client side %d records, server side %d", len(cc), len(sc))
			}
			for k := range cc {
				c, s := cc[k], sc[k]
				lc, ls := c.latency, s.latency
				c.latency, s.latency = 0, 0
				if c != s {
					t.Errorf("%d: client %+v, server %+v", k, c, s)
				}
				// (the handshake's time runs from the greeting, which the
				// server sends first: no order between the two)
				if cli[k].Str("response") != "none" && !(lc > ls && ls > 0) && !(c.command == "handshake" && lc > 0 && ls > 0) {
					t.Errorf("%d %s: client latency %v, server %v", k, c.command, lc, ls)
				}
			}
			// identity: both ends, owners, connection numbers
			v4, v6 := 0, 0
			for _, e := range append(cli, srv...) {
				src, _ := netip.ParseAddrPort(e.Str("src"))
				dst, _ := netip.ParseAddrPort(e.Str("dst"))
				server, client := netip.AddrPortFrom(p.B4, 3306), p.A4
				if src.Addr().Is6() {
					server, client = netip.AddrPortFrom(p.B6, 3306), p.A6
					v6++
				} else {
					v4++
				}
				okEnd, comm := dst == server && src.Addr() == client, e.Str("comm")
				okComm := comm == "mariadb" || comm == filepath.Base(os.Args[0])[:min(15, len(filepath.Base(os.Args[0])))]
				if e.Str("side") == "server" {
					okEnd, okComm = src == server && dst.Addr() == client, comm == "mariadbd"
				}
				if !okEnd || !okComm || e["conn_id"] == nil || e["pid"] == nil || e["thread_id"] == nil {
					t.Errorf("identity: %v", e)
				}
			}
			if v4 == 0 || v6 != 2*10 { // the binary session: 10 records at each end
				t.Errorf("%d IPv4 records, %d IPv6 (want 20)", v4, v6)
			}
			// mysql.log: one line a record, well formed
			lines := strings.Split(strings.TrimSpace(nw.File("mysql.log")), "\n")
			nrec := 0
			for _, l := range lines {
				if strings.HasPrefix(l, "mysql{") && (strings.Contains(l, fmt.Sprintf(`netns="%d"`, int(nsA))) || strings.Contains(l, fmt.Sprintf(`netns="%d"`, int(nsB)))) {
					nrec++
					if !reLog.MatchString(l) {
						t.Errorf("mysql.log line: %s", l)
					}
				}
			}
			if nrec != len(cli)+len(srv) {
				t.Errorf("mysql.log: %d lines of the pair's namespaces, %d records", nrec, len(cli)+len(srv))
			}
			// the exit counters: the server's COM_QUERY calls and errors
			st := nw.Find(func(e nwtest.Ev) bool {
				return e.Str("type") == "mysql_stats" && e.Str("event") == "exit" && e.Str("side") == "server" && e.Str("command") == "COM_QUERY"
			})
			if len(st) != 1 || int64(st[0].Num("calls")) < n["COM_QUERY"] || st[0].Num("errors") < 1 || st[0]["p50_ns"] == nil {
				t.Errorf("exit counters: %v", st)
			}
		})
	}
}

// The address filters apply: -D (remote address) with the server's
// IPv6 address keeps the client's socket (remote: the server) and leaves
// the server's out (remote: the client).
func TestAddressFilter(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	sock := server(t, p)
	nsA, nsB := float64(p.A.Inode(t)), float64(p.B.Inode(t))
	nw := nwtest.Start(t, "-M", "-D", p.B6.String()+"/128")
	if out, err := exec.Command("mariadb", "--no-defaults", "--socket="+sock, "-uroot", "-e", "CREATE DATABASE f").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := exec.Command("mariadb", "--no-defaults", "--socket="+sock, "-uroot", "-e", "CREATE TABLE f.t (id INT, name TEXT); INSERT INTO f.t VALUES (1,'a'),(2,'b'),(3,'c')").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	binary(t, p, "f")
	nw.WaitFor(20*time.Second, "client COM_QUIT", func(e nwtest.Ev) bool {
		return e.Str("type") == "mysql" && e.Str("side") == "client" && e.Num("netns") == nsA && e.Str("command") == "COM_QUIT"
	})
	nw.Stop()
	cli := nw.Find(func(e nwtest.Ev) bool { return e.Str("type") == "mysql" && e.Num("netns") == nsA })
	srv := nw.Find(func(e nwtest.Ev) bool { return e.Str("type") == "mysql" && e.Num("netns") == nsB })
	if len(cli) != 10 || len(srv) != 0 { // handshake, INIT_DB, PING, PREPARE, 2 EXECUTE, RESET, CLOSE, QUERY, QUIT
		t.Errorf("-D %s: %d client records (want 10), %d server records (want 0)", p.B6, len(cli), len(srv))
	}
}
