// Package conn is the connection-tracking concern: TCP lifecycle, owner
// attribution, pre-existing sockets and -x sampling. Its BPF object owns the
// maps every other concern shares (ring buffer, connection table, counters).
package conn

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/kernel"
)

// Options configure the connection object before load.
type Options struct {
	Sport, Dport uint16 // kernel-side filters, 0 = any
	// SrcNets, DstNets: kernel-side address filters (-S/-D), nil = any.
	SrcNets, DstNets []netip.Prefix
	RingBytes        uint32 // event ring size (power of two, page multiple)
	PktRingBytes     uint32 // packet ring size; 0 keeps the minimal default
	// MaxConns is the connection table's capacity (0: DefaultMaxConns),
	// rounded up to whole sets of a power-of-two count. The table is
	// preallocated: ~112 bytes per connection.
	MaxConns uint32
	// Quiet: nobody prints per-connection lines (-q), so the kernel sends no
	// open/owner records; open connections reach user space through Sample
	// (once a second, which connects.log needs anyway) and close records.
	// Half the records of a short connection.
	Quiet bool
	// NoClose (with Quiet, when neither closed connections are kept (-a)
	// nor HTTP summaries printed (-i)): no close records either; the
	// once-a-second walk removes connections it no longer finds. A
	// connection that opens and closes between two walks then costs no
	// record at all.
	NoClose bool
	// ConnSum (--summary): a closing connection's tcp_sock counters (data
	// segments and bytes per direction) are added to nw_conn_sum, and
	// adopted connections' counters at adoption to its key 1 (see
	// conn.bpf.c and ConnSumMap).
	ConnSum bool
	// RetransUnseen (-r): a closing connection's retransmitted segments
	// that the kernel counted (tp->total_retrans) but internal/retrans did
	// not see are added to the retrans_unseen counter
	// (NW_STAT_RETRANS_UNSEEN; conn.bpf.c "What -r did not see").
	RetransUnseen bool
	// WalkNoStats: the once-a-second walk (Sample) reads no tcp_sock
	// values (its Stats are zero): neither -x nor -r shows them. With
	// 20,000 connections reading them was ~16 ms of a 20 ms walk.
	WalkNoStats bool
	// ConnAgg (--metrics-addr): connections opened and closed are
	// counted in the kernel (nw_conn_agg.h, connagg.go); set by SetConnAgg.
	ConnAgg *connAgg
	// Table is the connection table variant; TableAuto picks it from the
	// kernel (or from $NW_CONN_TABLE, see TableFromEnv).
	Table Table
	// Batched: nothing shows records as they come (-q), so the rings wake
	// the reader less often (every object: cfg_wake_shift, nw_ring.h).
	Batched bool
}

// Table is a variant of the kernel connection table (nw.h).
type Table int

const (
	TableAuto Table = iota
	// TableSets: set-associative arrays, a claim is one compare-and-swap
	// (BPF atomics: Linux 5.12+). The fast one; the default where it loads.
	TableSets
	// TableHash: a preallocated BPF hash map, a claim is an insert with
	// BPF_NOEXIST. For kernels without BPF atomics (5.10, 5.11).
	TableHash
)

func (t Table) String() string {
	switch t {
	case TableSets:
		return "sets"
	case TableHash:
		return "hash"
	}
	return "auto"
}

// TableEnv names the environment variable that forces a table variant
// ("sets" or "hash"): tests of the fallback on a kernel that has atomics.
const TableEnv = "NW_CONN_TABLE"

// TableFromEnv is the variant $NW_CONN_TABLE asks for (TableAuto if none).
func TableFromEnv() (Table, error) {
	switch v := strings.TrimSpace(os.Getenv(TableEnv)); v {
	case "", "auto":
		return TableAuto, nil
	case "sets":
		return TableSets, nil
	case "hash":
		return TableHash, nil
	default:
		return TableAuto, fmt.Errorf("%s=%q: want sets or hash", TableEnv, v)
	}
}

// ChooseTable resolves TableAuto: $NW_CONN_TABLE if set, else the arrays
// where the kernel has BPF atomics (5.12) and BPF syscall programs (5.14,
// which adopt pre-existing connections into the arrays), and the hash map
// where it lacks either (user space adopts into it directly).
func ChooseTable(t Table) (Table, error) {
	if t != TableAuto {
		return t, nil
	}
	t, err := TableFromEnv()
	if err != nil || t != TableAuto {
		return t, err
	}
	if kernel.HaveAtomics() != nil || features.HaveProgramType(ebpf.Syscall) != nil {
		return TableHash, nil
	}
	return TableSets, nil
}

// DefaultMaxConns is the connection table's default capacity (--max-conns):
// 13 MiB of kernel memory. A set of the table (8 ways) refuses a ninth live
// connection; at 10% load that happens to about one set in 10^8, at 50% to
// a few percent of new connections (counted: conn_table_full).
const DefaultMaxConns = config.DefaultMaxConns

// ways is NW_WAYS of nw.h: connections per set of the table.
const ways = uint32(len(connNwConnSet{}.Sk))

// tableSets is the number of sets for a capacity of n connections: a power
// of two, at least 1.
func tableSets(n uint32) uint32 {
	if n == 0 {
		n = DefaultMaxConns
	}
	sets := uint32(1)
	for sets*ways < n && sets < 1<<28 {
		sets <<= 1
	}
	return sets
}

// The walks of the set-associative table (conn.bpf.c, NW_WALK_SETS): one
// iterator call per walkSets sets, over walkChunksMap, one element per
// walkSets sets.
const (
	walkSets      = 16
	walkChunksMap = "nw_walk_chunks"
)

// walkChunks is the size of walkChunksMap for a table of sets sets.
func walkChunks(sets uint32) uint32 { return max(1, (sets+walkSets-1)/walkSets) }

// hashMask is NW_CONN_HASH_MASK of nw.h: cfg_conn_mask of the hash variant.
const hashMask = ^uint32(0)

// setOf is nw_conn_set_of of nw.h.
func setOf(sk uint64, sets uint32) uint32 {
	return uint32(((sk>>6)*0x9E3779B97F4A7C15)>>32) & (sets - 1)
}

// Probe is connection tracking: the base concern, first in every run. Its
// object creates the maps the other concerns share (SharedMaps: the rings,
// the connection table, the counters) and its records open and close the
// connections everything else is attributed to.
type Probe struct {
	kernel.Live
	opts      Options // for Load (New)
	sampler   *link.Iter
	listeners *link.Iter // -x listener walk (listener.go)
	table     Table
	// base: with ConnSum, the counters of each connection the start-up
	// walk found (Existing), for Adopt to add those it adopts to
	// nw_conn_sum's key 1.
	base    map[uint64]connNwConnCtr
	adopted connNwConnCtr // addBase's sum, until flushBase
	// rtxBase: with RetransUnseen, each connection's rtx_base as the
	// start-up walk read it, for adoptHash (nw_adopt reads its own).
	rtxBase map[uint64]uint32
}

// New returns connection tracking as cfg asks (not loaded yet).
func New(cfg *config.Config) *Probe {
	return &Probe{opts: Options{
		Sport: cfg.Sport, Dport: cfg.Dport, SrcNets: cfg.SrcNets, DstNets: cfg.DstNets,
		RingBytes: 4 << 20, MaxConns: cfg.MaxConns,
		Quiet: cfg.KernelQuiet(), NoClose: cfg.NoCloseRecords(), ConnSum: cfg.Summary,
		RetransUnseen: cfg.Retrans, WalkNoStats: !cfg.Extra && !cfg.Retrans,
		Batched: cfg.Quiet,
	}}
}

// Name implements engine.Concern.
func (p *Probe) Name() string { return "connections" }

// Types implements engine.Concern: the lifecycle records.
func (p *Probe) Types() []event.Type {
	return []event.Type{event.ConnOpen, event.ConnOwner, event.ConnClose}
}

// SetPacketRingBytes sizes the packet ring (before Load): the concern that
// writes to it says how large it wants it (engine.PacketRinger).
func (p *Probe) SetPacketRingBytes(n uint32) { p.opts.PktRingBytes = n }

// Load implements engine.Concern. shared is nil: this object creates the
// maps the others share.
func (p *Probe) Load(_ *config.Config, shared map[string]*ebpf.Map) error {
	if shared != nil {
		return errors.New("conn: connection tracking is the base concern: it shares maps, it does not reuse them")
	}
	q, err := Load(p.opts)
	if err != nil {
		return err
	}
	p.Live, p.table = q.Live, q.table
	if p.opts.RetransUnseen {
		p.rtxBase = map[uint64]uint32{}
	}
	if p.opts.ConnSum {
		p.base = map[uint64]connNwConnCtr{}
	}
	return nil
}

// Decode implements engine.Concern (see the function Decode).
func (p *Probe) Decode(raw []byte, ev *event.Event) bool { return Decode(raw, ev) }

// Table is the variant of the connection table this probe loaded.
func (p *Probe) Table() Table { return p.table }

// twinSuffix marks the hash-variant twin of a program (conn.bpf.c): built
// from the same code without atomic instructions.
const twinSuffix = "_na"

// pickTwins keeps one program of every NAME / NAME_na pair, under NAME:
// the twin for the hash variant, the original for the arrays. Everything
// after this (hook table, pruning, attach) sees one name per program.
func pickTwins(spec *ebpf.CollectionSpec, t Table) {
	for name, ps := range spec.Programs {
		base, ok := strings.CutSuffix(name, twinSuffix)
		if !ok {
			continue
		}
		delete(spec.Programs, name)
		if t == TableHash {
			if _, ok := spec.Programs[base]; ok {
				spec.Programs[base] = ps
			}
		}
	}
	if t == TableHash {
		// programs with atomics and no twin: the adopt program (the hash
		// variant adopts from user space)
		delete(spec.Programs, "nw_adopt")
	}
}

// Boundaries lists the hooks of this concern; the first is required.
var Boundaries = []string{kernel.ConnState, kernel.ConnRecv, kernel.ConnSend, kernel.ConnAccept4, kernel.ConnAccept}

// Owner attribution of the accepted side, best first (see conn.bpf.c):
// the first send/recv on the socket (tp_btf; needs the tp_btf state hook,
// which marks the sockets that wait for their owner), else the accept()
// syscall tracepoints. The syscall tracepoints are only a fallback: while
// one is attached every syscall of every task takes the slow path
// (measured: +55 ns per syscall, ~5% of a request/response load here).
var ioOwner = []string{kernel.ConnRecv, kernel.ConnSend}
var acceptOwner = []string{kernel.ConnAccept4, kernel.ConnAccept}

// Load loads (verifies) the connection object. It is the first BPF object
// of a run: it lifts RLIMIT_MEMLOCK first (kernels before 5.11 charge maps
// to it) and chooses the table variant every other object then follows
// (LoadShared).
func Load(o Options) (*Probe, error) {
	if err := kernel.RemoveMemlock(); err != nil {
		slog.Debug("RLIMIT_MEMLOCK not lifted", "err", err)
	}
	table, err := ChooseTable(o.Table)
	if err != nil {
		return nil, fmt.Errorf("conn: %w", err)
	}
	spec, err := loadConn()
	if err != nil {
		return nil, fmt.Errorf("conn: parse object: %w", err)
	}
	pickTwins(spec, table)
	dropSumWalk(spec) // --summary loads it on its own (LoadSumWalk)
	if o.RingBytes != 0 {
		spec.Maps["nw_events"].MaxEntries = o.RingBytes
	}
	if o.PktRingBytes != 0 {
		spec.Maps["nw_pkt_events"].MaxEntries = o.PktRingBytes
	}
	if features.HaveProgramType(ebpf.Syscall) != nil {
		// before 5.14: the object still loads; Adopt reports the gap
		delete(spec.Programs, "nw_adopt")
	}
	sets, hashCap := tableSets(o.MaxConns), uint32(1)
	if table == TableHash {
		// capacity as asked, no rounding; the arrays stay at one set
		hashCap, sets = max(o.MaxConns, 2), 1
		if o.MaxConns == 0 {
			hashCap = DefaultMaxConns
		}
	}
	spec.Maps["nw_conn_keys"].MaxEntries = sets
	spec.Maps["nw_conns"].MaxEntries = sets * ways
	spec.Maps["nw_conn_hash"].MaxEntries = hashCap
	spec.Maps[walkChunksMap].MaxEntries = walkChunks(sets)
	for name, v := range map[string]bool{"cfg_quiet": o.Quiet, "cfg_no_close": o.Quiet && o.NoClose, "cfg_conn_sum": o.ConnSum,
		"cfg_rtx_unseen": o.RetransUnseen, "cfg_walk_no_stats": o.WalkNoStats} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("conn: set %s: %w", name, err)
		}
	}
	if err := o.ConnAgg.setConsts(spec); err != nil {
		return nil, err
	}
	coll, err := load(spec, objConf{o.Sport, o.Dport, len(o.SrcNets) > 0, len(o.DstNets) > 0, o.Batched}, nil)
	if err != nil {
		return nil, fmt.Errorf("conn: %w (table variant %s)", err, table)
	}
	for _, x := range []struct {
		m    string
		nets []netip.Prefix
	}{{"nw_src_nets", o.SrcNets}, {"nw_dst_nets", o.DstNets}} {
		if err := fillNets(coll.Maps[x.m], x.nets); err != nil {
			coll.Close()
			return nil, fmt.Errorf("conn: %s: %w", x.m, err)
		}
	}
	return &Probe{Live: kernel.Live{Coll: coll}, table: table}, nil
}

// netKey is struct nw_net_key (nw_sock.h): the family byte counts in the
// prefix length.
type netKey struct {
	Prefixlen uint32
	Family    uint8
	Addr      [16]byte
	_         [3]byte
}

// netKeyOf is the key of prefix p in the address filter tries.
func netKeyOf(p netip.Prefix) netKey {
	k := netKey{Prefixlen: 8 + uint32(p.Bits()), Family: 6}
	if p.Addr().Is4() {
		k.Family = 4
	}
	copy(k.Addr[:], p.Addr().AsSlice())
	return k
}

func fillNets(m *ebpf.Map, nets []netip.Prefix) error {
	for _, p := range nets {
		if err := m.Put(netKeyOf(p), uint8(1)); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

// LoadShared loads the object of another concern (its own copy of nw.h)
// with the shared maps replaced by the connection object's instances (see
// SharedMaps; their sizes are copied into spec, so the specs are
// compatible), the -s/-d filter of cfg set and the hook candidates this
// kernel cannot load pruned. Maps of shared that spec does not declare are
// ignored. Errors are one line, for the caller to prefix with its name.
//
// The table variant comes with the maps: cfg_conn_mask is set to
// NW_CONN_HASH_MASK when the shared hash table is the sized one (Load
// leaves the other variant's maps at their minimal size), so every object
// reads the table the connection object writes. Changing the variant is
// one choice, in Load (Options.Table, TableAuto: ChooseTable).
func LoadShared(spec *ebpf.CollectionSpec, cfg *config.Config, shared map[string]*ebpf.Map) (*ebpf.Collection, error) {
	return load(spec, objConf{cfg.Sport, cfg.Dport, len(cfg.SrcNets) > 0, len(cfg.DstNets) > 0, cfg.Quiet}, shared)
}

// objConf is what every object is given as .rodata constants: the
// kernel-side filter (nw_sock.h: the ports, and whether each address trie,
// shared and filled by Load, is on) and batched (Options.Batched), the
// rings' wakeup step (nw_ring.h).
type objConf struct {
	sport, dport     uint16
	srcNets, dstNets bool
	batched          bool
}

// wakeShift is cfg_wake_shift (nw_ring.h): a ring wakes its reader every
// 1/32 of its size, or every 1/8 when batched.
func wakeShift(batched bool) uint32 {
	if batched {
		return 3
	}
	return 5
}

// load prunes spec, sets its constants (objConf) and loads it with the maps of shared
// (resized to match) in place of its own.
func load(spec *ebpf.CollectionSpec, f objConf, shared map[string]*ebpf.Map) (*ebpf.Collection, error) {
	kernel.Prune(spec)
	repl := map[string]*ebpf.Map{}
	for name, m := range shared {
		if ms, ok := spec.Maps[name]; ok && m != nil {
			ms.MaxEntries = m.MaxEntries()
			repl[name] = m
		}
	}
	if err := setConf(spec, f); err != nil {
		return nil, err
	}
	// Every object hashes sockets into the same sets, or uses the hash
	// variant (the sized one of the two: Load leaves the other minimal).
	mask := spec.Maps["nw_conn_keys"].MaxEntries - 1
	if hm := spec.Maps["nw_conn_hash"]; hm != nil && hm.MaxEntries > 1 {
		mask = hashMask
	} else if hm == nil && len(shared) > 0 && shared["nw_conn_hash"] != nil && shared["nw_conn_hash"].MaxEntries() > 1 {
		return nil, errors.New("object predates the hash connection table (no nw_conn_hash): regenerate it")
	}
	if err := spec.Variables["cfg_conn_mask"].Set(mask); err != nil {
		return nil, fmt.Errorf("set cfg_conn_mask: %w", err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, fmt.Errorf("load BPF: %w", err)
	}
	return coll, nil
}

func setConf(spec *ebpf.CollectionSpec, f objConf) error {
	for name, v := range map[string]any{"cfg_sport": f.sport, "cfg_dport": f.dport, "cfg_src_nets": f.srcNets, "cfg_dst_nets": f.dstNets,
		"cfg_wake_shift": wakeShift(f.batched)} {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("object has no %s", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

// SharedMaps returns the maps other concerns must reuse (MapReplacements).
func (p *Probe) SharedMaps() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{
		"nw_events":     p.Coll.Maps["nw_events"],
		"nw_pkt_events": p.Coll.Maps["nw_pkt_events"],
		"nw_conn_keys":  p.Coll.Maps["nw_conn_keys"],
		"nw_conns":      p.Coll.Maps["nw_conns"],
		"nw_conn_hash":  p.Coll.Maps["nw_conn_hash"],
		"nw_stats":      p.Coll.Maps["nw_stats"],
		"nw_listeners":  p.Coll.Maps["nw_listeners"], // listener owners (internal/dropreason)
		"nw_src_nets":   p.Coll.Maps["nw_src_nets"],
		"nw_dst_nets":   p.Coll.Maps["nw_dst_nets"],
		ConnSumMap:      p.Coll.Maps[ConnSumMap], // --summary's counts (internal/packet)
	}
}

// Events is the ring of lifecycle, retransmission and error events.
func (p *Probe) Events() *ebpf.Map { return p.Coll.Maps["nw_events"] }

// PacketEvents is the ring of packet records.
func (p *Probe) PacketEvents() *ebpf.Map { return p.Coll.Maps["nw_pkt_events"] }

// Stats is the shared per-CPU counter array.
func (p *Probe) Stats() *ebpf.Map { return p.Coll.Maps["nw_stats"] }

// Attach attaches every boundary of the concern. The state hook is required;
// a missing owner hook is reported and degrades attribution only.
func (p *Probe) Attach(log *slog.Logger) error {
	log.Debug("connection table", "variant", p.table)
	if _, err := p.Live.Attach(log, Boundaries[0]); err != nil {
		return err
	}
	owner := ioOwner
	for _, name := range ioOwner {
		if !kernel.Usable(p.Coll, name) {
			owner = acceptOwner
		}
	}
	for _, name := range owner {
		if _, err := p.Live.Attach(log, name); err != nil {
			log.Warn("owner attribution degraded: accepted connections keep the listener's process", "hook", name, "err", err)
		}
	}
	if err := p.attachSampler(); err != nil {
		return err
	}
	return p.attachListeners()
}

// attachSampler makes the iterator of the once-a-second walk (Sample).
func (p *Probe) attachSampler() error {
	table := p.Coll.Maps[walkChunksMap] // the arrays: NW_WALK_SETS sets per call
	if p.table == TableHash {
		table = p.Coll.Maps["nw_conn_hash"]
	}
	it, err := link.AttachIter(link.IterOptions{Program: p.Coll.Programs["nw_iter_conns"], Map: table})
	if err != nil {
		return fmt.Errorf("conn: sampler iterator: %w", err)
	}
	p.sampler = it
	return nil
}

// Close releases everything. Call it once no goroutine samples any more.
// (Detach, from kernel.Live, stops the hooks but keeps the sampler usable
// for the final snapshot.)
func (p *Probe) Close() {
	p.Detach()
	if p.sampler != nil {
		p.sampler.Close()
		p.sampler = nil
	}
	if p.listeners != nil {
		p.listeners.Close()
		p.listeners = nil
	}
	p.Live.Close()
}

const connEventSize = int(unsafe.Sizeof(connNwConnEvent{}))
const connShortSize = int(unsafe.Offsetof(connNwConnEvent{}.Stats))

// readIter reads the fixed-size records of an iterator (T: the generated
// record type, a multiple of 8 bytes long) and calls fn on each.
func readIter[T any](it *link.Iter, fn func(rec *T)) error {
	rd, err := it.Open()
	if err != nil {
		return err
	}
	defer rd.Close()
	recSize := int(unsafe.Sizeof(*new(T)))
	buf := make([]byte, recSize*256)
	var pending int
	for {
		n, err := rd.Read(buf[pending:])
		pending += n
		full := pending - pending%recSize
		for off := 0; off < full; off += recSize {
			fn((*T)(unsafe.Pointer(&buf[off])))
		}
		copy(buf, buf[full:pending])
		pending -= full
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Existing walks every task's open files once and returns the TCP sockets
// found (connections and listeners), deduplicated by socket.
// Server-side detection: a connection whose local port is a listening port
// in the same network namespace is the accepted side.
func (p *Probe) Existing() ([]event.Event, error) {
	it, err := link.AttachIter(link.IterOptions{Program: p.Coll.Programs["nw_iter_files"]})
	if err != nil {
		return nil, fmt.Errorf("conn: task_file iterator: %w", err)
	}
	defer it.Close()
	type lkey struct {
		netns uint32
		port  uint16
	}
	listening := map[lkey]bool{}
	seen := map[uint64]bool{}
	var out []event.Event
	err = readIter(it, func(r *connNwIterRec) {
		if seen[r.Sk] {
			return
		}
		seen[r.Sk] = true
		switch r.Stats.State {
		case unix.BPF_TCP_LISTEN: // the kernel's TCP states (BPF_TCP_* mirror them)
			listening[lkey{r.Conn.Netns, r.Conn.Sport}] = true
			p.knowListener(r)
			return
		case unix.BPF_TCP_ESTABLISHED, unix.BPF_TCP_FIN_WAIT1, unix.BPF_TCP_FIN_WAIT2,
			unix.BPF_TCP_CLOSE_WAIT, unix.BPF_TCP_LAST_ACK, unix.BPF_TCP_CLOSING:
		default:
			return
		}
		var ev event.Event
		ev.Type = event.ConnExisting
		decodeConn(&ev.Conn, r.Sk, &r.Conn)
		out = append(out, ev)
		if p.base != nil {
			p.base[r.Sk] = r.Ctr
		}
		if p.rtxBase != nil {
			p.rtxBase[r.Sk] = r.Conn.RtxBase
		}
	})
	for i := range out {
		c := &out[i].Conn
		c.IsServer = listening[lkey{c.Netns, c.Src.Port()}]
	}
	return out, err
}

// knowListener gives a listener found at start-up the owner BPF would have
// recorded at listen(): its accepted connections then start with the right
// provisional owner, and need no owner event when their first send/recv is
// made by that same process (the usual case). An entry made by a listen()
// racing with the walk is fresher and stays. Best effort: a full table only
// means provisional owners are unknown until the first I/O.
func (p *Probe) knowListener(r *connNwIterRec) {
	m := p.Coll.Maps["nw_listeners"]
	if m == nil {
		return
	}
	key := uint64(r.Conn.Netns)<<16 | uint64(r.Conn.Sport)
	_ = m.Update(key, &r.Conn.Owner, ebpf.UpdateNoExist)
	p.knowListenSock(r)
}

// Adopt inserts pre-existing connections into the kernel table so that
// their packets, samples and close are tracked like new ones.
// A connection whose set is full is skipped (and counted, like one a hook
// could not track).
func (p *Probe) Adopt(evs []event.Event, wanted func(*event.Conn) bool) (adopted int, err error) {
	if p.table == TableHash {
		return p.adoptHash(evs, wanted)
	}
	prog := p.Coll.Programs["nw_adopt"]
	if prog == nil {
		return 0, errors.New("conn: adopt: no nw_adopt program (BPF syscall programs need Linux 5.14)")
	}
	for i := range evs {
		c := &evs[i].Conn
		if !wanted(c) {
			continue
		}
		args := connNwAdoptArgs{Sk: c.Sock, Conn: encodeConn(c)}
		ret, err := prog.Run(&ebpf.RunOptions{Context: &args})
		if err != nil {
			return adopted, fmt.Errorf("conn: adopt: %w", err)
		}
		if ret == 0 { // NW_ADOPT_OK; EXISTS and FULL are skipped
			adopted++
			p.addBase(c.Sock)
			p.aggAdopted(c)
		}
	}
	clear(p.rtxBase)
	return adopted, p.flushBase()
}

// adoptHash is Adopt for the hash variant: an insert with BPF_NOEXIST is
// atomic against the hooks' claims (the same bucket lock), so no BPF
// syscall program is needed (those need 5.14).
func (p *Probe) adoptHash(evs []event.Event, wanted func(*event.Conn) bool) (adopted int, err error) {
	m := p.Coll.Maps["nw_conn_hash"]
	full := 0
	for i := range evs {
		c := &evs[i].Conn
		if !wanted(c) {
			continue
		}
		v := encodeConn(c) // owner PREEXIST: not waiting (owner_pending 0)
		// as the walk read it: a retransmission between the walk and
		// this insert counts as unseen at close (nw_adopt has no such gap)
		v.RtxBase = p.rtxBase[c.Sock]
		switch err := m.Update(c.Sock, &v, ebpf.UpdateNoExist); {
		case err == nil:
			adopted++
			p.addBase(c.Sock)
			p.aggAdopted(c)
		case errors.Is(err, ebpf.ErrKeyExist): // a hook saw it first
		case errors.Is(err, unix.E2BIG), errors.Is(err, unix.ENOMEM): // full
			full++
		default:
			return adopted, fmt.Errorf("conn: adopt: %w", err)
		}
	}
	if full > 0 {
		p.countFull(uint64(full))
	}
	clear(p.rtxBase)
	return adopted, p.flushBase()
}

// countFull adds n to conn_table_full (the per-CPU counter's first slot)
// for connections user space could not insert. Start-up only; an increment
// by BPF on that CPU in between could be lost, which start-up makes rare.
func (p *Probe) countFull(n uint64) {
	m := p.Coll.Maps["nw_stats"]
	key := uint32(event.StatConnMapFull)
	var vals []uint64
	if m.Lookup(key, &vals) != nil || len(vals) == 0 {
		return
	}
	vals[0] += n
	_ = m.Update(key, vals, ebpf.UpdateExist)
}

// Lookup reads one connection from the kernel table (a syscall: for the
// rare record that arrives before its connection's open event).
func (p *Probe) Lookup(sk uint64, c *event.Conn) bool {
	if p.Coll == nil || sk == 0 {
		return false
	}
	if p.table == TableHash {
		var v connNwConn
		if p.Coll.Maps["nw_conn_hash"].Lookup(sk, &v) != nil {
			return false
		}
		decodeConn(c, sk, &v)
		return true
	}
	keys := p.Coll.Maps["nw_conn_keys"]
	set := setOf(sk, keys.MaxEntries())
	var ks connNwConnSet
	if keys.Lookup(set, &ks) != nil {
		return false
	}
	for w, k := range ks.Sk {
		if k != sk {
			continue
		}
		var v connNwConn
		if p.Coll.Maps["nw_conns"].Lookup(set*ways+uint32(w), &v) != nil {
			return false
		}
		decodeConn(c, sk, &v)
		return true
	}
	return false
}

// Sample reads the current tcp_sock values of every tracked connection.
func (p *Probe) Sample(fn func(sk uint64, c *event.Conn, st *event.Stats)) error {
	if p.sampler == nil {
		return nil
	}
	var c event.Conn
	var st event.Stats
	return readIter(p.sampler, func(r *connNwIterRec) {
		decodeConn(&c, r.Sk, &r.Conn)
		decodeStats(&st, &r.Stats)
		fn(r.Sk, &c, &st)
	})
}

// Decode fills ev from a raw connection ring record. It reports false for
// records that are too short.
func Decode(raw []byte, ev *event.Event) bool {
	// Only CLOSE records carry the final tcp_sock values (OPEN and OWNER
	// records end before them).
	if len(raw) < connShortSize || (raw[0] == byte(event.ConnClose) && len(raw) < connEventSize) {
		return false
	}
	// Copy into an aligned value: ring samples are aligned, but a decoder
	// must not depend on its caller's buffer alignment.
	var rv connNwConnEvent
	n := copy(unsafe.Slice((*byte)(unsafe.Pointer(&rv)), connEventSize), raw)
	r := &rv
	ev.Type = event.Type(r.Hdr.Type)
	ev.TS = r.Hdr.Ts
	decodeConn(&ev.Conn, r.Hdr.Sk, &r.Conn)
	ev.HasStats = ev.Type == event.ConnClose && n == connEventSize
	if ev.HasStats {
		decodeStats(&ev.Stats, &r.Stats)
	}
	return true
}

func decodeStats(s *event.Stats, r *connNwConnStats) {
	*s = event.Stats{
		SrttUs8: r.SrttUs8, Cwnd: r.Cwnd, Ssthresh: r.Ssthresh, RcvWnd: r.RcvWnd,
		SndWnd: r.SndWnd, Sndbuf: r.Sndbuf, WmemQueued: r.WmemQueued, Backlog: r.Backlog,
		MaxBacklog: r.MaxBacklog, TotalRetrans: r.TotalRetrans, BytesReceived: r.BytesReceived,
		BytesAcked: r.BytesAcked, State: r.State, CaState: r.CaState,
	}
}

// Addr turns a raw 16-byte address of the given family into netip.Addr.
func Addr(family uint16, b *[16]uint8) netip.Addr {
	if family == unix.AF_INET {
		return netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]})
	}
	return netip.AddrFrom16(*b)
}

func decodeConn(c *event.Conn, sk uint64, r *connNwConn) {
	*c = event.Conn{
		Sock:           sk,
		Netns:          r.Netns,
		Src:            netip.AddrPortFrom(Addr(r.Family, &r.Saddr), r.Sport),
		Dst:            netip.AddrPortFrom(Addr(r.Family, &r.Daddr), r.Dport),
		IsServer:       r.IsServer != 0,
		Pid:            r.Owner.Pid,
		OwnerSrc:       event.OwnerSrc(r.Owner.Src),
		EstNs:          r.EstNs,
		FastRetrans:    r.FastRetrans,
		TimeoutRetrans: r.TimeoutRetrans,
		RetransSegs:    r.RetransSegs,
	}
	c.SetOwner(r.Owner.Pid, r.Owner.Src, &r.Owner.Comm)
}

func encodeConn(c *event.Conn) connNwConn {
	var r connNwConn
	r.Netns = c.Netns
	if c.Src.Addr().Is4() {
		r.Family = unix.AF_INET
		a, d := c.Src.Addr().As4(), c.Dst.Addr().As4()
		copy(r.Saddr[:], a[:])
		copy(r.Daddr[:], d[:])
	} else {
		r.Family = unix.AF_INET6
		r.Saddr = c.Src.Addr().As16()
		r.Daddr = c.Dst.Addr().As16()
	}
	r.Sport, r.Dport = c.Src.Port(), c.Dst.Port()
	if c.IsServer {
		r.IsServer = 1
	}
	r.EstNs = c.EstNs
	r.Owner.Pid = c.Pid
	r.Owner.Src = uint8(c.OwnerSrc)
	for i, b := range c.Comm {
		r.Owner.Comm[i] = int8(b)
	}
	return r
}
