package kernel

import (
	"io"
	"log/slog"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/netwatcher/netwatcher/internal/netns"
)

// NetnsHooks keeps a concern's per-namespace boundaries (netfilter links)
// attached in every network namespace of the host, new ones too, through
// a netns.Manager. Its methods are safe on a nil *NetnsHooks.
type NetnsHooks struct {
	m          *netns.Manager
	coll       *ebpf.Collection
	log        *slog.Logger
	boundaries []string

	// Reader-goroutine state (Seen): namespaces already asked about.
	seen   map[uint32]bool
	recent [4]uint32 // namespaces seen lately (0: none)
}

// StartNetns attaches boundaries (in this order, with AttachNetns) in every
// network namespace that exists now and keeps them attached in new ones.
// It fails only if no namespace at all could be hooked (the error is then
// one line, see OneLine); the hooks are nil then.
func StartNetns(coll *ebpf.Collection, log *slog.Logger, boundaries []string) (*NetnsHooks, error) {
	h := &NetnsHooks{coll: coll, log: log, boundaries: boundaries, seen: map[uint32]bool{}}
	h.m = netns.New(h.attach, netns.Options{Log: log})
	if err := h.m.Start(); err != nil {
		h.m.Close()
		return nil, oneLineError{err}
	}
	return h, nil
}

// attach is the manager's AttachFunc: every boundary inside the current
// namespace, all or none.
func (h *NetnsHooks) attach(ino uint64) ([]io.Closer, error) {
	var out []io.Closer
	for _, name := range h.boundaries {
		a, err := AttachNetns(h.coll, name)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		out = append(out, a.Link)
		h.log.Debug("attached", "boundary", name, "netns", ino, "kind", a.Cand.Kind, "target", a.Cand.Target, "prog", a.Cand.Prog)
	}
	return out, nil
}

// Seen is called on the reader goroutine with each record's namespace: a
// namespace seen for the first time that is not hooked yet asks for a scan
// now rather than at the next poll. The few namespaces seen lately are
// checked before the map: traffic between two namespaces alternates
// between them record by record, and a map lookup per record was ~3% of
// the tool's CPU with -tixre under HTTP load (perf). No allocation after
// the first record of a namespace.
func (h *NetnsHooks) Seen(ns uint32) {
	if h == nil || ns == h.recent[0] || ns == h.recent[1] || ns == h.recent[2] || ns == h.recent[3] {
		return
	}
	copy(h.recent[1:], h.recent[:3])
	h.recent[0] = ns
	if h.seen[ns] {
		return
	}
	h.seen[ns] = true
	if !h.m.Known(uint64(ns)) {
		h.m.Poke()
	}
}

// Close stops scanning and closes every namespace's hooks. The hooks stay
// usable for Seen (the engine's reader may still decode records).
func (h *NetnsHooks) Close() {
	if h != nil {
		h.m.Close()
	}
}

// OneLine is err's text as one line, for a warning: slog's TextHandler
// quotes a value with a newline in it and prints the newline as `\n`. The
// namespace manager's error when no namespace could be hooked joins one
// error per namespace with newlines (errors.Join), which printed as one
// line full of literal \n; each namespace has its own warning already.
func OneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// oneLineError prints its error on one line (OneLine).
type oneLineError struct{ err error }

func (e oneLineError) Error() string { return OneLine(e.err) }
func (e oneLineError) Unwrap() error { return e.err }

// DeleteNetfilter removes the netfilter programs from spec: where the
// kernel has no netfilter BPF links (before 6.4) they would not load, and
// the concern falls back to host-wide hooks or leaves the boundary out.
func DeleteNetfilter(spec *ebpf.CollectionSpec) {
	for name, p := range spec.Programs {
		if p.Type == ebpf.Netfilter {
			delete(spec.Programs, name)
		}
	}
}
