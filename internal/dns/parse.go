package dns

import "errors"

// HeaderLen is the fixed DNS header (RFC 1035 §4.1.1).
const HeaderLen = 12

// MaxNameText bounds a name's presentation form: 255 wire bytes at most,
// each label byte at most 4 text bytes (\DDD), plus the dots.
const MaxNameText = 1024

// maxPointers bounds compression pointers followed in one name (each must
// also point before itself, so a loop is impossible; this bounds the work).
const maxPointers = 32

// Parse errors (no allocation: package values).
var (
	ErrShort     = errors.New("dns: shorter than a header")
	ErrTruncated = errors.New("dns: question cut off")
	ErrName      = errors.New("dns: malformed name")
)

// Msg is what netwatcher reads of a DNS message: the header and the first
// question. Parse fills it without allocating; Name is the question's name
// in presentation form ("www.example.com.", "." for the root; a byte that
// is not a letter, digit, '-' or '_' is written \DDD, a '.' or '\' inside
// a label is escaped with '\').
type Msg struct {
	ID                                 uint16
	Flags                              uint16 // QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode
	QDCount, ANCount, NSCount, ARCount uint16
	// HasQuestion: QDCount > 0 and the first question was read whole.
	HasQuestion   bool
	QType, QClass uint16
	NameLen       int
	Name          [MaxNameText]byte
}

// Response reports the QR bit.
func (m *Msg) Response() bool { return m.Flags&0x8000 != 0 }

// Opcode is the header's opcode (0: QUERY).
func (m *Msg) Opcode() uint8 { return uint8(m.Flags>>11) & 0xf }

// TC reports the truncation bit: the response did not fit (UDP); the
// client is expected to ask again over TCP.
func (m *Msg) TC() bool { return m.Flags&0x0200 != 0 }

// Rcode is the header's 4-bit response code (no EDNS extension).
func (m *Msg) Rcode() uint8 { return uint8(m.Flags & 0xf) }

// QName is the question's name (nil without a question).
func (m *Msg) QName() []byte { return m.Name[:m.NameLen] }

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// Parse reads the header and the first question of the DNS message b (b
// may be the start of a longer message: only the header and the question
// need to be there). ErrShort: no whole header (m untouched otherwise
// zero); ErrTruncated: the question runs past b (the header is filled);
// ErrName: the question's name is malformed (a compression pointer that
// does not point backwards, too many pointers, a reserved label type, a
// name over 255 bytes). With a header error-free and QDCount 0, m has no
// question and err is nil.
func Parse(b []byte, m *Msg) error {
	m.HasQuestion, m.NameLen, m.QType, m.QClass = false, 0, 0, 0
	if len(b) < HeaderLen {
		return ErrShort
	}
	m.ID, m.Flags = be16(b), be16(b[2:])
	m.QDCount, m.ANCount, m.NSCount, m.ARCount = be16(b[4:]), be16(b[6:]), be16(b[8:]), be16(b[10:])
	if m.QDCount == 0 {
		return nil
	}
	end, err := m.name(b, HeaderLen)
	if err != nil {
		m.NameLen = 0
		return err
	}
	if end+4 > len(b) {
		m.NameLen = 0
		return ErrTruncated
	}
	m.QType, m.QClass = be16(b[end:]), be16(b[end+2:])
	m.HasQuestion = true
	return nil
}

// name decodes the name at off into m.Name; it returns the offset just
// past the name where it starts (after its first pointer, if any).
func (m *Msg) name(b []byte, off int) (int, error) {
	n := 0    // text bytes
	wire := 0 // wire length so far (labels + length bytes), at most 255
	end := -1 // offset after the name in place (set at the first pointer)
	ptrs := 0
	for {
		if off >= len(b) {
			return 0, ErrTruncated
		}
		l := int(b[off])
		switch l & 0xc0 {
		case 0x00:
		case 0xc0:
			if off+1 >= len(b) {
				return 0, ErrTruncated
			}
			p := int(be16(b[off:]) & 0x3fff)
			if p >= off || ptrs >= maxPointers {
				return 0, ErrName // forward or self pointer: a loop is possible
			}
			if end < 0 {
				end = off + 2
			}
			ptrs++
			off = p
			continue
		default:
			return 0, ErrName // 0x40, 0x80: extended/reserved label types
		}
		wire += l + 1
		if wire > 255 {
			return 0, ErrName
		}
		if l == 0 {
			if n == 0 {
				m.Name[0] = '.'
				n = 1
			}
			m.NameLen = n
			if end < 0 {
				end = off + 1
			}
			return end, nil
		}
		if off+1+l > len(b) {
			return 0, ErrTruncated
		}
		for _, c := range b[off+1 : off+1+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
				m.Name[n] = c
				n++
			case c == '.' || c == '\\':
				m.Name[n], m.Name[n+1] = '\\', c
				n += 2
			default:
				m.Name[n], m.Name[n+1], m.Name[n+2], m.Name[n+3] = '\\', '0'+c/100, '0'+c/10%10, '0'+c%10
				n += 4
			}
		}
		m.Name[n] = '.'
		n++
		off += 1 + l
	}
}
