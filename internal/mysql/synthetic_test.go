package mysql

import (
	"encoding/binary"
	"slices"
	"testing"
)

// session is a synthetic exchange: each entry one segment; the client's
// and the server's sequence numbers run on.
type session struct {
	segs     []seg
	cs, ss   uint32
	ts       uint64
	greeting bool
}

func newSession(greeting bool, deprEOF bool) *session {
	s := &session{cs: 1, ss: 1, ts: 1000}
	if greeting {
		g := append([]byte{10}, "8.0.36\x00"...)
		g = binary.LittleEndian.AppendUint32(g, 42) // thread id
		g = append(g, make([]byte, 30)...)
		s.srv(pkt(0, g))
		caps := uint32(capProtocol41)
		if deprEOF {
			caps |= capDeprecateEOF
		}
		hr := binary.LittleEndian.AppendUint32(nil, caps)
		hr = append(hr, make([]byte, 28)...)
		hr = append(hr, "app\x00\x00"...)
		s.cli(pkt(1, hr))
		s.srv(pkt(2, okBody()))
	}
	return s
}

func (s *session) cli(b ...[]byte) {
	d := slices.Concat(b...)
	s.ts += 10
	s.segs = append(s.segs, seg{client: true, ts: s.ts, seq: s.cs, data: d})
	s.cs += uint32(len(d))
}

func (s *session) srv(b ...[]byte) {
	d := slices.Concat(b...)
	s.ts += 10
	s.segs = append(s.segs, seg{client: false, ts: s.ts, seq: s.ss, data: d})
	s.ss += uint32(len(d))
}

func okBody() []byte  { return []byte{0, 0, 0, 2, 0, 0, 0} }
func eofBody() []byte { return []byte{0xfe, 0, 0, 2, 0} }
func errBody(code uint16) []byte {
	return append([]byte{0xff, byte(code), byte(code >> 8)}, "#HY000oops"...)
}
func colDef() []byte                 { return append([]byte{3}, "def\x00\x00\x00\x01c\x00"...) }
func cmd(c byte, arg ...byte) []byte { return append([]byte{c}, arg...) }

func (s *session) results(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, atServer := range []bool{false, true} {
		f := newFeeder(0)
		f.all(s.segs, atServer)
		f.t.Flush(f.emit)
		got := summaries(f.out)
		if atServer {
			for i := range got {
				if got[i][:7] != "server " {
					t.Fatalf("side: %q", got[i])
				}
				if got[i][7:] != out[i][7:] {
					t.Fatalf("server %q, client %q", got[i], out[i])
				}
			}
			continue
		}
		out = got
	}
	return out
}

// The commands the recordings do not have: COM_FIELD_LIST,
// COM_STATISTICS, COM_CHANGE_USER (with an authentication switch), LOCAL
// INFILE, COM_STMT_FETCH, COM_SET_OPTION, COM_STMT_SEND_LONG_DATA, an
// ERR in the middle of rows, a multi-result response ending in ERR.
func TestOtherCommands(t *testing.T) {
	s := newSession(true, false)
	s.cli(pkt(0, cmd(ComFieldList, []byte("t\x00")...)))
	s.srv(pkt(1, colDef()), pkt(2, colDef()), pkt(3, eofBody()))
	s.cli(pkt(0, cmd(ComStatistics)))
	s.srv(pkt(1, []byte("Uptime: 5  Threads: 1")))
	s.cli(pkt(0, cmd(ComChangeUser, []byte("bob\x00")...)))
	s.srv(pkt(1, append([]byte{0xfe}, "mysql_native_password\x00"...)))
	s.cli(pkt(2, make([]byte, 20)))
	s.srv(pkt(3, okBody()))
	s.cli(pkt(0, cmd(ComQuery, []byte("LOAD DATA LOCAL INFILE 'x' INTO TABLE t")...)))
	s.srv(pkt(1, append([]byte{0xfb}, 'x')))
	s.cli(pkt(2, []byte("1,2\n")), pkt(3, nil))
	s.srv(pkt(4, []byte{0, 1, 0, 2, 0, 0, 0}))
	s.cli(pkt(0, cmd(ComStmtSendLongData, 7, 0, 0, 0, 0, 0, 'x')))
	s.cli(pkt(0, cmd(ComStmtFetch, 7, 0, 0, 0, 10, 0, 0, 0)))
	s.srv(pkt(1, []byte{0, 0, 1}), pkt(2, []byte{0, 0, 2}), pkt(3, eofBody()))
	s.cli(pkt(0, cmd(ComSetOption, 0, 0)))
	s.srv(pkt(1, eofBody()))
	// rows, then an ERR (a query killed)
	s.cli(pkt(0, cmd(ComQuery, []byte("SELECT slow()")...)))
	s.srv(pkt(1, []byte{1}), pkt(2, colDef()), pkt(3, eofBody()), pkt(4, []byte{1, 'a'}), pkt(5, errBody(1317)))
	// a multi-result response: OK (more results), then ERR
	s.cli(pkt(0, cmd(ComQuery, []byte("DO 1; SELECT nope")...)))
	s.srv(pkt(1, []byte{0, 0, 0, 0x0a, 0, 0, 0}), pkt(2, errBody(1054)))
	s.cli(pkt(0, cmd(ComPing)))
	s.srv(pkt(1, okBody()))
	want := []string{
		`client handshake ok affected=0`,
		`client COM_FIELD_LIST eof "t\x00"`,
		`client COM_STATISTICS string`,
		`client COM_CHANGE_USER ok affected=0`,
		`client COM_QUERY ok "LOAD DATA LOCAL INFILE 'x' INTO TABLE t" affected=1`,
		`client COM_STMT_SEND_LONG_DATA none stmt=7`,
		`client COM_STMT_FETCH rows rows=2 cols=0 stmt=7`,
		`client COM_SET_OPTION eof`,
		`client COM_QUERY error "SELECT slow()" err=1317/HY000 rows=1 cols=1`,
		`client COM_QUERY error "DO 1; SELECT nope" err=1054/HY000`,
		`client COM_PING ok affected=0`,
	}
	if got := s.results(t); !slices.Equal(got, want) {
		t.Errorf("\ngot  %q\nwant %q", got, want)
	}
}

// Pipelined requests (MariaDB's connectors send COM_STMT_PREPARE and
// COM_STMT_EXECUTE at once) pair in order; CLIENT_DEPRECATE_EOF from the
// handshake: no EOF after the definitions, an OK (0xfe) ends the rows.
func TestPipelinedDeprecateEOF(t *testing.T) {
	s := newSession(true, true)
	prepOK := []byte{0, 5, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0} // stmt 5, 1 column, 1 param
	execute := cmd(ComStmtExecute, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0)
	s.cli(pkt(0, cmd(ComStmtPrepare, []byte("SELECT ?")...)), pkt(0, execute))
	endOK := []byte{0xfe, 0, 0, 2, 0, 0, 0}
	s.srv(pkt(1, prepOK), pkt(2, colDef()), pkt(3, colDef()), // param, column: no EOFs
		pkt(1, []byte{1}), pkt(2, colDef()), pkt(3, []byte{0, 0, 7}), pkt(4, []byte{0, 0, 8}), pkt(5, endOK))
	s.cli(pkt(0, cmd(ComStmtClose, 5, 0, 0, 0)), pkt(0, cmd(ComQuit)))
	want := []string{
		`client handshake ok affected=0`,
		`client COM_STMT_PREPARE prepared "SELECT ?" stmt=5 params=1`,
		`client COM_STMT_EXECUTE rows rows=2 cols=1 stmt=4294967295`,
		`client COM_STMT_CLOSE none stmt=5`,
		`client COM_QUIT none`,
	}
	if got := s.results(t); !slices.Equal(got, want) {
		t.Errorf("\ngot  %q\nwant %q", got, want)
	}
	// the handshake not seen (CLIENT_DEPRECATE_EOF unknown): the
	// prepare's end is known at the next packet
	s2 := &session{cs: 1, ss: 1, ts: 1000}
	s2.cli(pkt(0, cmd(ComStmtPrepare, []byte("SELECT ?")...)))
	s2.srv(pkt(1, prepOK), pkt(2, colDef()), pkt(3, colDef()))
	s2.cli(pkt(0, execute))
	s2.srv(pkt(1, []byte{1}), pkt(2, colDef()), pkt(3, []byte{0, 0, 7}), pkt(4, []byte{0, 0, 8}), pkt(5, endOK))
	if got := s2.results(t); !slices.Equal(got, want[1:3]) {
		t.Errorf("joined:\ngot  %q\nwant %q", got, want[1:3])
	}
}

// More requests in flight than kept: the oldest is reported unanswered;
// a refused handshake is an error record; a response to nothing is
// counted, not paired.
func TestEvictionRefusalUnmatched(t *testing.T) {
	s := newSession(false, false)
	for range maxPend + 1 {
		s.cli(pkt(0, cmd(ComPing)))
	}
	f := newFeeder(0)
	f.all(s.segs, false)
	f.t.Flush(f.emit)
	got := summaries(f.out)
	if len(got) != maxPend+1 || got[0] != "client COM_PING unanswered" || f.t.Evicted != 1 {
		t.Errorf("%q evicted %d", got, f.t.Evicted)
	}

	s = newSession(false, false)
	g := append([]byte{10}, "10.11\x00"...)
	s.srv(pkt(0, append(g, make([]byte, 40)...)))
	s.cli(pkt(1, append(binary.LittleEndian.AppendUint32(nil, capProtocol41), make([]byte, 40)...)))
	s.srv(pkt(2, append([]byte{0xff, 0x15, 0x04}, "#28000Access denied"...)))
	if got := s.results(t); !slices.Equal(got, []string{"client handshake error err=1045/28000"}) {
		t.Errorf("refused: %q", got)
	}

	s = newSession(true, false)
	s.cli(pkt(0, cmd(ComPing)))
	s.srv(pkt(1, okBody()), pkt(1, okBody())) // one answer too many
	s.cli(pkt(0, cmd(ComPing)))
	s.srv(pkt(1, okBody()))
	f = newFeeder(0)
	f.all(s.segs, true)
	if got := summaries(f.out); len(got) != 3 || f.t.Unmatched != 1 {
		t.Errorf("unmatched: %q %d", got, f.t.Unmatched)
	}
}
