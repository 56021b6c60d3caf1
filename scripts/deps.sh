#!/usr/bin/env bash
# Installs the Debian packages a task needs, only when a command is missing.
# usage: scripts/deps.sh test|generate|bench|kernels
set -euo pipefail
want=()
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
case "${1:-test}" in
test)
	need ip iproute2; need ss iproute2; need nstat iproute2; need tc iproute2
	need ping iputils-ping; need tcpdump tcpdump; need tshark tshark
	need dnsmasq dnsmasq-base; need dig bind9-dnsutils
	# -R and -M tests start their own servers in namespaces
	need redis-server redis-server; need redis-benchmark redis-tools
	need mariadbd mariadb-server; need mariadb mariadb-client; need mariadb-install-db mariadb-server
	need ethtool ethtool; need nft nftables; need sysctl procps
	need clang-14 clang-14; need llvm-strip-14 llvm-14
	[ -f /usr/include/bpf/bpf_helpers.h ] || want+=(libbpf-dev)
	;;
generate)
	# the gen.go lines name clang-14 (Debian 12's clang): the committed
	# objects are byte-identical to what this compiler makes of the sources
	need clang-14 clang-14; need llvm-strip-14 llvm-14
	[ -f /usr/include/bpf/bpf_helpers.h ] || want+=(libbpf-dev)
	;;
bench)
	need ip iproute2; need ping iputils-ping; need tcpdump tcpdump; need wrk wrk
	need bpftrace bpftrace; need bpftool bpftool; need nstat iproute2
	;;
kernels)
	# the kernel matrix (scripts/kernels/run.sh): guests under qemu with a
	# busybox initramfs; kernel images come from Debian's packages
	need qemu-system-x86_64 qemu-system-x86
	# the initramfs needs a static busybox (Debian's "busybox" is dynamic)
	bb=$(command -v busybox || true)
	{ [ -n "$bb" ] && ! ldd "$bb" >/dev/null 2>&1; } || want+=(busybox-static)
	need cpio cpio; need dpkg-deb dpkg; need ip iproute2
	;;
*) echo "usage: $0 test|generate|bench|kernels" >&2; exit 2 ;;
esac
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing packages: ${want[*]} (run as root, e.g. sudo make test)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Servers (redis, mariadb) must not start as system services: the tests
# start their own. policy-rc.d (101: action forbidden) keeps invoke-rc.d
# from starting them, unless one is already there.
nopolicy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	nopolicy=1
fi
apt-get update -qq
rc=0
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null || rc=$?
[ -n "$nopolicy" ] && rm -f /usr/sbin/policy-rc.d
exit $rc
