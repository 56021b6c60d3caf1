package event

// MySQLQueryMax bounds the query text kept of a COM_QUERY or
// COM_STMT_PREPARE (bytes; a longer one is cut and marked truncated).
const MySQLQueryMax = 256

// MySQLSide says at which end of a MySQL connection a request was seen:
// the client's socket (it sends the command, receives the response: the
// latency the client waits) or the server's (receives, sends: the time the
// server takes). A host that runs both sees each request twice.
type MySQLSide uint8

const (
	MySQLClient MySQLSide = iota
	MySQLServer
)

func (s MySQLSide) String() string {
	if s == MySQLServer {
		return "server"
	}
	return "client"
}

// MySQLResp is the kind of a response.
type MySQLResp uint8

const (
	MySQLNoResp     MySQLResp = iota // the command has none (COM_QUIT, COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA)
	MySQLOK                          // OK packet (affected rows)
	MySQLErr                         // ERR packet (error code, SQL state)
	MySQLEOF                         // EOF packet alone (COM_SET_OPTION, COM_DEBUG, COM_FIELD_LIST's end)
	MySQLRows                        // a result set (Rows counted, no row data kept)
	MySQLPrepared                    // COM_STMT_PREPARE OK (statement id, columns, parameters)
	MySQLString                      // COM_STATISTICS's string (not kept)
	MySQLStream                      // COM_BINLOG_DUMP: a replication stream (not followed)
	MySQLTLS                         // handshake: the client asked for TLS (the connection is unreadable from here)
	MySQLUnanswered                  // no response seen (connection idle or gone, evicted, or at exit)
	MySQLUnknown                     // a response whose first bytes were not captured
)

var mysqlRespNames = [...]string{"none", "ok", "error", "eof", "rows", "prepared", "string", "stream", "tls", "unanswered", "unknown"}

func (r MySQLResp) String() string {
	if int(r) < len(mysqlRespNames) {
		return mysqlRespNames[r]
	}
	return "unknown"
}

// MySQLHandshake is the pseudo-command of a connection's handshake
// (server greeting -> authentication OK/ERR, or the client's TLS request).
const MySQLHandshake = 0x100

// MySQLResult is one request with its response (internal/mysql), for the
// sinks. Conn names the local socket and its owner: Src is the local end
// (the client at the client side, the server at the server side). Query
// and Version are valid until the Tracker's next call.
type MySQLResult struct {
	Side MySQLSide
	TS   uint64 // the response's end (the request's time when there is none)
	Conn Conn
	// Command: the command byte (COM_*), or MySQLHandshake.
	Command uint16
	// Query: COM_QUERY/COM_STMT_PREPARE text (at most MySQLQueryMax
	// bytes), COM_INIT_DB's schema, COM_FIELD_LIST's table; QueryLen is the
	// whole text's length (> len(Query): cut). Nothing else is kept.
	Query    []byte
	QueryLen uint32
	// StmtID: COM_STMT_* statement id; COM_STMT_PREPARE: the id given.
	StmtID   uint32
	HasStmt  bool
	Resp     MySQLResp
	ErrCode  uint16  // MySQLErr
	SQLState [5]byte // MySQLErr (zero when the server sent none)
	// Affected: rows affected (the last OK's). Rows: rows of the result
	// sets. Results: result sets and OKs of a multi-result response.
	Affected uint64
	Rows     uint64
	Results  uint16
	Columns  uint16 // first result set's columns; COM_STMT_PREPARE: the statement's
	Params   uint16 // COM_STMT_PREPARE: parameters
	Warnings uint16
	// LatencyNs: the response's end - the request's start (0: none).
	LatencyNs uint64
	// Truncated: bytes of the response were not captured (ring loss, or a
	// segment larger than the capture): Rows is a lower bound.
	Truncated bool
	// ThreadID: the server's connection id (from the greeting; 0: not seen).
	ThreadID uint32
	// Handshake only: server version (bounded), TLS, compression.
	Version  []byte
	Compress bool
}

// MySQLStatKey names one command at one side.
type MySQLStatKey struct {
	Side    MySQLSide
	Command uint16
}

// MySQLStats are one command's counts at one side since start.
type MySQLStats struct {
	MySQLStatKey
	// Calls = Answered + Unanswered + those without a response
	// (COM_QUIT, COM_STMT_CLOSE); Errors: of Answered.
	Calls, Answered, Errors, Unanswered, Rows uint64
	P50Ns, P99Ns, MaxNs                       uint64 // latency of the answered calls
	Changed                                   bool   // since the last interval line
}

var mysqlComNames = [...]string{
	"COM_SLEEP", "COM_QUIT", "COM_INIT_DB", "COM_QUERY", "COM_FIELD_LIST", "COM_CREATE_DB", "COM_DROP_DB",
	"COM_REFRESH", "COM_SHUTDOWN", "COM_STATISTICS", "COM_PROCESS_INFO", "COM_CONNECT", "COM_PROCESS_KILL",
	"COM_DEBUG", "COM_PING", "COM_TIME", "COM_DELAYED_INSERT", "COM_CHANGE_USER", "COM_BINLOG_DUMP",
	"COM_TABLE_DUMP", "COM_CONNECT_OUT", "COM_REGISTER_SLAVE", "COM_STMT_PREPARE", "COM_STMT_EXECUTE",
	"COM_STMT_SEND_LONG_DATA", "COM_STMT_CLOSE", "COM_STMT_RESET", "COM_SET_OPTION", "COM_STMT_FETCH",
	"COM_DAEMON", "COM_BINLOG_DUMP_GTID", "COM_RESET_CONNECTION",
}

// MySQLCommandName names a command byte (COM_QUERY), or the handshake.
func MySQLCommandName(c uint16) string {
	switch {
	case c == MySQLHandshake:
		return "handshake"
	case int(c) < len(mysqlComNames):
		return mysqlComNames[c]
	case c == 0xfa:
		return "COM_STMT_BULK_EXECUTE"
	}
	return "COM_UNKNOWN"
}
