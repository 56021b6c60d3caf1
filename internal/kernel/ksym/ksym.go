// Package ksym symbolises kernel text addresses from /proc/kallsyms:
// "function+0xoffset", as the kernel's own stack traces print them.
//
// The table is read once (at start: ~120k text symbols, ~50 ms) into one
// sorted array of addresses and one string of names; a lookup is a binary
// search and appends to the caller's buffer (no allocation). kallsyms shows
// real addresses only to a reader with CAP_SYSLOG (kptr_restrict): to
// anyone else every address is 0, and Load says so.
package ksym

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
)

// Table is the kernel's text symbols, by address.
type Table struct {
	addr  []uint64
	off   []uint32 // name i is names[off[i]:off[i+1]]
	names []byte
}

// Path is where the symbols come from.
const Path = "/proc/kallsyms"

// ErrHidden: kallsyms shows every address as 0 (not root, or
// kernel.kptr_restrict=2).
var ErrHidden = errors.New("kallsyms addresses are hidden (need CAP_SYSLOG and kernel.kptr_restrict < 2)")

// Load reads Path.
func Load() (*Table, error) {
	f, err := os.Open(Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

type sym struct {
	addr uint64
	name []byte
}

// Parse reads kallsyms lines ("addr type name [module]"): text symbols
// only (types t, T, w, W); a module's symbols get its name, "name [mod]".
func Parse(r io.Reader) (*Table, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var syms []sym
	var nonzero bool
	for sc.Scan() {
		line := sc.Bytes()
		// addr
		i := 0
		for i < len(line) && line[i] != ' ' {
			i++
		}
		if i+3 > len(line) || line[i+2] != ' ' {
			continue
		}
		a, err := strconv.ParseUint(string(line[:i]), 16, 64)
		if err != nil {
			continue
		}
		switch line[i+1] {
		case 't', 'T', 'w', 'W':
		default:
			continue
		}
		if a != 0 {
			nonzero = true
		}
		name := line[i+3:]
		// "name\t[module]" -> "name [module]"
		for j, c := range name {
			if c == '\t' {
				name = append(append(append([]byte(nil), name[:j]...), ' '), name[j+1:]...)
				break
			}
		}
		syms = append(syms, sym{a, append([]byte(nil), name...)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kallsyms: %w", err)
	}
	if len(syms) == 0 {
		return nil, errors.New("kallsyms: no text symbols")
	}
	if !nonzero {
		return nil, ErrHidden
	}
	sort.SliceStable(syms, func(i, j int) bool { return syms[i].addr < syms[j].addr })
	t := &Table{addr: make([]uint64, len(syms)), off: make([]uint32, len(syms)+1)}
	n := 0
	for _, s := range syms {
		n += len(s.name)
	}
	t.names = make([]byte, 0, n)
	for i, s := range syms {
		t.addr[i] = s.addr
		t.off[i] = uint32(len(t.names))
		t.names = append(t.names, s.name...)
	}
	t.off[len(syms)] = uint32(len(t.names))
	return t, nil
}

// Len is the number of symbols.
func (t *Table) Len() int { return len(t.addr) }

// Find returns the symbol at or before addr and addr's offset into it;
// ok is false below the first symbol.
func (t *Table) Find(addr uint64) (name []byte, off uint64, ok bool) {
	if t == nil {
		return nil, 0, false
	}
	// first symbol above addr, then one back
	i := sort.Search(len(t.addr), func(i int) bool { return t.addr[i] > addr }) - 1
	if i < 0 {
		return nil, 0, false
	}
	return t.names[t.off[i]:t.off[i+1]], addr - t.addr[i], true
}

// Append appends "function+0xoffset" (a module's: "function+0xoffset
// [module]") for addr, or its hex address
// ("0xffffffff81234567") when no symbol covers it (t nil, or below the
// first symbol).
func (t *Table) Append(b []byte, addr uint64) []byte {
	name, off, ok := t.Find(addr)
	if !ok {
		b = append(b, "0x"...)
		return strconv.AppendUint(b, addr, 16)
	}
	mod := []byte(nil)
	for i, c := range name {
		if c == ' ' {
			name, mod = name[:i], name[i:] // " [module]" goes last, as in kernel traces
			break
		}
	}
	b = append(b, name...)
	b = append(b, "+0x"...)
	b = strconv.AppendUint(b, off, 16)
	return append(b, mod...)
}
