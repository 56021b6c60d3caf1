package fault

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"golang.org/x/sys/unix"
)

// OOW modes.
const (
	ModeFuture      = "future"       // seq = rcv_nxt + 2^30: beyond the window
	ModeOld         = "old"          // seq = rcv_nxt - 2^30: long before the window
	ModeInWindowOOO = "inwindow-ooo" // seq = rcv_nxt + Offset (+ spacing): in window, out of order
)

// DefaultPayload is the payload of injected segments.
var DefaultPayload = []byte("nwfault!")

// InjectOptions configures BadCsum and OutOfWindow.
type InjectOptions struct {
	Netns string // namespace of the sender (Flow.Src must be local there)
	Flow  Flow   // Src = sender, Dst = receiver
	Count int    // segments to inject (>= 1)

	Mode   string // OutOfWindow only: ModeFuture (default), ModeOld, ModeInWindowOOO
	Offset uint32 // ModeInWindowOOO: distance of the first segment beyond rcv_nxt (default 300)

	Iface     string // interface to sniff on (default: egress interface towards Flow.Dst)
	PeerNetns string // optional: namespace that must hold Flow.Dst (default: found from the veth peer)
	Payload   []byte // default DefaultPayload

	Timeout  time.Duration // how long to wait for traffic of the flow (default 10s)
	Quiet    time.Duration // wait until the flow was idle this long before injecting (default 50ms)
	Settle   time.Duration // ... but at most this long after the first packet (default 1s)
	Interval time.Duration // pause between injected segments (default 10ms)
	Linger   time.Duration // keep sniffing after the last segment to count replies (default 100ms)

	Out   io.Writer // one line per segment and a summary (nil: discarded)
	Ready func()    // called once the sniffer captures, before waiting for traffic
}

// Segment is one injected segment.
type Segment struct {
	Seq, Ack uint32
	Len      int
	Checksum uint16 // as written
	GoodCsum uint16 // the correct checksum
	RcvNxt   uint32 // receiver's next expected sequence number as learned
	Time     time.Time
}

// InjectResult reports what was injected.
type InjectResult struct {
	Kind      string // "badcsum", "oow-future", "oow-old", "oow-inwindow-ooo"
	Flow      Flow
	Netns     string
	PeerNetns string
	Iface     string
	Learned   int // flow packets seen before injecting
	RcvNxt    uint32
	Ack       uint32
	Segments  []Segment
	Replies   int // packets from Flow.Dst seen after the first injected segment
}

func (o *InjectOptions) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Quiet <= 0 {
		o.Quiet = 50 * time.Millisecond
	}
	if o.Settle <= 0 {
		o.Settle = time.Second
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Millisecond
	}
	if o.Linger <= 0 {
		o.Linger = 100 * time.Millisecond
	}
	if len(o.Payload) == 0 {
		o.Payload = DefaultPayload
	}
	if o.Offset == 0 {
		o.Offset = 300
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
}

// BadCsum injects opts.Count data segments with a wrong TCP checksum (and
// otherwise plausible: seq = rcv_nxt, right ack) from opts.Netns into the
// connection. The receiver counts them in TcpInCsumErrors only if its
// interface does not trust checksums (SetRxChecksum(ns, ifname, false)).
func BadCsum(ctx context.Context, opts InjectOptions) (*InjectResult, error) {
	return inject(ctx, opts, "badcsum")
}

// OutOfWindow injects opts.Count data segments with a valid checksum and a
// sequence number chosen by opts.Mode.
func OutOfWindow(ctx context.Context, opts InjectOptions) (*InjectResult, error) {
	if opts.Mode == "" {
		opts.Mode = ModeFuture
	}
	switch opts.Mode {
	case ModeFuture, ModeOld, ModeInWindowOOO:
	default:
		return nil, usagef("bad --mode %q: want future, old or inwindow-ooo", opts.Mode)
	}
	return inject(ctx, opts, "oow-"+opts.Mode)
}

func inject(ctx context.Context, opts InjectOptions, kind string) (*InjectResult, error) {
	opts.defaults()
	if opts.Count < 1 || opts.Count > 100000 {
		return nil, usagef("bad --count %d: want 1..100000", opts.Count)
	}
	if len(opts.Payload) > 1200 {
		return nil, usagef("payload too long (%d bytes, at most 1200)", len(opts.Payload))
	}
	if err := CheckNetns(opts.Netns); err != nil {
		return nil, err
	}
	if err := opts.Flow.Validate(); err != nil {
		return nil, err
	}
	if opts.PeerNetns != "" {
		if err := CheckNetns(opts.PeerNetns); err != nil {
			return nil, err
		}
	}
	sp, err := checkSendPath(opts.Netns, opts.Flow, opts.PeerNetns)
	if err != nil {
		return nil, err
	}
	iface := opts.Iface
	if iface == "" {
		iface = sp.Iface
	}
	var pfd, rfd = -1, -1
	err = Do(opts.Netns, func() error {
		live, err := liveSocket(opts.Flow)
		if err != nil {
			return err
		}
		if !live {
			return usagef("no live TCP connection %s in network namespace %q; refusing", opts.Flow, opts.Netns)
		}
		if pfd, err = openPacketSocket(iface); err != nil {
			return err
		}
		if opts.Flow.Is6() {
			rfd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		} else {
			rfd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		}
		if err != nil {
			unix.Close(pfd)
			return fmt.Errorf("raw socket: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	sn := newSniffer(pfd, opts.Flow)
	go sn.run()
	defer sn.close()

	res := &InjectResult{Kind: kind, Flow: opts.Flow, Netns: opts.Netns, PeerNetns: sp.PeerNetns, Iface: iface}
	fmt.Fprintf(opts.Out, "%s: learning flow %s on %s in netns %s (peer netns %s)\n", kind, opts.Flow, iface, opts.Netns, sp.PeerNetns)
	if opts.Ready != nil {
		opts.Ready()
	}
	st, err := sn.settle(ctx.Done(), opts.Timeout, opts.Quiet, opts.Settle)
	if err != nil {
		return nil, err
	}
	if st.reset {
		return nil, fmt.Errorf("flow %s was reset", opts.Flow)
	}
	res.Learned, res.RcvNxt, res.Ack = st.packets, st.rcvNxt(), st.ackValue()
	fmt.Fprintf(opts.Out, "%s: learned rcv_nxt=%d ack=%d from %d packets\n", kind, res.RcvNxt, res.Ack, st.packets)

	var sa unix.Sockaddr
	if opts.Flow.Is6() {
		sa = &unix.SockaddrInet6{Addr: opts.Flow.Dst.Addr().As16()}
	} else {
		sa = &unix.SockaddrInet4{Addr: opts.Flow.Dst.Addr().As4()}
	}
	plen := uint32(len(opts.Payload))
	for i := 0; i < opts.Count; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(opts.Interval):
			}
		}
		st, err := sn.snapshot()
		if err != nil {
			return res, fmt.Errorf("sniffing: %w", err)
		}
		rn, ack := st.rcvNxt(), st.ackValue()
		seg := segment{flow: opts.Flow, seq: rn, ack: ack, flags: tcpACK | tcpPSH, window: st.window(), payload: opts.Payload}
		switch kind {
		case "badcsum":
			seg.csumXor = 0x5555 // never turns a checksum into an equivalent one
		case "oow-" + ModeFuture:
			seg.seq = rn + 1<<30
		case "oow-" + ModeOld:
			seg.seq = rn - 1<<30
		case "oow-" + ModeInWindowOOO:
			// Separate segments with holes between them so that each one
			// is a new out-of-order segment (not a duplicate or a merge).
			seg.seq = res.RcvNxt + opts.Offset + uint32(i)*2*plen
		}
		pkt, good, written := seg.build(uint16(rand.Uint32()))
		sn.mu.Lock()
		if len(sn.sent) >= 256 { // only recent ones can still show up
			sn.sent = append(sn.sent[:0], sn.sent[128:]...)
		}
		sn.sent = append(sn.sent, sentSeg{seq: seg.seq, payload: opts.Payload})
		if sn.mark.IsZero() {
			sn.mark = time.Now()
		}
		sn.mu.Unlock()
		if err := unix.Sendto(rfd, pkt, 0, sa); err != nil {
			return res, fmt.Errorf("send: %w", err)
		}
		s := Segment{Seq: seg.seq, Ack: ack, Len: len(opts.Payload), Checksum: written, GoodCsum: good, RcvNxt: rn, Time: time.Now()}
		res.Segments = append(res.Segments, s)
		if kind == "badcsum" {
			fmt.Fprintf(opts.Out, "injected badcsum seq=%d ack=%d len=%d csum=0x%04x correct=0x%04x\n", s.Seq, s.Ack, s.Len, s.Checksum, s.GoodCsum)
		} else {
			fmt.Fprintf(opts.Out, "injected %s seq=%d ack=%d len=%d rcv_nxt=%d\n", kind, s.Seq, s.Ack, s.Len, rn)
		}
	}
	select {
	case <-ctx.Done():
	case <-time.After(opts.Linger):
	}
	sn.mu.Lock()
	res.Replies = sn.reps
	sn.mu.Unlock()
	fmt.Fprintf(opts.Out, "summary: %s injected=%d flow=%s netns=%s iface=%s peer_netns=%s learned_packets=%d rcv_nxt=%d ack=%d peer_replies=%d\n",
		kind, len(res.Segments), opts.Flow, opts.Netns, iface, sp.PeerNetns, res.Learned, res.RcvNxt, res.Ack, res.Replies)
	return res, nil
}
