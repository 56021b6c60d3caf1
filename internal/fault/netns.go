package fault

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/netwatcher/netwatcher/internal/nsenter"
)

// NetnsDir is where named network namespaces live (ip netns).
const NetnsDir = "/run/netns"

const nsfsMagic = 0x6e736673

// NetnsPath validates a namespace name and returns /run/netns/NAME. It
// refuses (with a *UsageError) an empty or odd name, a name that is not a
// mounted network namespace, and the root network namespace (the one of
// PID 1), compared by device and inode.
func NetnsPath(name string) (string, error) {
	if name == "" {
		return "", usagef("--netns is required: name a network namespace from 'ip netns list' (never the root namespace)")
	}
	if strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return "", usagef("bad namespace name %q", name)
	}
	p := filepath.Join(NetnsDir, name)
	if err := checkNsFile(p, name); err != nil {
		return "", err
	}
	return p, nil
}

// checkNsFile refuses unless p is a network namespace file that is not the
// root network namespace.
func checkNsFile(p, name string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return usagef("network namespace %q does not exist (%s: %v)", name, p, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil || sfs.Type != nsfsMagic {
		return usagef("%s is not a mounted network namespace", p)
	}
	if fh, err := os.Open(p); err == nil {
		typ, err := unix.IoctlRetInt(int(fh.Fd()), unix.NS_GET_NSTYPE)
		fh.Close()
		if err == nil && typ != unix.CLONE_NEWNET {
			return usagef("%s is not a network namespace", p)
		}
	}
	root, err := rootNetnsStat()
	if err != nil {
		return usagef("cannot identify the root network namespace (%v); refusing to act", err)
	}
	if (st.Dev == root.Dev && st.Ino == root.Ino) || st.Ino == procNetInitIno {
		return usagef("network namespace %q is the root network namespace; refusing to act there", name)
	}
	return nil
}

// procNetInitIno is the fixed inode number of the initial network
// namespace on recent kernels (PROC_NET_INIT_INO).
const procNetInitIno = 0xEFFFFFF9

// rootNetnsFile names a file for the root (initial) network namespace:
// /proc/1/ns/net, or, where PID 1 is not accessible (non-dumpable), the
// namespace of kthreadd (PID 2), which as a kernel thread always lives in
// the initial namespace.
func rootNetnsFile() (string, error) {
	var st unix.Stat_t
	err1 := unix.Stat("/proc/1/ns/net", &st)
	if err1 == nil {
		return "/proc/1/ns/net", nil
	}
	if comm, err := os.ReadFile("/proc/2/comm"); err == nil && strings.TrimSpace(string(comm)) == "kthreadd" {
		if err := unix.Stat("/proc/2/ns/net", &st); err == nil {
			return "/proc/2/ns/net", nil
		}
	}
	return "", fmt.Errorf("/proc/1/ns/net: %v, and /proc/2 is not an accessible kthreadd", err1)
}

func rootNetnsStat() (unix.Stat_t, error) {
	var st unix.Stat_t
	p, err := rootNetnsFile()
	if err != nil {
		return st, err
	}
	err = unix.Stat(p, &st)
	return st, err
}

// CheckNetns is NetnsPath without the path.
func CheckNetns(name string) error {
	_, err := NetnsPath(name)
	return err
}

// Do runs fn on an OS thread that has entered the named network namespace
// (after the same checks as NetnsPath). Sockets that fn creates belong to
// that namespace for their whole life and may be used from any goroutine
// afterwards. fn must not rely on goroutines it starts being in the
// namespace.
func Do(name string, fn func() error) error {
	p, err := NetnsPath(name)
	if err != nil {
		return err
	}
	return doPath(p, fn)
}

func doPath(p string, fn func() error) error { return nsenter.DoPath(p, fn) }

// localAddrs lists the addresses of the namespace the calling (locked)
// thread is in.
func localAddrs() ([]netip.Addr, error) {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range ifaddrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

// LocalAddrs lists the addresses assigned to interfaces in the namespace.
func LocalAddrs(netns string) ([]netip.Addr, error) {
	var out []netip.Addr
	err := Do(netns, func() (err error) {
		out, err = localAddrs()
		return err
	})
	return out, err
}

// IsLocal reports whether a is assigned to an interface in the namespace.
func IsLocal(netns string, a netip.Addr) (bool, error) {
	addrs, err := LocalAddrs(netns)
	if err != nil {
		return false, err
	}
	return containsAddr(addrs, a), nil
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, x := range list {
		if x.WithZone("") == a {
			return true
		}
	}
	return false
}

// requireLocal refuses unless addr is local in netns.
func requireLocal(netns string, a netip.Addr, role string) error {
	ok, err := IsLocal(netns, a)
	if err != nil {
		return err
	}
	if !ok {
		return usagef("%s address %v is not assigned to any interface in network namespace %q; refusing", role, a, netns)
	}
	return nil
}
