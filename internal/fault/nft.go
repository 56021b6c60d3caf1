package fault

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

var tableSeq atomic.Uint64

// TablePrefix starts the name of every nft table nwfault creates.
const TablePrefix = "nwfault_"

// newTableName returns nwfault_<pid> for the first table of this process
// and nwfault_<pid>_<n> for later ones (library users may run several).
func newTableName() string {
	n := tableSeq.Add(1)
	if n == 1 {
		return fmt.Sprintf("%s%d", TablePrefix, os.Getpid())
	}
	return fmt.Sprintf("%s%d_%d", TablePrefix, os.Getpid(), n)
}

// runNft runs nft inside the namespace (forked from a thread that entered
// it) with script on stdin, or with args if script is empty.
func runNft(netns string, script string, args ...string) (string, error) {
	nft, err := exec.LookPath("nft")
	if err != nil {
		return "", fmt.Errorf("nft not found in PATH: %w", err)
	}
	var out, errb bytes.Buffer
	err = Do(netns, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if script != "" {
			args = append([]string{"-f", "-"}, args...)
		}
		cmd := exec.CommandContext(ctx, nft, args...)
		if script != "" {
			cmd.Stdin = strings.NewReader(script)
		}
		cmd.Stdout, cmd.Stderr = &out, &errb
		return cmd.Run()
	})
	if err != nil {
		if IsUsage(err) {
			return "", err
		}
		return out.String(), fmt.Errorf("nft %s in netns %s: %v: %s", strings.Join(args, " "), netns, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// nftMatch is the match part of a rule for packets of f arriving at f.Dst.
func nftMatch(f Flow) string {
	fam := "ip"
	if f.Is6() {
		fam = "ip6"
	}
	return fmt.Sprintf("%s saddr %s %s daddr %s tcp sport %d tcp dport %d",
		fam, f.Src.Addr(), fam, f.Dst.Addr(), f.Src.Port(), f.Dst.Port())
}

// nftTable is a table of our own with one chain at prerouting (priority
// raw, before conntrack) and a named counter of the packets dropped.
type nftTable struct {
	netns, name string
}

const nftChain = "ingress"
const nftCounter = "dropped"

func createTable(netns string) (*nftTable, error) {
	t := &nftTable{netns: netns, name: newTableName()}
	script := fmt.Sprintf(`table inet %[1]s {
	counter %[2]s { }
	chain %[3]s {
		type filter hook prerouting priority raw; policy accept;
	}
}
`, t.name, nftCounter, nftChain)
	if _, err := runNft(netns, script); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *nftTable) addDrop(match string) error {
	_, err := runNft(t.netns, fmt.Sprintf("add rule inet %s %s %s counter name %s drop\n", t.name, nftChain, match, nftCounter))
	return err
}

var counterRE = regexp.MustCompile(`packets (\d+) bytes (\d+)`)

func (t *nftTable) dropped() (uint64, error) {
	out, err := runNft(t.netns, "", "list", "counter", "inet", t.name, nftCounter)
	if err != nil {
		return 0, err
	}
	m := counterRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("cannot parse nft counter: %q", out)
	}
	return strconv.ParseUint(m[1], 10, 64)
}

func (t *nftTable) delete() error {
	_, err := runNft(t.netns, fmt.Sprintf("delete table inet %s\n", t.name))
	return err
}

// openTable checks that Drop or Blackout may act on flow f at its receiver
// in netns (peer: the sender's namespace, optional) and creates a table
// there; the caller removes it with close.
func openTable(netns string, f Flow, peer string) (*nftTable, error) {
	if err := checkReceiver(netns, f, peer); err != nil {
		return nil, err
	}
	return createTable(netns)
}

// close stores how many packets the table dropped in *dropped (left alone
// if that cannot be read), removes the table and then calls removed; its
// error is non-nil (and removed is not called) if the table could not be
// removed.
func (t *nftTable) close(dropped *uint64, removed func()) error {
	if n, err := t.dropped(); err == nil {
		*dropped = n
	}
	if err := t.delete(); err != nil {
		return fmt.Errorf("removing nft table %s: %w", t.name, err)
	}
	removed()
	return nil
}

// orDiscard is w, or io.Discard when w is nil.
func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// DropOptions configures Drop.
type DropOptions struct {
	Netns     string        // namespace of the receiver (Flow.Dst must be local there)
	Flow      Flow          // packets from Flow.Src to Flow.Dst are dropped
	Every     int           // drop one in Every packets, at random (1 = all)
	Duration  time.Duration // how long; 0 = until ctx is done
	PeerNetns string        // optional: namespace that must hold Flow.Src
	Out       io.Writer
	Ready     func() // called once the rule is active
}

// DropResult reports what Drop did.
type DropResult struct {
	Table   string // nft table (inet family) that was used and removed
	Active  time.Duration
	Dropped uint64 // packets dropped by the rule
}

func checkReceiver(netns string, f Flow, peer string) error {
	if err := CheckNetns(netns); err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		return err
	}
	if err := requireLocal(netns, f.Dst.Addr(), "receiver"); err != nil {
		return err
	}
	if peer != "" {
		if err := CheckNetns(peer); err != nil {
			return err
		}
		if err := requireLocal(peer, f.Src.Addr(), "sender"); err != nil {
			return err
		}
	}
	return nil
}

// Drop drops one in opts.Every packets of the flow at the receiver's
// ingress (nft table inet nwfault_<pid>, prerouting) for opts.Duration or
// until ctx is done, then removes the table. Its error is non-nil if the
// table could not be removed.
func Drop(ctx context.Context, opts DropOptions) (res *DropResult, err error) {
	if opts.Every < 1 {
		return nil, usagef("bad --every %d: want >= 1", opts.Every)
	}
	if opts.Duration < 0 {
		return nil, usagef("bad --duration %v", opts.Duration)
	}
	out := orDiscard(opts.Out)
	t, err := openTable(opts.Netns, opts.Flow, opts.PeerNetns)
	if err != nil {
		return nil, err
	}
	res = &DropResult{Table: t.name}
	defer func() {
		if cerr := t.close(&res.Dropped, func() {
			fmt.Fprintf(out, "drop: removed table inet %s from netns %s after %v; dropped=%d\n", t.name, opts.Netns, res.Active.Round(time.Millisecond), res.Dropped)
		}); cerr != nil {
			err = cerr
		}
	}()
	match := nftMatch(opts.Flow)
	if opts.Every > 1 {
		match += fmt.Sprintf(" numgen random mod %d == 0", opts.Every)
	}
	if err := t.addDrop(match); err != nil {
		return res, err
	}
	start := time.Now()
	fmt.Fprintf(out, "drop: table inet %s in netns %s drops 1 in %d packets of %s\n", t.name, opts.Netns, opts.Every, opts.Flow)
	if opts.Ready != nil {
		opts.Ready()
	}
	if opts.Duration > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(opts.Duration):
		}
	} else {
		<-ctx.Done()
	}
	res.Active = time.Since(start)
	return res, nil
}

// BlackoutOptions configures Blackout.
type BlackoutOptions struct {
	Netns     string        // namespace of the receiver (Flow.Dst must be local there)
	Flow      Flow          // packets from Flow.Src to Flow.Dst are dropped
	Length    time.Duration // each blackout (default 150ms; millisecond resolution)
	Repeat    int           // number of blackouts (default 1)
	Gap       time.Duration // from the end of one blackout to the start of the next (default 500ms)
	PeerNetns string        // optional: namespace that must hold Flow.Src
	Out       io.Writer
	Ready     func() // called once the table exists, before the first blackout
}

// Window is one blackout. The kernel ends it: the flow is put into an nft
// set with an element timeout of Len, so its length does not depend on how
// fast nwfault runs. Start is when the element had been committed (nft
// returned); the commit itself happened up to a few milliseconds earlier.
type Window struct {
	Start   time.Time
	Len     time.Duration
	Dropped uint64 // packets dropped in this window
}

// BlackoutResult reports what Blackout did.
type BlackoutResult struct {
	Table   string
	Windows []Window
	Dropped uint64
}

// Blackout drops every packet of the flow at the receiver's ingress for
// opts.Length, opts.Repeat times with opts.Gap between, then removes its
// table. ctx ends it early (the table is still removed).
func Blackout(ctx context.Context, opts BlackoutOptions) (res *BlackoutResult, err error) {
	if opts.Length == 0 {
		opts.Length = 150 * time.Millisecond
	}
	if opts.Repeat == 0 {
		opts.Repeat = 1
	}
	if opts.Gap == 0 {
		opts.Gap = 500 * time.Millisecond
	}
	if opts.Length < time.Millisecond || opts.Repeat < 0 || opts.Gap < 0 {
		return nil, usagef("bad blackout: length %v (>= 1ms), repeat %d, gap %v", opts.Length, opts.Repeat, opts.Gap)
	}
	out := orDiscard(opts.Out)
	t, err := openTable(opts.Netns, opts.Flow, opts.PeerNetns)
	if err != nil {
		return nil, err
	}
	res = &BlackoutResult{Table: t.name}
	defer func() {
		if cerr := t.close(&res.Dropped, func() {
			fmt.Fprintf(out, "blackout: removed table inet %s from netns %s; windows=%d dropped=%d\n", t.name, opts.Netns, len(res.Windows), res.Dropped)
		}); cerr != nil {
			err = cerr
		}
	}()
	f := opts.Flow
	typ, fam := "ipv4_addr", "ip"
	if f.Is6() {
		typ, fam = "ipv6_addr", "ip6"
	}
	setup := fmt.Sprintf(`add set inet %[1]s blackout { type %[2]s . %[2]s . inet_service . inet_service; flags timeout; }
add rule inet %[1]s %[3]s %[4]s saddr . %[4]s daddr . tcp sport . tcp dport @blackout counter name %[5]s drop
`, t.name, typ, nftChain, fam, nftCounter)
	if _, err := runNft(opts.Netns, setup); err != nil {
		return res, err
	}
	ms := opts.Length.Milliseconds()
	elem := fmt.Sprintf("add element inet %s blackout { %s . %s . %d . %d timeout %dms }\n",
		t.name, f.Src.Addr(), f.Dst.Addr(), f.Src.Port(), f.Dst.Port(), ms)
	length := time.Duration(ms) * time.Millisecond
	if opts.Ready != nil {
		opts.Ready()
	}
	var prev uint64
	for i := 0; i < opts.Repeat; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return res, nil
			case <-time.After(opts.Gap):
			}
		}
		if _, err := runNft(opts.Netns, elem); err != nil {
			return res, err
		}
		w := Window{Start: time.Now(), Len: length}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(w.Start.Add(length))):
		}
		if n, err := t.dropped(); err == nil {
			w.Dropped, prev = n-prev, n
		}
		res.Windows = append(res.Windows, w)
		fmt.Fprintf(out, "blackout %d/%d: dropped all of %s in netns %s for %v (%d packets)\n", i+1, opts.Repeat, f, opts.Netns, length, w.Dropped)
		if ctx.Err() != nil {
			return res, nil
		}
	}
	return res, nil
}

// Cleanup deletes every inet table named nwfault_* in the namespace (left
// behind by a killed nwfault) and returns their names.
func Cleanup(netns string) ([]string, error) {
	if err := CheckNetns(netns); err != nil {
		return nil, err
	}
	out, err := runNft(netns, "", "list", "tables", "inet")
	if err != nil {
		return nil, err
	}
	var gone []string
	for _, line := range strings.Split(out, "\n") {
		fs := strings.Fields(line)
		if len(fs) == 3 && fs[0] == "table" && fs[1] == "inet" && strings.HasPrefix(fs[2], TablePrefix) {
			if _, err := runNft(netns, fmt.Sprintf("delete table inet %s\n", fs[2])); err != nil {
				return gone, err
			}
			gone = append(gone, fs[2])
		}
	}
	return gone, nil
}
