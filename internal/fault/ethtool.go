package fault

import (
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

type ethtoolValue struct {
	cmd  uint32
	data uint32
}

type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// Legacy ethtool get/set commands per offload (still served by every
// kernel that has the features API).
var offloads = map[string][2]uint32{
	"rx":  {unix.ETHTOOL_GRXCSUM, unix.ETHTOOL_SRXCSUM},
	"tx":  {unix.ETHTOOL_GTXCSUM, unix.ETHTOOL_STXCSUM},
	"sg":  {unix.ETHTOOL_GSG, unix.ETHTOOL_SSG},
	"tso": {unix.ETHTOOL_GTSO, unix.ETHTOOL_STSO},
	"gso": {unix.ETHTOOL_GGSO, unix.ETHTOOL_SGSO},
	"gro": {unix.ETHTOOL_GGRO, unix.ETHTOOL_SGRO},
}

func ethtoolValueIoctl(ifname string, cmd uint32, data uint32) (uint32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	v := ethtoolValue{cmd: cmd, data: data}
	var ifr ifreqData
	copy(ifr.name[:unix.IFNAMSIZ-1], ifname)
	ifr.data = unsafe.Pointer(&v)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return 0, e
	}
	return v.data, nil
}

// SetOffload turns an offload of ifname in netns on or off, like
// `ethtool -K IF NAME on|off`. NAME is one of rx (receive checksumming),
// tx, sg, tso, gso, gro. It returns an error if the setting did not stick.
func SetOffload(netns, ifname, name string, on bool) error {
	cmds, ok := offloads[name]
	if !ok {
		return usagef("unknown offload %q (rx, tx, sg, tso, gso, gro)", name)
	}
	if ifname == "" {
		return usagef("--iface is required")
	}
	return Do(netns, func() error {
		if _, err := net.InterfaceByName(ifname); err != nil {
			return usagef("interface %q not found in network namespace %q", ifname, netns)
		}
		var d uint32
		if on {
			d = 1
		}
		if _, err := ethtoolValueIoctl(ifname, cmds[1], d); err != nil {
			return fmt.Errorf("ethtool -K %s %s %v: %w", ifname, name, onOff(on), err)
		}
		got, err := ethtoolValueIoctl(ifname, cmds[0], 0)
		if err != nil {
			return fmt.Errorf("ethtool get %s of %s: %w", name, ifname, err)
		}
		if (got != 0) != on {
			return fmt.Errorf("offload %s of %s is still %s", name, ifname, onOff(got != 0))
		}
		return nil
	})
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// SetRxChecksum turns receive checksum offload of ifname in netns on or off
// (`ethtool -K IF rx on|off`). With it off, a veth stops marking received
// packets as already verified, so the stack checks TCP checksums and counts
// bad ones in TcpInCsumErrors.
func SetRxChecksum(netns, ifname string, on bool) error {
	return SetOffload(netns, ifname, "rx", on)
}
