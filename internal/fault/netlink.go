package fault

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// A minimal rtnetlink client: route lookup, link kind / peer namespace, and
// namespace ids. It is used only for the safety checks. The socket belongs
// to the namespace of the thread that opened it.
type rtnl struct {
	fd  int
	seq uint32
}

func openRtnl() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	tv := unix.Timeval{Sec: 2}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return &rtnl{fd: fd}, nil
}

func (r *rtnl) close() { unix.Close(r.fd) }

func nlAttr(typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[4:], data)
	return b
}

func u32b(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

// request sends one request and returns the payloads of the reply messages
// of type want.
func (r *rtnl) request(typ uint16, body []byte, want uint16) ([][]byte, error) {
	r.seq++
	msg := make([]byte, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(msg[8:], r.seq)
	copy(msg[unix.SizeofNlMsghdr:], body)
	if err := unix.Sendto(r.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	buf := make([]byte, 1<<16)
	var out [][]byte
	for {
		n, _, err := unix.Recvfrom(r.fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		done := false
		for _, m := range msgs {
			if m.Header.Seq != r.seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
						return nil, syscall.Errno(-e)
					}
				}
				done = true
			case unix.NLMSG_DONE:
				done = true
			case want:
				out = append(out, append([]byte(nil), m.Data...))
				if m.Header.Flags&unix.NLM_F_MULTI == 0 {
					done = true
				}
			}
		}
		if done {
			return out, nil
		}
	}
}

// requestOne sends one request and returns the first reply of type want,
// split into its fixed header (hdrLen bytes: struct rtmsg, ifinfomsg, ...)
// and its attributes. what names the reply in the error if there is none.
func (r *rtnl) requestOne(typ uint16, body []byte, want uint16, hdrLen int, what string) (hdr []byte, attrs map[uint16][]byte, err error) {
	msgs, err := r.request(typ, body, want)
	if err != nil {
		return nil, nil, err
	}
	if len(msgs) == 0 || len(msgs[0]) < hdrLen {
		return nil, nil, fmt.Errorf("empty %s reply", what)
	}
	return msgs[0][:hdrLen], parseAttrs(msgs[0][hdrLen:]), nil
}

func parseAttrs(b []byte) map[uint16][]byte {
	m := map[uint16][]byte{}
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		t := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(b) {
			break
		}
		m[t] = b[4:l]
		al := (l + 3) &^ 3
		if al > len(b) {
			break
		}
		b = b[al:]
	}
	return m
}

type routeInfo struct {
	typ     uint8 // unix.RTN_*
	oif     int
	gateway bool
}

func (r *rtnl) routeGet(dst netip.Addr) (routeInfo, error) {
	fam, bits := uint8(unix.AF_INET), uint8(32)
	if dst.Is6() {
		fam, bits = unix.AF_INET6, 128
	}
	body := make([]byte, unix.SizeofRtMsg)
	body[0] = fam
	body[1] = bits
	body = append(body, nlAttr(unix.RTA_DST, dst.AsSlice())...)
	m, at, err := r.requestOne(unix.RTM_GETROUTE, body, unix.RTM_NEWROUTE, unix.SizeofRtMsg, "route")
	if err != nil {
		return routeInfo{}, err
	}
	ri := routeInfo{typ: m[7]}
	if v, ok := at[unix.RTA_OIF]; ok && len(v) >= 4 {
		ri.oif = int(binary.NativeEndian.Uint32(v))
	}
	for _, a := range []uint16{unix.RTA_GATEWAY, unix.RTA_MULTIPATH, unix.RTA_VIA} {
		if _, ok := at[a]; ok {
			ri.gateway = true
		}
	}
	return ri, nil
}

type linkInfo struct {
	name      string
	kind      string
	peerNsid  int32 // -1: the peer (if any) is in the same namespace
	hasPeerNs bool
	loopback  bool
}

func (r *rtnl) linkGet(index int) (linkInfo, error) {
	body := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(body[4:], uint32(index))
	m, at, err := r.requestOne(unix.RTM_GETLINK, body, unix.RTM_NEWLINK, unix.SizeofIfInfomsg, "link")
	if err != nil {
		return linkInfo{}, err
	}
	li := linkInfo{peerNsid: -1}
	flags := binary.NativeEndian.Uint32(m[8:])
	li.loopback = flags&unix.IFF_LOOPBACK != 0
	if v, ok := at[unix.IFLA_IFNAME]; ok {
		li.name = cstr(v)
	}
	if v, ok := at[unix.IFLA_LINKINFO]; ok {
		if k, ok := parseAttrs(v)[unix.IFLA_INFO_KIND]; ok {
			li.kind = cstr(k)
		}
	}
	if v, ok := at[unix.IFLA_LINK_NETNSID]; ok && len(v) >= 4 {
		li.peerNsid = int32(binary.NativeEndian.Uint32(v))
		li.hasPeerNs = true
	}
	return li, nil
}

// nsidOf returns the id under which the namespace behind fd is known in the
// socket's namespace (-1 if it has none).
func (r *rtnl) nsidOf(fd int) (int32, error) {
	body := make([]byte, 4) // struct rtgenmsg, padded
	body = append(body, nlAttr(unix.NETNSA_FD, u32b(uint32(fd)))...)
	_, at, err := r.requestOne(unix.RTM_GETNSID, body, unix.RTM_NEWNSID, 4, "nsid")
	if err != nil {
		return -1, err
	}
	if v, ok := at[unix.NETNSA_NSID]; ok && len(v) >= 4 {
		return int32(binary.NativeEndian.Uint32(v)), nil
	}
	return -1, nil
}

func cstr(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// sendPath is what checkSendPath found out.
type sendPath struct {
	Iface     string // egress interface towards the destination
	PeerNetns string // namespace where the destination address lives
}

// checkSendPath refuses unless packets from f.Src to f.Dst, written inside
// netns, stay between named non-root namespaces: f.Src must be local in
// netns, and f.Dst must either be local in netns too, or be reached
// directly (no gateway) through a veth whose peer is in another named,
// non-root namespace in which f.Dst is local. If peerNetns is not empty,
// the destination must be in that namespace.
func checkSendPath(netns string, f Flow, peerNetns string) (sendPath, error) {
	var sp sendPath
	var li linkInfo
	var ri routeInfo
	var rootNsid int32 = -2
	nsids := map[string]int32{}
	err := Do(netns, func() error {
		addrs, err := localAddrs()
		if err != nil {
			return err
		}
		if !containsAddr(addrs, f.Src.Addr()) {
			return usagef("sender address %v is not assigned to any interface in network namespace %q; refusing", f.Src.Addr(), netns)
		}
		r, err := openRtnl()
		if err != nil {
			return err
		}
		defer r.close()
		ri, err = r.routeGet(f.Dst.Addr())
		if err != nil {
			return usagef("no route to %v in network namespace %q: %v", f.Dst.Addr(), netns, err)
		}
		if ri.typ == unix.RTN_LOCAL {
			if containsAddr(addrs, f.Dst.Addr()) {
				li.name = "lo"
				return nil
			}
			return usagef("destination %v routes locally in %q but is not assigned there; refusing", f.Dst.Addr(), netns)
		}
		if ri.typ != unix.RTN_UNICAST {
			return usagef("destination %v is not a unicast route in network namespace %q; refusing", f.Dst.Addr(), netns)
		}
		if ri.gateway {
			return usagef("destination %v is reached through a gateway from network namespace %q; only directly connected veth peers are allowed", f.Dst.Addr(), netns)
		}
		li, err = r.linkGet(ri.oif)
		if err != nil {
			return err
		}
		if li.kind != "veth" {
			return usagef("destination %v leaves network namespace %q through %s (kind %q), not a veth; refusing", f.Dst.Addr(), netns, li.name, li.kind)
		}
		if !li.hasPeerNs {
			return usagef("veth %s in network namespace %q has its peer in the same namespace; refusing", li.name, netns)
		}
		// Which named namespace holds the veth peer? Ask for the id of the
		// root namespace and of every /run/netns entry, as seen from here.
		rp, err := rootNetnsFile()
		if err != nil {
			return usagef("cannot identify the root network namespace (%v); refusing", err)
		}
		if root, err := os.Open(rp); err == nil {
			rootNsid, _ = r.nsidOf(int(root.Fd()))
			root.Close()
		} else {
			return usagef("cannot open %s (%v); refusing", rp, err)
		}
		ents, _ := os.ReadDir(NetnsDir)
		for _, e := range ents {
			fh, err := os.Open(filepath.Join(NetnsDir, e.Name()))
			if err != nil {
				continue
			}
			id, err := r.nsidOf(int(fh.Fd()))
			fh.Close()
			if err == nil && id >= 0 {
				nsids[e.Name()] = id
			}
		}
		return nil
	})
	if err != nil {
		return sp, err
	}
	sp.Iface = li.name
	if ri.typ == unix.RTN_LOCAL {
		sp.PeerNetns = netns
		if peerNetns != "" && peerNetns != netns {
			return sp, usagef("destination %v is local in %q, not in --peer-netns %q; refusing", f.Dst.Addr(), netns, peerNetns)
		}
		return sp, nil
	}
	if rootNsid >= 0 && li.peerNsid == rootNsid {
		return sp, usagef("veth %s in network namespace %q has its peer in the root network namespace; refusing", li.name, netns)
	}
	for name, id := range nsids {
		if id == li.peerNsid && name != netns {
			if CheckNetns(name) != nil {
				continue
			}
			if peerNetns != "" && name != peerNetns {
				continue
			}
			sp.PeerNetns = name
		}
	}
	if sp.PeerNetns == "" {
		if peerNetns != "" {
			return sp, usagef("the peer of veth %s is not in --peer-netns %q; refusing", li.name, peerNetns)
		}
		return sp, usagef("the peer of veth %s (netnsid %d) is not a named network namespace under %s; refusing", li.name, li.peerNsid, NetnsDir)
	}
	if err := requireLocal(sp.PeerNetns, f.Dst.Addr(), "destination"); err != nil {
		return sp, err
	}
	return sp, nil
}
