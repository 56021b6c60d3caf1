package output

import (
	"net/netip"

	"github.com/netwatcher/netwatcher/internal/event"
)

// connTexts keeps the formatted identity of recent connections for
// packet lines: every packet record of a connection names it with the same
// bytes (JSON: netns, sock, conn_id, addresses, owner; table: the CONN and
// SOCK columns, the SRC and DST ones), and formatting them was half the
// cost of a console packet line. A slot answers only for exactly the
// values it was made of (connTextKey): a changed owner or a reused
// socket is formatted again.
type connTexts struct {
	slots [connTextSlots]connText
}

// connTextSlots: a connection's slot is its number modulo this (numbers are
// given in order: the last connTextSlots connections have a slot each).
const connTextSlots = 256

type connTextKey struct {
	sock, id   uint64
	netns, pid uint32
	noOwner    bool // OwnerSrc == OwnerNone (all jConn looks at)
	comm       event.Comm
	src, dst   netip.AddrPort
}

type connText struct {
	key       connTextKey
	json      []byte // jConn's text (valid when hasJSON)
	idSock    []byte // table: the CONN and SOCK columns, padded (hasIDSock)
	addrs     []byte // table: the SRC and DST columns for width addrW (0: none)
	addrW     int
	hasJSON   bool
	hasIDSock bool
	used      bool
}

func textKey(c *event.Conn) connTextKey {
	return connTextKey{sock: c.Sock, id: c.ID, netns: c.Netns, pid: c.Pid, noOwner: c.OwnerSrc == event.OwnerNone,
		comm: c.Comm, src: c.Src, dst: c.Dst}
}

// slot returns c's slot, emptied unless it holds c's values.
func (p *Printer) textSlot(c *event.Conn) *connText {
	if p.texts == nil {
		p.texts = new(connTexts)
	}
	i := c.ID
	if i == 0 {
		i = (c.Sock * 0x9e3779b97f4a7c15) >> 56
	}
	s := &p.texts.slots[i%connTextSlots]
	if k := &s.key; !s.used || k.sock != c.Sock || k.id != c.ID || k.netns != c.Netns || k.pid != c.Pid ||
		k.noOwner != (c.OwnerSrc == event.OwnerNone) || k.comm != c.Comm || k.src != c.Src || k.dst != c.Dst {
		s.key, s.used = textKey(c), true
		s.hasJSON, s.hasIDSock, s.addrW = false, false, 0
	}
	return s
}

// jConnText appends jConn(c) from its slot.
func (p *Printer) jConnText(b []byte, c *event.Conn) []byte {
	s := p.textSlot(c)
	if !s.hasJSON {
		s.json = jConn(s.json[:0], c)
		s.hasJSON = true
	}
	return append(b, s.json...)
}
