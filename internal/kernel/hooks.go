package kernel

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Kind is how a candidate hook attaches.
type Kind int

const (
	TpBTF      Kind = iota // BTF-typed raw tracepoint (tp_btf), 5.5+
	RawTP                  // raw tracepoint, 4.17+
	Tracepoint             // classic tracepoint through tracefs
	Kprobe                 // kprobe on a kernel function
	CgroupSKB              // cgroup_skb on the cgroup v2 root: every netns; Target "ingress"/"egress"
	Netfilter              // netfilter BPF link (6.4+), PER NETWORK NAMESPACE; Target a hook name
	Kretprobe              // kretprobe on a kernel function (the return value; no arguments)
	SockOps                // sock_ops on the cgroup v2 root: every netns; Target "root"
)

var kindNames = [...]string{"tp_btf", "raw_tp", "tracepoint", "kprobe", "cgroup_skb", "netfilter", "kretprobe", "sock_ops"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind%d", int(k))
}

// PerNetns reports whether hooks of this kind see one network namespace
// only, so they must be attached inside every namespace (AttachNetns).
func (k Kind) PerNetns() bool { return k == Netfilter }

// Candidate is one way to observe a boundary: a program in a concern's
// object and the kernel attach point it wants.
type Candidate struct {
	Kind   Kind
	Target string // "group/event" for tracepoints, event name for tp_btf/raw_tp, function for kprobe
	// (kprobe: several functions separated by commas, all attached, e.g. the IPv4 and IPv6 entry),
	// "ingress"/"egress" for cgroup_skb, "PRE_ROUTING"/"LOCAL_IN"/"LOCAL_OUT"/"POST_ROUTING" for netfilter
	Prog string // program name in the collection
	// Needs: features the program needs beyond its attach point (a kfunc,
	// a helper); where one is missing the program cannot even load, so
	// Prune removes it and the next candidate (another variant) is used.
	Needs []Feature
	// Priority: a netfilter candidate's hook priority (0: NetfilterPriority).
	Priority int32
}

// Feature is something a program needs beyond its attach point (a kfunc, a
// helper): a named, cached probe (see Candidate.Needs).
type Feature struct {
	Name  string       // what is needed, with the kernel that brought it ("kfunc bpf_cast_to_kern_ctx (6.2+)")
	Probe func() error // nil: available
}

var featMu sync.Mutex
var featCache = map[string]error{}

func (f Feature) available() error {
	featMu.Lock()
	defer featMu.Unlock()
	if err, ok := featCache[f.Name]; ok {
		return err
	}
	err := f.Probe()
	if err != nil {
		err = fmt.Errorf("needs %s: %w", f.Name, err)
	}
	featCache[f.Name] = err
	return err
}

// KfuncFeature is the kfunc name, present where the kernel's BTF has it
// (kfuncs of the common set are offered to every program type).
func KfuncFeature(name, since string) Feature {
	return Feature{Name: "kfunc " + name + " (" + since + ")", Probe: func() error {
		spec, err := KernelBTF()
		if err != nil {
			return err
		}
		var fn *btf.Func
		if err := spec.TypeByName(name, &fn); err != nil {
			return errors.New("not in this kernel")
		}
		return nil
	}}
}

// HelperFeature is BPF helper fn for programs of type pt (probed by loading
// a program that calls it; cilium/ebpf caches the answer too).
func HelperFeature(pt ebpf.ProgramType, fn asm.BuiltinFunc, name, since string) Feature {
	return Feature{Name: "BPF helper " + name + " (" + since + ")", Probe: func() error {
		if err := features.HaveProgramHelper(pt, fn); err != nil {
			return errors.New("not in this kernel")
		}
		return nil
	}}
}

// Available reports (cached) whether the running kernel offers f.
func (f Feature) Available() error { return f.available() }

// ProgNeeds returns the features the table records for prog (tests).
func ProgNeeds(prog string) []Feature {
	for _, b := range table {
		for _, c := range b.Candidates {
			if c.Prog == prog && len(c.Needs) > 0 {
				return c.Needs
			}
		}
	}
	return nil
}

// Boundary is one observation point with its candidates, best first.
type Boundary struct {
	Name       string
	Candidates []Candidate
}

var probeMu sync.Mutex

// probeKey: what a probe depends on (the attach point, not the program).
type probeKey struct {
	kind   Kind
	target string
}

var probeCache = map[probeKey]error{}

// AvoidEnv names the environment variable that makes candidates of the
// listed kinds unavailable ("tp_btf,netfilter"): the kernel matrix uses it
// to run the fallback candidates on kernels that would pick the first
// ones, so that every candidate runs somewhere, not only in the verifier.
const AvoidEnv = "NW_AVOID"

var avoided = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Split(os.Getenv(AvoidEnv), ",") {
		if k = strings.TrimSpace(k); k != "" {
			m[k] = true
		}
	}
	return m
})

// Available reports (cached) whether the running kernel offers candidate c.
func Available(c Candidate) error {
	if avoided()[c.Kind.String()] {
		return fmt.Errorf("%s candidates avoided (%s)", c.Kind, AvoidEnv)
	}
	key := probeKey{c.Kind, c.Target}
	probeMu.Lock()
	err, ok := probeCache[key]
	if !ok {
		err = probe(c)
		probeCache[key] = err
	}
	probeMu.Unlock()
	if err != nil {
		return err
	}
	return needsMet(c)
}

// needsMet: are the features c's program needs available?
func needsMet(c Candidate) error {
	for _, f := range c.Needs {
		if err := f.available(); err != nil {
			return err
		}
	}
	return nil
}

func probe(c Candidate) error {
	switch c.Kind {
	case TpBTF, RawTP:
		spec, err := KernelBTF()
		if err != nil {
			if c.Kind == TpBTF {
				return err
			}
			// raw_tp works without BTF; trust tracefs if present.
			return tracefsEvent(c.Target)
		}
		var fn *btf.Typedef
		if err := spec.TypeByName("btf_trace_"+c.Target, &fn); err != nil {
			return fmt.Errorf("no tracepoint %s in kernel BTF", c.Target)
		}
		return nil
	case Tracepoint:
		if err := EnsureTracefs(); err != nil {
			return err
		}
		return tracefsEvent(c.Target)
	case Kprobe, Kretprobe:
		if _, err := os.Stat("/sys/bus/event_source/devices/kprobe/type"); err != nil {
			return errors.New("kprobes not supported by this kernel (CONFIG_KPROBES off)")
		}
		return kallsymsHave(strings.Split(c.Target, ","))
	case CgroupSKB:
		if err := features.HaveProgramType(ebpf.CGroupSKB); err != nil {
			return fmt.Errorf("cgroup_skb programs not supported: %w", err)
		}
		if CgroupV2Root() == "" {
			return errors.New("no cgroup v2 hierarchy mounted")
		}
		return nil
	case SockOps:
		if err := features.HaveProgramType(ebpf.SockOps); err != nil {
			return fmt.Errorf("sock_ops programs not supported: %w", err)
		}
		if CgroupV2Root() == "" {
			return errors.New("no cgroup v2 hierarchy mounted")
		}
		return nil
	case Netfilter:
		if err := features.HaveProgramType(ebpf.Netfilter); err != nil {
			return fmt.Errorf("netfilter BPF programs not supported (6.4+): %w", err)
		}
		if _, ok := nfHooks[c.Target]; !ok {
			return fmt.Errorf("unknown netfilter hook %q", c.Target)
		}
		return nil
	}
	return fmt.Errorf("unknown hook kind %d", c.Kind)
}

func tracefsEvent(target string) error {
	if !strings.Contains(target, "/") {
		// raw tracepoint names carry no group; look for any group.
		m, _ := filepath.Glob(filepath.Join(TracefsDir, "events", "*", target))
		if len(m) > 0 {
			return nil
		}
		return fmt.Errorf("no tracepoint %s", target)
	}
	if _, err := os.Stat(filepath.Join(TracefsDir, "events", target, "id")); err != nil {
		return fmt.Errorf("no tracepoint %s (tracefs)", target)
	}
	return nil
}

// kallsymsHave reports whether every function in names is in
// /proc/kallsyms (a function inlined everywhere, or absent, is not: a
// kprobe on it cannot attach).
func kallsymsHave(names []string) error {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return fmt.Errorf("kprobe targets unknown: %w", err)
	}
	defer f.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(want) > 0 {
		// address type name [module]
		fl := strings.Fields(sc.Text())
		if len(fl) >= 3 && (fl[1] == "t" || fl[1] == "T") {
			delete(want, fl[2])
		}
	}
	if len(want) > 0 {
		var miss []string
		for n := range want {
			miss = append(miss, n)
		}
		sort.Strings(miss)
		return fmt.Errorf("no function %s in this kernel (inlined or absent)", strings.Join(miss, ", "))
	}
	return nil
}

// Attached is a hook that is live.
type Attached struct {
	Boundary string
	Cand     Candidate
	Link     io.Closer
}

// Attach attaches the first available host-wide candidate of boundary name
// using programs from coll. It returns a one-line error naming every
// candidate that was tried when none works. Per-namespace candidates are
// skipped here: AttachNetns attaches them inside each namespace.
func Attach(coll *ebpf.Collection, name string) (*Attached, error) {
	return attach(coll, name, false)
}

// AttachNetns attaches the first available per-namespace candidate of
// boundary name in the network namespace of the calling thread (the caller
// has done setns on a locked OS thread).
func AttachNetns(coll *ebpf.Collection, name string) (*Attached, error) {
	return attach(coll, name, true)
}

// Usable reports whether boundary name has a host-wide candidate that coll
// holds (not pruned) and this kernel offers: what Attach would try.
func Usable(coll *ebpf.Collection, name string) bool {
	for _, c := range Hooks[name].Candidates {
		if !c.Kind.PerNetns() && coll.Programs[c.Prog] != nil && Available(c) == nil {
			return true
		}
	}
	return false
}

func attach(coll *ebpf.Collection, name string, perNetns bool) (*Attached, error) {
	b, ok := Hooks[name]
	if !ok {
		return nil, fmt.Errorf("unknown hook boundary %q", name)
	}
	var why []string
	for _, c := range b.Candidates {
		if c.Kind.PerNetns() != perNetns {
			continue
		}
		prog := coll.Programs[c.Prog]
		if prog == nil {
			why = append(why, fmt.Sprintf("%s %s: program not loaded", c.Kind, c.Target))
			continue
		}
		if err := Available(c); err != nil {
			why = append(why, fmt.Sprintf("%s %s: %v", c.Kind, c.Target, err))
			continue
		}
		l, err := attachOne(prog, c)
		if err != nil {
			why = append(why, fmt.Sprintf("%s %s: %v", c.Kind, c.Target, err))
			continue
		}
		return &Attached{Boundary: name, Cand: c, Link: l}, nil
	}
	return nil, fmt.Errorf("%s: no usable hook (%s)", name, strings.Join(why, "; "))
}

func attachOne(prog *ebpf.Program, c Candidate) (io.Closer, error) {
	switch c.Kind {
	case TpBTF:
		return link.AttachTracing(link.TracingOptions{Program: prog})
	case RawTP:
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: c.Target, Program: prog})
	case Tracepoint:
		group, name, _ := strings.Cut(c.Target, "/")
		return link.Tracepoint(group, name, prog, nil)
	case Kprobe, Kretprobe:
		var ls multiLink
		for _, fn := range strings.Split(c.Target, ",") {
			kp := link.Kprobe
			if c.Kind == Kretprobe {
				kp = link.Kretprobe
			}
			l, err := kp(fn, prog, nil)
			if err != nil {
				ls.Close()
				return nil, fmt.Errorf("%s: %w", fn, err)
			}
			ls = append(ls, l)
		}
		return ls, nil
	case CgroupSKB:
		at := ebpf.AttachCGroupInetIngress
		if c.Target == "egress" {
			at = ebpf.AttachCGroupInetEgress
		}
		return link.AttachCgroup(link.CgroupOptions{Path: CgroupV2Root(), Attach: at, Program: prog})
	case SockOps:
		return link.AttachCgroup(link.CgroupOptions{Path: CgroupV2Root(), Attach: ebpf.AttachCGroupSockOps, Program: prog})
	case Netfilter:
		// one link per family, closed together
		var ls multiLink
		for _, fam := range []link.NetfilterProtocolFamily{link.NetfilterProtoIPv4, link.NetfilterProtoIPv6} {
			// The kernel refuses a second BPF link at the same priority
			// of a hook (EBUSY): another netwatcher, or another tool, may
			// hold it. Then the next one toward 0, a few times.
			prio := cmp.Or(c.Priority, NetfilterPriority)
			step := int32(1)
			if prio > 0 {
				step = -1
			}
			var l link.Link
			var err error
			for try := 0; try < nfBusyTries; try, prio = try+1, prio+step {
				l, err = link.AttachNetfilter(link.NetfilterOptions{
					Program: prog, ProtocolFamily: fam, Hook: nfHooks[c.Target], Priority: prio,
				})
				if !errors.Is(err, unix.EBUSY) {
					break
				}
			}
			if err != nil {
				ls.Close()
				return nil, fmt.Errorf("family %d: %w", fam, err)
			}
			ls = append(ls, l)
		}
		return ls, nil
	}
	return nil, fmt.Errorf("cannot attach kind %s", c.Kind)
}

// NetfilterPriority runs netwatcher's netfilter programs before conntrack
// and defragmentation (-400), so a stamp is the layer's entry.
const NetfilterPriority = -450

// nfBusyTries bounds the priorities tried when one is taken (EBUSY).
const nfBusyTries = 16

// The first and the last priority a netfilter BPF link may take: the
// kernel refuses NF_IP_PRI_FIRST (INT_MIN) and NF_IP_PRI_LAST (INT_MAX).
const (
	NfFirstPriority = math.MinInt32 + 1
	NfLastPriority  = math.MaxInt32 - 1
)

var nfHooks = map[string]link.NetfilterInetHook{
	"PRE_ROUTING":  link.NetfilterInetPreRouting,
	"LOCAL_IN":     link.NetfilterInetLocalIn,
	"FORWARD":      link.NetfilterInetForward,
	"LOCAL_OUT":    link.NetfilterInetLocalOut,
	"POST_ROUTING": link.NetfilterInetPostRouting,
}

// multiLink closes several links as one.
type multiLink []link.Link

func (m multiLink) Close() error {
	var first error
	for _, l := range m {
		if err := l.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

var cgOnce sync.Once
var cgRoot string

// CgroupV2Root finds (once) the mount point of the cgroup v2 hierarchy
// ("" when there is none).
func CgroupV2Root() string {
	cgOnce.Do(func() {
		data, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return
		}
		for _, l := range strings.Split(string(data), "\n") {
			// ... root mountpoint ... - cgroup2 cgroup2 rw
			pre, post, ok := strings.Cut(l, " - ")
			if !ok || !strings.HasPrefix(post, "cgroup2 ") {
				continue
			}
			if f := strings.Fields(pre); len(f) >= 5 && f[3] == "/" {
				cgRoot = f[4]
				return
			}
		}
	})
	return cgRoot
}

// Prune removes from spec every program of a candidate this kernel cannot
// even load: tp_btf whose target is missing (their attach point is
// resolved at load time), and any
// program that needs a feature (Needs) this kernel lacks, so the rest of the
// collection still loads. Programs of kinds that load but do not attach
// (kprobe without CONFIG_KPROBES) stay: loading them verifies them.
func Prune(spec *ebpf.CollectionSpec) {
	for _, b := range table {
		for _, c := range b.Candidates {
			if (c.Kind == TpBTF && Available(c) != nil) || needsMet(c) != nil {
				delete(spec.Programs, c.Prog)
			}
		}
	}
}

// Live is a concern's loaded collection and its attached hooks. Concerns
// embed it for the bookkeeping every one of them needs.
type Live struct {
	Coll     *ebpf.Collection
	attached []*Attached
	missing  []string // boundaries Attach could not attach (metrics: netwatcher_hook_missing)
}

// Attach attaches boundary name (see Attach) and keeps the link.
func (l *Live) Attach(log interface{ Debug(string, ...any) }, name string) (*Attached, error) {
	a, err := Attach(l.Coll, name)
	if err != nil {
		l.missing = append(l.missing, name)
		return nil, err
	}
	log.Debug("attached", "boundary", name, "kind", a.Cand.Kind, "target", a.Cand.Target, "prog", a.Cand.Prog)
	l.attached = append(l.attached, a)
	return a, nil
}

// Attached lists the live hooks.
func (l *Live) Attached() []*Attached { return l.attached }

// Missing lists the boundaries Attach failed to attach.
func (l *Live) Missing() []string { return l.missing }

// RecursionMisses sums the runs the kernel skipped of the concern's
// programs because a BPF program was already running on that CPU (a
// tracepoint hit again from an interrupt or softirq that interrupted the
// program, e.g. kfree_skb or tcp_retransmit_skb in a softirq on top of the
// same hook in process context): events lost before any ring reservation,
// which no other counter sees (Linux 5.12+; 0 before).
func (l *Live) RecursionMisses() uint64 {
	if l.Coll == nil {
		return 0
	}
	var n uint64
	for _, p := range l.Coll.Programs {
		if st, err := p.Stats(); err == nil {
			n += st.RecursionMisses
		}
	}
	return n
}

// Detach closes every hook (the collection stays loaded).
func (l *Live) Detach() {
	for _, a := range l.attached {
		a.Link.Close()
	}
	l.attached = nil
}

// Close detaches and releases the collection.
func (l *Live) Close() {
	l.Detach()
	if l.Coll != nil {
		l.Coll.Close()
		l.Coll = nil
	}
}
