package mysql

import (
	"encoding/binary"

	"github.com/netwatcher/netwatcher/internal/event"
)

// keepMax: bytes of a packet's payload kept while it is read: the command
// byte and the query bound (a response needs far fewer: OK, ERR, EOF and
// PREPARE_OK headers fit in 20).
const keepMax = 1 + event.MySQLQueryMax

// maxPend: requests waiting for their responses on one connection. The
// protocol allows one in flight; MariaDB's connectors pipeline a few
// (COM_STMT_PREPARE + COM_STMT_EXECUTE). Past it the oldest is reported
// unanswered.
const maxPend = 4

// dir is one direction's framing: where the next packet header is.
type dir struct {
	next     uint32 // TCP sequence number expected next
	hasNext  bool
	lost     bool // framing lost: the bytes are skipped until a resync point
	nh       uint8
	hdr      [4]byte
	seq      uint8
	cont     bool // the current packet continues the previous one (maxPacket long)
	contNext bool
	hole     bool   // bytes of the current packet were not captured
	plen     uint32 // the current packet's payload length
	rem      uint32 // of it still to come
	nbuf     uint16
	ts       uint64 // time of the segment that carried the packet's first byte
	buf      [keepMax]byte
}

func (d *dir) resync() {
	d.lost, d.nh, d.cont, d.contNext = false, 0, false, false
}

// phase of a connection.
type phase uint8

const (
	phUnknown phase = iota // joined mid-connection: waiting for a command (or a greeting)
	phAuth                 // greeting seen: authentication until the server's OK/ERR
	phCommand              // command phase
	phOff                  // unreadable from here: TLS, compression, replication stream
)

// rstate: where the response to the oldest pending request is.
type rstate uint8

const (
	rsStart     rstate = iota // its first packet (or the next result of a multi-result response)
	rsColDefs                 // column definitions (c.defs left)
	rsColEOF                  // the EOF after them (absent with CLIENT_DEPRECATE_EOF)
	rsRows                    // rows until EOF/OK (0xfe) or ERR
	rsPrepDefs                // COM_STMT_PREPARE: parameter then column definitions
	rsPrepEOF                 // the EOF after a group of them
	rsInfile                  // LOCAL INFILE: the client sends the file, then OK/ERR
	rsAuth                    // COM_CHANGE_USER: authentication until OK/ERR
	rsFieldList               // COM_FIELD_LIST: column definitions until EOF
	rsFetch                   // COM_STMT_FETCH: rows until EOF
	rsLost                    // bytes missed: the rest is skipped until the next command
)

// pendReq is a request waiting for its response.
type pendReq struct {
	ts      uint64
	cmd     byte
	hasStmt bool
	stmt    uint32
	qlen    uint32
	nq      uint16
	q       [event.MySQLQueryMax]byte
}

// cur is the response being read.
type cur struct {
	set       bool
	resp      event.MySQLResp
	errCode   uint16
	sqlState  [5]byte
	affected  uint64
	rows      uint64
	results   uint16
	columns   uint16
	params    uint16
	warnings  uint16
	stmt      uint32
	hasStmt   bool
	truncated bool
}

func (r *cur) setResp(k event.MySQLResp) {
	if !r.set || k == event.MySQLErr {
		r.resp, r.set = k, true
	}
}

// conn is one connection seen at one socket (client's or server's).
type conn struct {
	key      connKey
	side     event.MySQLSide
	owner    event.Conn // pid, comm, owner source (the latest known)
	phase    phase
	deprEOF  int8 // CLIENT_DEPRECATE_EOF: -1 unknown (handshake not seen), 0, 1
	thread   uint32
	nver     uint8
	version  [48]byte
	greetTS  uint64
	compress bool // the client asked for compression: unreadable after the handshake
	cli, srv dir
	// pending requests: a ring of maxPend, oldest at ph
	pend      [maxPend]pendReq
	ph, pn    uint8
	rs        rstate
	r         cur
	defs      uint64 // definitions left in this group
	defs2     uint64 // COM_STMT_PREPARE: column definitions after the parameters'
	maybeDone bool   // the response ended unless an EOF follows (CLIENT_DEPRECATE_EOF unknown)
	orphan    bool   // server bytes with no request pending: skipped until the next command
	srvResync bool   // the server's framing was lost: restart at its next response's start
	lastSrv   uint64 // time of the last server segment (the end of a response cut short)
	lastSeen  uint64
	quit      bool // COM_QUIT or a refused handshake: the state can go
}

func (c *conn) reset(k connKey, side event.MySQLSide) {
	*c = conn{key: k, side: side, deprEOF: -1}
	c.cli.lost, c.srv.lost = true, true // where packets start is not known yet
}

// segment takes one TCP segment's payload in this connection: seq is its
// first byte's sequence number, data the captured bytes, paylen all of
// them (data is a prefix). Retransmitted bytes are skipped; bytes never
// seen lose the direction's framing until a resync point (a command at a
// segment's start; the server's greeting or first response packet).
func (c *conn) segment(t *Tracker, fromClient bool, ts uint64, seq uint32, data []byte, paylen int, emit func(*event.MySQLResult)) {
	d := &c.srv
	if fromClient {
		d = &c.cli
	}
	if c.quit {
		return // after COM_QUIT (a retransmission, the close)
	}
	c.lastSeen = ts
	prevSrv := c.lastSrv
	if !fromClient {
		c.lastSrv = ts
	}
	if d.hasNext {
		switch gap := int32(seq - d.next); {
		case gap < 0: // a retransmission, or overlapping one
			skip := int(-gap)
			if skip >= paylen {
				t.Retransmits++
				return
			}
			if skip > len(data) {
				c.lose(t, d, fromClient)
				data = nil
			} else {
				data = data[skip:]
			}
			paylen -= skip
			seq = d.next
		case gap > 0:
			t.Gaps++
			c.lose(t, d, fromClient)
		}
	}
	d.next, d.hasNext = seq+uint32(paylen), true
	if c.phase == phOff {
		return
	}
	if d.lost {
		if !c.resyncAt(d, fromClient, data) {
			return
		}
		d.resync()
		if !fromClient && c.pn > 1 {
			// One in flight: what starts here answers the latest request;
			// the older ones' responses were in the bytes missed.
			for c.pn > 1 {
				c.r.truncated = true
				c.complete(t, prevSrv, emit)
			}
			c.rs = rsStart
		}
	}
	c.feed(t, d, fromClient, ts, data, paylen-len(data), emit)
}

// resyncAt: whether a lost direction's framing restarts at this segment.
func (c *conn) resyncAt(d *dir, fromClient bool, b []byte) bool {
	if len(b) < 5 {
		return false
	}
	plen := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
	if plen == 0 {
		return false
	}
	if fromClient {
		return b[3] == 0 && validCommand(b[4]) && c.phase != phAuth ||
			b[3] == 1 && c.phase == phAuth // the handshake response
	}
	if b[3] == 0 && b[4] == 10 && c.pn == 0 { // a greeting
		return true
	}
	if c.srvResync && c.pn > 0 && b[3] == 1 {
		c.srvResync = false
		return true
	}
	return false
}

// lose: bytes of a direction were missed.
func (c *conn) lose(t *Tracker, d *dir, fromClient bool) {
	if d.lost {
		return
	}
	t.Lost++
	d.lost = true
	if fromClient {
		return
	}
	c.srvResync = true
	if c.phase == phCommand && c.pn > 0 {
		c.r.truncated = true
		c.rs = rsLost
	}
}

// feed reads a segment's captured bytes, then accounts for missing more
// that were not captured.
func (c *conn) feed(t *Tracker, d *dir, fromClient bool, ts uint64, data []byte, missing int, emit func(*event.MySQLResult)) {
	for len(data) > 0 {
		if d.lost || c.phase == phOff {
			return
		}
		if d.nh < 4 {
			n := copy(d.hdr[d.nh:], data)
			d.nh += uint8(n)
			data = data[n:]
			if d.nh < 4 {
				break
			}
			d.plen = uint32(d.hdr[0]) | uint32(d.hdr[1])<<8 | uint32(d.hdr[2])<<16
			d.seq, d.rem, d.nbuf, d.hole, d.ts = d.hdr[3], d.plen, 0, false, ts
			d.cont, d.contNext = d.contNext, d.plen == maxPacket
			if d.rem == 0 {
				d.nh = 0
				c.packet(t, d, fromClient, ts, emit)
			}
			continue
		}
		n := min(int(d.rem), len(data))
		if k := min(n, keepMax-int(d.nbuf)); k > 0 {
			copy(d.buf[d.nbuf:], data[:k])
			d.nbuf += uint16(k)
		}
		d.rem -= uint32(n)
		data = data[n:]
		if d.rem == 0 {
			d.nh = 0
			c.packet(t, d, fromClient, ts, emit)
		}
	}
	if missing <= 0 || d.lost || c.phase == phOff {
		return
	}
	if d.nh == 4 && int(d.rem) >= missing { // inside a packet's payload
		d.rem -= uint32(missing)
		d.hole = true
		if d.rem == 0 {
			d.nh = 0
			c.packet(t, d, fromClient, ts, emit)
		}
		return
	}
	t.Uncaptured++
	c.lose(t, d, fromClient) // a header was not captured
}

// packet handles one whole packet (its first keepMax bytes).
func (c *conn) packet(t *Tracker, d *dir, fromClient bool, ts uint64, emit func(*event.MySQLResult)) {
	t.Packets++
	body := d.buf[:d.nbuf]
	if d.cont {
		return // the rest of a long packet
	}
	if fromClient {
		c.clientPacket(t, d, body, emit)
	} else {
		c.serverPacket(t, d, body, ts, emit)
	}
}

func (c *conn) clientPacket(t *Tracker, d *dir, body []byte, emit func(*event.MySQLResult)) {
	switch c.phase {
	case phAuth:
		if d.seq != 1 || len(body) < 4 {
			return // authentication data
		}
		caps := binary.LittleEndian.Uint32(body)
		if caps&capProtocol41 == 0 {
			return
		}
		c.deprEOF = 0
		if caps&capDeprecateEOF != 0 {
			c.deprEOF = 1
		}
		if caps&capSSL != 0 && d.plen == 32 { // SSLRequest: TLS from here
			t.TLS++
			c.handshake(t, event.MySQLTLS, d.ts, emit, nil)
			c.phase = phOff
			return
		}
		c.compress = caps&capCompress != 0
	case phUnknown, phCommand:
		if d.seq != 0 || len(body) == 0 || !validCommand(body[0]) {
			return // LOCAL INFILE data, COM_CHANGE_USER authentication
		}
		c.phase = phCommand
		c.command(t, d, body, emit)
	}
}

// handshake emits the connection's handshake result.
func (c *conn) handshake(t *Tracker, resp event.MySQLResp, ts uint64, emit func(*event.MySQLResult), errPkt []byte) {
	r := t.result(c, ts)
	r.Command = event.MySQLHandshake
	r.Resp = resp
	r.Version = c.version[:c.nver]
	r.Compress = c.compress
	if c.greetTS != 0 && ts >= c.greetTS {
		r.LatencyNs = ts - c.greetTS
	}
	if resp == event.MySQLErr {
		r.ErrCode, r.SQLState = errInfo(errPkt)
	}
	t.count(r)
	emit(r)
	c.r = cur{}
}

func errInfo(b []byte) (code uint16, state [5]byte) {
	if len(b) >= 3 {
		code = binary.LittleEndian.Uint16(b[1:])
	}
	if len(b) >= 9 && b[3] == '#' {
		copy(state[:], b[4:9])
	}
	return
}

// command registers a request.
func (c *conn) command(t *Tracker, d *dir, body []byte, emit func(*event.MySQLResult)) {
	t.Commands++
	c.orphan = false
	// One in flight: a response cut short ended when this was sent.
	if c.pn > 0 && (c.rs == rsLost || c.maybeDone) {
		c.complete(t, c.lastSrv, emit)
	}
	if c.pn == maxPend {
		t.Evicted++
		c.unanswered(t, emit)
	}
	p := &c.pend[(int(c.ph)+int(c.pn))%maxPend]
	cmd := body[0]
	p.ts, p.cmd, p.hasStmt, p.stmt, p.qlen, p.nq = d.ts, cmd, false, 0, 0, 0
	if hasStmtID(cmd) && len(body) >= 5 {
		p.hasStmt, p.stmt = true, binary.LittleEndian.Uint32(body[1:])
	}
	if hasText(cmd) {
		p.qlen = d.plen - 1
		p.nq = uint16(copy(p.q[:], body[1:]))
	}
	c.pn++
	if d.plen == maxPacket {
		p.qlen = maxPacket - 1 // continued: at least this long
	}
	if noResponse(cmd) {
		c.complete(t, d.ts, emit)
		if cmd == ComQuit {
			c.quit = true
		}
		return
	}
	if c.srv.lost {
		c.srvResync = true
	}
}

// serverPacket reads the server's packets: greeting, authentication,
// responses.
func (c *conn) serverPacket(t *Tracker, d *dir, body []byte, ts uint64, emit func(*event.MySQLResult)) {
	if d.seq == 0 && len(body) > 0 && body[0] == 10 && c.pn == 0 {
		c.greeting(d, body)
		return
	}
	switch c.phase {
	case phAuth:
		if len(body) == 0 {
			return
		}
		switch body[0] {
		case 0x00:
			c.phase = phCommand
			c.handshake(t, event.MySQLOK, ts, emit, nil)
			if c.compress {
				t.Compressed++
				c.phase = phOff
			}
		case 0xff:
			c.handshake(t, event.MySQLErr, ts, emit, body)
			c.quit = true
			c.phase = phUnknown
		}
	case phCommand:
		c.response(t, d, body, ts, emit)
	}
}

// greeting reads the server's handshake (protocol 10): version, thread id.
func (c *conn) greeting(d *dir, b []byte) {
	c.phase, c.greetTS, c.nver, c.thread, c.deprEOF = phAuth, d.ts, 0, 0, -1
	c.r = cur{}
	b = b[1:]
	for i, x := range b {
		if x == 0 {
			c.nver = uint8(copy(c.version[:], b[:i]))
			if len(b) >= i+5 {
				c.thread = binary.LittleEndian.Uint32(b[i+1:])
			}
			return
		}
	}
	c.nver = uint8(copy(c.version[:], b))
}

func isEOF(b []byte, plen uint32) bool { return len(b) > 0 && b[0] == 0xfe && plen < 9 }

// response reads one server packet of the command phase.
func (c *conn) response(t *Tracker, d *dir, b []byte, ts uint64, emit func(*event.MySQLResult)) {
	if c.maybeDone {
		c.maybeDone = false
		if isEOF(b, d.plen) {
			c.complete(t, ts, emit)
			return
		}
		c.complete(t, c.lastSrv, emit)
	}
	if c.pn == 0 {
		if !c.orphan {
			t.Unmatched++
			c.orphan = true
		}
		return
	}
	r := &c.r
	if len(b) == 0 {
		if d.plen > 0 { // its first byte was not captured
			r.truncated = true
			if c.rs == rsRows || c.rs == rsFetch {
				r.rows++
				return
			}
			r.setResp(event.MySQLUnknown)
			c.rs = rsLost
		}
		return
	}
	if d.hole && int(d.nbuf) < 12 {
		r.truncated = true
	}
	p := &c.pend[c.ph]
	b0, plen := b[0], d.plen
	switch c.rs {
	case rsStart:
		c.first(t, p.cmd, b, plen, ts, emit)
	case rsColDefs:
		c.defs--
		if c.defs == 0 {
			c.rs = rsColEOF
			if c.deprEOF == 1 {
				c.rs = rsRows
			}
		}
	case rsColEOF:
		c.rs = rsRows
		if b0 == 0xfe && (plen == 5 || c.deprEOF == 0 && plen < 9) {
			return // the EOF after the columns
		}
		c.row(t, b, plen, ts, emit)
	case rsRows:
		c.row(t, b, plen, ts, emit)
	case rsPrepDefs:
		c.defs--
		if c.defs == 0 {
			c.prepGroupEnd(t, ts, emit)
		}
	case rsPrepEOF:
		if isEOF(b, plen) {
			c.prepNext(t, ts, emit)
			return
		}
		// no EOF (CLIENT_DEPRECATE_EOF): this is the next group's first definition
		c.prepNext(t, ts, emit)
		if c.rs == rsPrepDefs {
			c.defs--
			if c.defs == 0 {
				c.prepGroupEnd(t, ts, emit)
			}
		}
	case rsInfile, rsAuth:
		switch b0 {
		case 0x00:
			c.ok(t, b, plen, ts, emit)
		case 0xff:
			c.err(t, b, ts, emit)
		}
	case rsFieldList:
		switch {
		case isEOF(b, plen):
			r.setResp(event.MySQLEOF)
			c.complete(t, ts, emit)
		case b0 == 0xff:
			c.err(t, b, ts, emit)
		default:
			r.columns++
		}
	case rsFetch:
		switch {
		case isEOF(b, plen):
			r.setResp(event.MySQLRows)
			c.complete(t, ts, emit)
		case b0 == 0xff:
			c.err(t, b, ts, emit)
		default:
			r.rows++
		}
	}
}

// first reads a response's first packet (or a multi-result response's
// next result).
func (c *conn) first(t *Tracker, cmd byte, b []byte, plen uint32, ts uint64, emit func(*event.MySQLResult)) {
	r := &c.r
	b0 := b[0]
	switch {
	case b0 == 0xff:
		c.err(t, b, ts, emit)
	case cmd == ComStatistics:
		r.setResp(event.MySQLString)
		c.complete(t, ts, emit)
	case cmd == ComBinlogDump || cmd == ComBinlogDumpGTID:
		r.setResp(event.MySQLStream)
		c.complete(t, ts, emit)
		c.phase = phOff
	case b0 == 0x00 && cmd == ComStmtPrepare:
		r.setResp(event.MySQLPrepared)
		if len(b) >= 9 {
			r.stmt, r.hasStmt = binary.LittleEndian.Uint32(b[1:]), true
			r.columns = binary.LittleEndian.Uint16(b[5:])
			r.params = binary.LittleEndian.Uint16(b[7:])
		} else {
			r.truncated = true
		}
		if len(b) >= 12 {
			r.warnings = binary.LittleEndian.Uint16(b[10:])
		}
		c.defs, c.defs2 = uint64(r.params), uint64(r.columns)
		if c.defs == 0 {
			c.defs, c.defs2 = c.defs2, 0
		}
		if c.defs == 0 {
			c.complete(t, ts, emit)
			return
		}
		c.rs = rsPrepDefs
	case b0 == 0x00 && plen >= 7:
		c.ok(t, b, plen, ts, emit)
	case cmd == ComChangeUser:
		c.rs = rsAuth // auth switch (0xfe) or more data (0x01)
	case isEOF(b, plen):
		r.setResp(event.MySQLEOF)
		c.complete(t, ts, emit)
	case b0 == 0xfb && cmd == ComQuery:
		c.rs = rsInfile
	case cmd == ComFieldList:
		r.columns++
		c.rs = rsFieldList
	case cmd == ComStmtFetch:
		r.rows++
		c.rs = rsFetch
	default: // a result set's column count
		n, k, ok := lenenc(b)
		if !ok || n == 0 {
			t.BadPackets++
			r.setResp(event.MySQLUnknown)
			c.rs = rsLost
			return
		}
		r.setResp(event.MySQLRows)
		if r.results == 0 {
			r.columns = uint16(min(n, 0xffff))
		}
		r.results++
		c.defs = n
		// MariaDB's cached metadata: a byte after the count, 0 = no definitions
		if int(plen) > k && len(b) > k && b[k] == 0 {
			c.defs = 0
		}
		c.rs = rsColDefs
		if c.defs == 0 {
			c.rs = rsColEOF
			if c.deprEOF == 1 {
				c.rs = rsRows
			}
		}
	}
}

// row reads a packet of a result set's rows: a row, its end (EOF, or an
// OK with the 0xfe header), or an ERR.
func (c *conn) row(t *Tracker, b []byte, plen uint32, ts uint64, emit func(*event.MySQLResult)) {
	r := &c.r
	switch {
	case b[0] == 0xff:
		c.err(t, b, ts, emit)
	case b[0] == 0xfe && plen < maxPacket:
		var status uint16
		if plen < 9 { // EOF
			if len(b) >= 5 {
				r.warnings = binary.LittleEndian.Uint16(b[1:])
				status = binary.LittleEndian.Uint16(b[3:])
			}
		} else if _, st, w, ok := okInfo(b[1:]); ok {
			status, r.warnings = st, w
		}
		if status&statusMoreResults != 0 {
			c.rs = rsStart
			return
		}
		c.complete(t, ts, emit)
	default:
		r.rows++
	}
}

func (c *conn) ok(t *Tracker, b []byte, plen uint32, ts uint64, emit func(*event.MySQLResult)) {
	r := &c.r
	r.setResp(event.MySQLOK)
	r.results++
	a, status, w, ok := okInfo(b[1:])
	if !ok {
		r.truncated = true
	}
	r.affected, r.warnings = a, w
	if status&statusMoreResults != 0 {
		c.rs = rsStart
		return
	}
	c.complete(t, ts, emit)
}

func (c *conn) err(t *Tracker, b []byte, ts uint64, emit func(*event.MySQLResult)) {
	r := &c.r
	r.setResp(event.MySQLErr)
	r.errCode, r.sqlState = errInfo(b)
	c.complete(t, ts, emit)
}

// prepGroupEnd: a group of COM_STMT_PREPARE definitions read.
func (c *conn) prepGroupEnd(t *Tracker, ts uint64, emit func(*event.MySQLResult)) {
	switch c.deprEOF {
	case 1:
		c.prepNext(t, ts, emit)
	case 0:
		c.rs = rsPrepEOF
	default:
		if c.defs2 > 0 {
			c.rs = rsPrepEOF // the next packet says (EOF, or a definition)
		} else {
			c.maybeDone = true // done, unless an EOF follows
		}
	}
}

// prepNext: the next group of definitions, or the end.
func (c *conn) prepNext(t *Tracker, ts uint64, emit func(*event.MySQLResult)) {
	if c.defs2 == 0 {
		c.complete(t, ts, emit)
		return
	}
	c.defs, c.defs2 = c.defs2, 0
	c.rs = rsPrepDefs
}

// complete emits the oldest request with the response read.
func (c *conn) complete(t *Tracker, ts uint64, emit func(*event.MySQLResult)) {
	p := &c.pend[c.ph]
	r := t.result(c, ts)
	if !c.r.set && !noResponse(p.cmd) {
		c.r.resp, c.r.set = event.MySQLUnknown, true
	}
	c.fill(r, p)
	if noResponse(p.cmd) {
		r.TS = p.ts
	} else if ts > p.ts {
		r.LatencyNs = ts - p.ts
	}
	t.count(r)
	emit(r)
	c.pop()
}

// unanswered emits the oldest request without a response.
func (c *conn) unanswered(t *Tracker, emit func(*event.MySQLResult)) {
	p := &c.pend[c.ph]
	r := t.result(c, p.ts)
	c.r = cur{resp: event.MySQLUnanswered, set: true, truncated: c.r.truncated}
	c.fill(r, p)
	t.count(r)
	emit(r)
	c.pop()
}

func (c *conn) fill(r *event.MySQLResult, p *pendReq) {
	x := &c.r
	r.Command = uint16(p.cmd)
	r.Query, r.QueryLen = p.q[:p.nq], p.qlen
	r.StmtID, r.HasStmt = p.stmt, p.hasStmt
	if x.hasStmt {
		r.StmtID, r.HasStmt = x.stmt, true
	}
	r.Resp, r.ErrCode, r.SQLState = x.resp, x.errCode, x.sqlState
	r.Affected, r.Rows, r.Results = x.affected, x.rows, x.results
	r.Columns, r.Params, r.Warnings, r.Truncated = x.columns, x.params, x.warnings, x.truncated
}

func (c *conn) pop() {
	c.ph = (c.ph + 1) % maxPend
	c.pn--
	c.r = cur{}
	c.rs = rsStart
	c.maybeDone = false
	c.defs, c.defs2 = 0, 0
}

// flush ends a connection's state: a response that ended unless an EOF
// followed is complete, one cut short is reported with what was read
// (end), the other requests are unanswered.
func (c *conn) flush(t *Tracker, emit func(*event.MySQLResult)) {
	if c.pn > 0 && (c.maybeDone || c.rs == rsLost) {
		c.complete(t, c.lastSrv, emit)
	}
	for c.pn > 0 {
		c.unanswered(t, emit)
	}
}
