package metrics

import "strconv"

// Well-known service ports added to the port classes besides 1..1023.
const (
	MySQLPort = 3306
	RedisPort = 6379
)

// PortClasses names a port for the port label: a well-known port (1..1023)
// or a service port given to it (by number), else "ephemeral". Bounded:
// at most 1023 + len(services) + 1 values.
type PortClasses struct {
	names map[uint16]string // the service ports above 1023
	small [1024]string
}

// NewPortClasses: the well-known ports plus services (0s ignored).
func NewPortClasses(services ...uint16) *PortClasses {
	pc := &PortClasses{names: map[uint16]string{}}
	for i := 1; i < len(pc.small); i++ {
		pc.small[i] = strconv.Itoa(i)
	}
	for _, p := range services {
		if p >= 1024 {
			pc.names[p] = strconv.Itoa(int(p))
		}
	}
	return pc
}

// Ephemeral is the class of every other port.
const Ephemeral = "ephemeral"

// Class is the label of port p; Key is its map key (0 for ephemeral).
func (pc *PortClasses) Class(p uint16) string {
	if k := pc.Key(p); k != 0 {
		if k < 1024 {
			return pc.small[k]
		}
		return pc.names[k]
	}
	return Ephemeral
}

// Key is p if it has a class of its own, else 0.
func (pc *PortClasses) Key(p uint16) uint16 {
	if p > 0 && p < 1024 {
		return p
	}
	if _, ok := pc.names[p]; ok {
		return p
	}
	return 0
}
