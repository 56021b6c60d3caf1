package mysql

import "encoding/binary"

// Command bytes of the client/server protocol (MySQL's COM_*, MariaDB's
// COM_STMT_BULK_EXECUTE).
const (
	ComSleep            = 0x00
	ComQuit             = 0x01
	ComInitDB           = 0x02
	ComQuery            = 0x03
	ComFieldList        = 0x04
	ComCreateDB         = 0x05
	ComDropDB           = 0x06
	ComRefresh          = 0x07
	ComShutdown         = 0x08
	ComStatistics       = 0x09
	ComProcessInfo      = 0x0a
	ComConnect          = 0x0b
	ComProcessKill      = 0x0c
	ComDebug            = 0x0d
	ComPing             = 0x0e
	ComTime             = 0x0f
	ComDelayedInsert    = 0x10
	ComChangeUser       = 0x11
	ComBinlogDump       = 0x12
	ComTableDump        = 0x13
	ComConnectOut       = 0x14
	ComRegisterSlave    = 0x15
	ComStmtPrepare      = 0x16
	ComStmtExecute      = 0x17
	ComStmtSendLongData = 0x18
	ComStmtClose        = 0x19
	ComStmtReset        = 0x1a
	ComSetOption        = 0x1b
	ComStmtFetch        = 0x1c
	ComDaemon           = 0x1d
	ComBinlogDumpGTID   = 0x1e
	ComResetConnection  = 0x1f
	ComStmtBulkExecute  = 0xfa
	comLast             = ComResetConnection
)

// validCommand: a byte a client may send as a command (a resync looks
// for one at a segment's start).
func validCommand(c byte) bool { return c <= comLast || c == ComStmtBulkExecute }

// Capability flags (the handshake's).
const (
	capProtocol41   = 0x00000200
	capSSL          = 0x00000800
	capCompress     = 0x00000020
	capDeprecateEOF = 0x01000000
)

// Server status flags (OK and EOF packets).
const statusMoreResults = 0x0008

// maxPacket: a packet this long is continued by the next one.
const maxPacket = 0xffffff

// noResponse: the command gets no response.
func noResponse(c byte) bool {
	return c == ComQuit || c == ComStmtClose || c == ComStmtSendLongData
}

// hasStmtID: the command's payload starts with a statement id.
func hasStmtID(c byte) bool {
	switch c {
	case ComStmtExecute, ComStmtSendLongData, ComStmtClose, ComStmtReset, ComStmtFetch, ComStmtBulkExecute:
		return true
	}
	return false
}

// hasText: the command's payload after the byte is text worth keeping
// (bounded): the statement, the schema, the table.
func hasText(c byte) bool {
	switch c {
	case ComQuery, ComStmtPrepare, ComInitDB, ComFieldList, ComCreateDB, ComDropDB:
		return true
	}
	return false
}

// lenenc reads a length-encoded integer at the start of b: its value and
// size, ok false when b is too short or starts with 0xff/0xfb (not an
// integer).
func lenenc(b []byte) (v uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch c := b[0]; {
	case c < 0xfb:
		return uint64(c), 1, true
	case c == 0xfc && len(b) >= 3:
		return uint64(binary.LittleEndian.Uint16(b[1:])), 3, true
	case c == 0xfd && len(b) >= 4:
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, 4, true
	case c == 0xfe && len(b) >= 9:
		return binary.LittleEndian.Uint64(b[1:]), 9, true
	}
	return 0, 0, false
}

// okInfo reads an OK packet's body (after its header byte): affected
// rows, status flags and warnings; ok false when it is cut short.
func okInfo(b []byte) (affected uint64, status, warnings uint16, ok bool) {
	a, n, ok1 := lenenc(b)
	if !ok1 {
		return 0, 0, 0, false
	}
	b = b[n:]
	_, n, ok1 = lenenc(b) // last insert id
	if !ok1 || len(b) < n+4 {
		return a, 0, 0, false
	}
	b = b[n:]
	return a, binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:]), true
}
