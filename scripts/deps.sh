#!/usr/bin/env bash
# Installs the Debian packages a task needs, only when a command is missing.
# usage: scripts/deps.sh test|generate|bench
set -euo pipefail
want=()
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
case "${1:-test}" in
test)
	need ip iproute2; need ss iproute2; need nstat iproute2; need tc iproute2
	need ping iputils-ping; need tcpdump tcpdump; need tshark tshark
	need ethtool ethtool; need nft nftables; need sysctl procps
	need clang clang; need llvm-strip llvm
	[ -f /usr/include/bpf/bpf_helpers.h ] || want+=(libbpf-dev)
	;;
generate)
	need clang clang; need llvm-strip llvm
	[ -f /usr/include/bpf/bpf_helpers.h ] || want+=(libbpf-dev)
	;;
bench)
	need ip iproute2; need ping iputils-ping; need tcpdump tcpdump; need wrk wrk
	need bpftrace bpftrace; need bpftool bpftool; need nstat iproute2
	;;
*) echo "usage: $0 test|generate|bench" >&2; exit 2 ;;
esac
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing packages: ${want[*]} (run as root, e.g. sudo make test)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
