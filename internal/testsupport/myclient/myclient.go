// Package myclient is a tiny MySQL/MariaDB client for tests: the classic
// protocol over TCP, user without password (mysql_native_password with an
// empty answer), text queries, the binary protocol's COM_STMT_PREPARE /
// EXECUTE / RESET / CLOSE, COM_PING, COM_INIT_DB, COM_QUIT. It reads every
// response whole (result sets: rows counted, their data dropped). No
// driver is vendored in the module: this is enough to drive the server
// through the commands the mysql client does not send (mariadb has no
// --ps-protocol).
package myclient

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Capability flags sent.
const (
	capLongPassword  = 0x00000001
	capConnectWithDB = 0x00000008
	capProtocol41    = 0x00000200
	capTransactions  = 0x00002000
	capSecureConn    = 0x00008000
	capMultiStmts    = 0x00010000
	capMultiResults  = 0x00020000
	capPluginAuth    = 0x00080000
	CapDeprecateEOF  = 0x01000000
)

// Conn is one connection.
type Conn struct {
	c        net.Conn
	r        *bufio.Reader
	seq      byte
	caps     uint32
	ThreadID uint32
}

// Err is an ERR packet.
type Err struct {
	Code  uint16
	State string
	Msg   string
}

func (e *Err) Error() string { return fmt.Sprintf("ERROR %d (%s): %s", e.Code, e.State, e.Msg) }

// Result is what a response said.
type Result struct {
	Affected uint64
	Rows     int
	Columns  int
}

// Dial connects and logs in as user (no password); extra capability
// flags (CapDeprecateEOF) are asked for.
func Dial(addr, user string, extra uint32) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	c := &Conn{c: nc, r: bufio.NewReader(nc)}
	g, err := c.read()
	if err != nil {
		nc.Close()
		return nil, err
	}
	if len(g) < 1 || g[0] != 10 {
		nc.Close()
		return nil, errors.New("not a protocol 10 greeting")
	}
	for i, b := range g[1:] {
		if b == 0 {
			if len(g) >= i+6 {
				c.ThreadID = binary.LittleEndian.Uint32(g[i+2:])
			}
			break
		}
	}
	c.caps = capLongPassword | capProtocol41 | capTransactions | capSecureConn | capMultiStmts | capMultiResults | capPluginAuth | extra
	p := binary.LittleEndian.AppendUint32(nil, c.caps)
	p = binary.LittleEndian.AppendUint32(p, 1<<24)
	p = append(p, 33) // utf8
	p = append(p, make([]byte, 23)...)
	p = append(p, user...)
	p = append(p, 0, 0) // user NUL, empty auth response
	p = append(p, "mysql_native_password"...)
	p = append(p, 0)
	if err := c.write(p); err != nil {
		nc.Close()
		return nil, err
	}
	for {
		b, err := c.read()
		if err != nil {
			nc.Close()
			return nil, err
		}
		switch b[0] {
		case 0x00:
			return c, nil
		case 0xff:
			nc.Close()
			return nil, errPacket(b)
		case 0xfe: // auth switch: the empty answer again
			if err := c.write(nil); err != nil {
				nc.Close()
				return nil, err
			}
		}
	}
}

func (c *Conn) read() ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return nil, err
	}
	n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	c.seq = h[3] + 1
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return nil, err
	}
	if n == 0 {
		return []byte{0}, nil
	}
	return b, nil
}

func (c *Conn) write(p []byte) error {
	h := []byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), c.seq}
	c.seq++
	_, err := c.c.Write(append(h, p...))
	return err
}

func (c *Conn) command(cmd byte, arg []byte) error {
	c.seq = 0
	return c.write(append([]byte{cmd}, arg...))
}

func errPacket(b []byte) error {
	e := &Err{}
	if len(b) >= 3 {
		e.Code = binary.LittleEndian.Uint16(b[1:])
	}
	if len(b) >= 9 && b[3] == '#' {
		e.State, e.Msg = string(b[4:9]), string(b[9:])
	}
	return e
}

func lenenc(b []byte) (uint64, int) {
	switch {
	case len(b) == 0:
		return 0, 0
	case b[0] < 0xfb:
		return uint64(b[0]), 1
	case b[0] == 0xfc:
		return uint64(binary.LittleEndian.Uint16(b[1:])), 3
	case b[0] == 0xfd:
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, 4
	}
	return binary.LittleEndian.Uint64(b[1:]), 9
}

// response reads a whole response: OK, ERR or result set(s).
func (c *Conn) response() (Result, error) {
	var res Result
	for {
		b, err := c.read()
		if err != nil {
			return res, err
		}
		var status uint16
		switch {
		case b[0] == 0xff:
			return res, errPacket(b)
		case b[0] == 0x00 && len(b) >= 7:
			a, n := lenenc(b[1:])
			_, m := lenenc(b[1+n:])
			res.Affected = a
			status = binary.LittleEndian.Uint16(b[1+n+m:])
		default:
			cols, _ := lenenc(b)
			res.Columns = int(cols)
			for i := 0; i < int(cols); i++ {
				if _, err := c.read(); err != nil {
					return res, err
				}
			}
			if c.caps&CapDeprecateEOF == 0 {
				if _, err := c.read(); err != nil {
					return res, err
				}
			}
			for {
				b, err := c.read()
				if err != nil {
					return res, err
				}
				if b[0] == 0xff {
					return res, errPacket(b)
				}
				if b[0] == 0xfe && len(b) < 0xffffff {
					if len(b) < 9 {
						status = binary.LittleEndian.Uint16(b[3:])
					} else {
						_, n := lenenc(b[1:])
						_, m := lenenc(b[1+n:])
						status = binary.LittleEndian.Uint16(b[1+n+m:])
					}
					break
				}
				res.Rows++
			}
		}
		if status&0x0008 == 0 { // no more results
			return res, nil
		}
	}
}

// Query runs a text statement (COM_QUERY).
func (c *Conn) Query(sql string) (Result, error) {
	if err := c.command(0x03, []byte(sql)); err != nil {
		return Result{}, err
	}
	return c.response()
}

// InitDB selects a schema (COM_INIT_DB).
func (c *Conn) InitDB(db string) error {
	if err := c.command(0x02, []byte(db)); err != nil {
		return err
	}
	_, err := c.response()
	return err
}

// Ping sends COM_PING.
func (c *Conn) Ping() error {
	if err := c.command(0x0e, nil); err != nil {
		return err
	}
	_, err := c.response()
	return err
}

// Stmt is a prepared statement.
type Stmt struct {
	ID              uint32
	Params, Columns int
}

// Prepare sends COM_STMT_PREPARE and reads its definitions.
func (c *Conn) Prepare(sql string) (*Stmt, error) {
	if err := c.command(0x16, []byte(sql)); err != nil {
		return nil, err
	}
	b, err := c.read()
	if err != nil {
		return nil, err
	}
	if b[0] == 0xff {
		return nil, errPacket(b)
	}
	s := &Stmt{ID: binary.LittleEndian.Uint32(b[1:]), Columns: int(binary.LittleEndian.Uint16(b[5:])),
		Params: int(binary.LittleEndian.Uint16(b[7:]))}
	for _, n := range []int{s.Params, s.Columns} {
		if n == 0 {
			continue
		}
		for i := 0; i < n; i++ {
			if _, err := c.read(); err != nil {
				return nil, err
			}
		}
		if c.caps&CapDeprecateEOF == 0 {
			if _, err := c.read(); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Execute sends COM_STMT_EXECUTE with integer parameters (one per ?).
func (c *Conn) Execute(s *Stmt, args ...int64) (Result, error) {
	p := binary.LittleEndian.AppendUint32(nil, s.ID)
	p = append(p, 0)                           // no cursor
	p = binary.LittleEndian.AppendUint32(p, 1) // iteration count
	if s.Params > 0 {
		p = append(p, make([]byte, (s.Params+7)/8)...) // NULL bitmap
		p = append(p, 1)                               // types follow
		for range s.Params {
			p = append(p, 8, 0) // MYSQL_TYPE_LONGLONG
		}
		for i := range s.Params {
			var v int64
			if i < len(args) {
				v = args[i]
			}
			p = binary.LittleEndian.AppendUint64(p, uint64(v))
		}
	}
	if err := c.command(0x17, p); err != nil {
		return Result{}, err
	}
	return c.response()
}

// Reset sends COM_STMT_RESET.
func (c *Conn) Reset(s *Stmt) error {
	if err := c.command(0x1a, binary.LittleEndian.AppendUint32(nil, s.ID)); err != nil {
		return err
	}
	_, err := c.response()
	return err
}

// CloseStmt sends COM_STMT_CLOSE (no response).
func (c *Conn) CloseStmt(s *Stmt) error {
	return c.command(0x19, binary.LittleEndian.AppendUint32(nil, s.ID))
}

// Quit sends COM_QUIT and closes.
func (c *Conn) Quit() error {
	err := c.command(0x01, nil)
	c.c.Close()
	return err
}

// Close closes without COM_QUIT.
func (c *Conn) Close() error { return c.c.Close() }
