#!/usr/bin/env bash
# The kernel matrix (make test-kernels): runs netwatcher with a scripted
# loopback workload on Debian's kernels under qemu, and on this machine's
# own kernel, and judges each run against scripts/kernels/expect.tsv.
#
# usage: scripts/kernels/run.sh [--update-readme] [KERNEL...]
#   KERNEL   a name, suite or series from the table below (e.g. 6.1,
#            bullseye, 6.12 = both 6.12 kernels, host); none: all of them
#   --update-readme  write the compatibility table into README.md, between
#            the kernel-matrix markers (needs the whole matrix)
# env:
#   KERNEL_CACHE    downloaded .debs and extracted vmlinuz, by version
#                   (default /var/cache/netwatcher/kernels)
#   KERNEL_TIMEOUT  seconds per guest before it counts as hung (default 300)
#   KERNEL_REFRESH  hours before the package lists are fetched again
#                   (default 24; 0: always)
#   KEEP_WORK=1     keep the work dir (it is also kept when a kernel fails)
#   WORK=DIR        use DIR as the work dir (kept)
#
# Per kernel: the guest's serial log is $WORK/logs/<name>.log; nwkcheck's
# verdict lines (FEATURE name status detail) are in it. The table of the run
# is $WORK/compat.md. Needs: go, qemu-system-x86, busybox-static, cpio
# (./scripts/deps.sh kernels), root (netwatcher on the host kernel, network
# namespace).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${KERNEL_CACHE:-/var/cache/netwatcher/kernels}
timeout_s=${KERNEL_TIMEOUT:-300}
refresh_h=${KERNEL_REFRESH:-24}
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

# The kernels. name, Debian suite, expect.tsv column (series), and a glob of
# the suite's .deb in the cache (used when the package lists cannot be
# fetched: offline, the newest cached one is taken).
kernels=(
	"5.10     bullseye            5.10  linux-image-5.10.*_amd64.deb"
	"6.1      bookworm-security   6.1   linux-image-6.1.0-*_amd64.deb"
	"6.12-bpo bookworm-backports  6.12  linux-image-6.12.*~bpo12*_amd64.deb"
	"6.12     trixie              6.12  linux-image-6.12.*+deb13-*_amd64.deb"
	"host     -                   host  -"
)

# ---- kernel images: Debian packages, private apt state --------------------

# The system's apt sources stay untouched: lists, cache and sources.list of
# our own under $cache/apt, Debian's keyring, the mirror the system uses.
apt_dir=$cache/apt
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
	-o APT::Sandbox::User=root)

apt_lists_ready=0
prepare_apt() {
	[ $apt_lists_ready = 1 ] && return 0
	apt_lists_ready=1
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
	local mirror key=/usr/share/keyrings/debian-archive-keyring.gpg
	mirror=$(sed -n 's#^URIs: *\(.*\)/debian/*$#\1#p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
	mirror=${mirror:-http://deb.debian.org}
	{
		printf "deb [signed-by=$key] $mirror/debian %s main\n" bullseye bookworm bookworm-backports trixie
		echo "deb [signed-by=$key] $mirror/debian-security bookworm-security main"
	} >"$apt_dir/sources.list"
	# fetch the lists when the last update is older than $refresh_h hours (a
	# stamp of our own: apt leaves unchanged lists with their old times)
	if [ -z "$(find "$apt_dir/updated" -mmin -$((refresh_h * 60)) 2>/dev/null)" ]; then
		echo "fetching Debian package lists into $apt_dir"
		if timeout 300 apt-get "${apt_opts[@]}" -qq --error-on=any update >/dev/null 2>&1; then
			touch "$apt_dir/updated"
		else
			echo "WARNING: apt-get update failed; using cached lists / .debs" >&2
		fi
	fi
}

# fetch_vmlinuz SUITE GLOB: prints the path of the suite's newest kernel
# image, downloading its .deb into $cache when it is not there yet.
fetch_vmlinuz() {
	local suite=$1 glob=$2 meta pkg ver deb
	prepare_apt
	# linux-image-amd64 of the suite depends on the versioned image package
	meta=$(apt-cache "${apt_opts[@]}" madison linux-image-amd64 2>/dev/null |
		awk -F' *[|] *' -v s=" $suite/" 'index($3, s) { print $2; exit }')
	if [ -n "$meta" ]; then
		pkg=$(apt-cache "${apt_opts[@]}" show "linux-image-amd64=$meta" |
			sed -n 's/^Depends: \([^ ,]*\).*/\1/p' | head -1)
		ver=$(apt-cache "${apt_opts[@]}" madison "$pkg" |
			awk -F' *[|] *' -v s=" $suite/" 'index($3, s) { print $2; exit }')
		deb=$cache/${pkg}_${ver//:/%3a}_amd64.deb
		if [ ! -f "$deb" ]; then
			echo "downloading $pkg $ver ($suite)" >&2
			(cd "$cache" && timeout 600 apt-get "${apt_opts[@]}" -qq download "$pkg=$ver" >/dev/null)
		fi
	else
		# no lists (offline): the newest cached .deb of the suite
		deb=$(ls -v "$cache"/$glob 2>/dev/null | tail -1)
		[ -n "$deb" ] || { echo "no kernel package for $suite (no lists, nothing cached)" >&2; return 1; }
		echo "WARNING: $suite: no package lists, using cached $(basename "$deb")" >&2
	fi
	# only vmlinuz is needed; kept next to the .deb, by package version
	local img=$cache/vmlinuz/$(basename "$deb" .deb)/vmlinuz
	if [ ! -f "$img" ]; then
		mkdir -p "$(dirname "$img")"
		dpkg-deb --fsys-tarfile "$deb" | tar -x -O --wildcards './boot/vmlinuz-*' >"$img.tmp"
		mv "$img.tmp" "$img"
	fi
	echo "$img"
}

# ---- binaries and the initramfs ------------------------------------------

# build_binaries: static, from this checkout (the guest has no libc)
build_binaries() {
	echo "building netwatcher, nwpeer, nwkcheck (static) from $repo"
	local cmd
	for cmd in netwatcher nwpeer nwkcheck; do
		(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$WORK/bin/$cmd" "./cmd/$cmd")
	done
}

build_initramfs() {
	local root=$WORK/initramfs
	rm -rf "$root"
	mkdir -p "$root"/{bin,proc,sys,dev,tmp,run,nwk}
	local bb
	bb=$(command -v busybox) || { echo "run.sh: no busybox (./scripts/deps.sh kernels)" >&2; exit 1; }
	if ldd "$bb" >/dev/null 2>&1; then
		echo "run.sh: $bb is not static; install busybox-static" >&2
		exit 1
	fi
	cp "$bb" "$root/bin/busybox"
	cp "$WORK"/bin/{netwatcher,nwpeer,nwkcheck} "$root/bin/"
	cp "$here/guest-init" "$root/init"
	cp "$here/runs.sh" "$here/workload.sh" "$root/nwk/"
	chmod +x "$root/init"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initramfs.gz"
}

# ---- one kernel -----------------------------------------------------------

# boot_guest NAME VMLINUZ: the guest runs runs.sh and powers off; its serial
# console is the log.
boot_guest() {
	local name=$1 img=$2 rc=0
	# TCG: /dev/kvm cannot run a stock guest here. thread=single: multi-threaded
	# TCG gave int3 oopses at live-patch sites while hooks detached under load.
	timeout "$timeout_s" qemu-system-x86_64 -accel tcg,thread=single -m 1G -smp 2 \
		-nographic -no-reboot -nic none \
		-kernel "$img" -initrd "$WORK/initramfs.gz" \
		-append "console=ttyS0 panic=-1 quiet" \
		</dev/null >"$WORK/logs/$name.log" 2>&1 || rc=$?
	[ $rc = 0 ] || echo "qemu exit $rc (124: timed out after $timeout_s s)" >>"$WORK/logs/$name.log"
}

# run_host NAME: the same runs on this machine's kernel. netwatcher traces
# the whole host from the root namespace; the workload runs in a fresh
# namespace (loopback only), and nwkcheck counts only that namespace.
run_host() {
	local name=$1 log=$WORK/logs/$1.log t0
	netns=nwk-$$
	ip netns add "$netns"
	ip -n "$netns" link set lo up
	t0=$(cut -d' ' -f1 /proc/uptime) # kernel log lines after this are ours to judge
	{
		echo "=== kernel $(uname -r) (host), workload in netns $netns"
		PATH="$WORK/bin:$PATH" NWK_EXEC="ip netns exec $netns" \
			NWK_NETNS=$(stat -L -c %i "/run/netns/$netns") NWK_DIR="$here" \
			sh "$here/runs.sh" "$WORK/host"
		echo "=== dmesg (new lines)"
		dmesg 2>/dev/null | awk -v t0="$t0" '{ t = $0; sub(/^\[ */, "", t); if (t + 0 >= t0) print }' || true
		echo "=== NWK END"
	} >"$log" 2>&1
	ip netns del "$netns"
	netns=""
}

# ---- the matrix -----------------------------------------------------------

# main is the whole run; everything is in functions, so bash has read the
# entire script before it starts (editing it during a run is harmless).
main() {
	update_readme=0
	want=()
	for a in "$@"; do
		case $a in
		--update-readme) update_readme=1 ;;
		-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
		-*) echo "run.sh: unknown option $a" >&2; exit 2 ;;
		*) want+=("$a") ;;
		esac
	done

	# selected NAME SUITE SERIES: is this kernel asked for?
	selected() {
		[ ${#want[@]} -eq 0 ] && return 0
		local w
		for w in "${want[@]}"; do
			case $w in "$1" | "$2" | "$3" | "${2%-security}") return 0 ;; esac
		done
		return 1
	}

	plan=()
	for k in "${kernels[@]}"; do
		read -r name suite series glob <<<"$k"
		selected "$name" "$suite" "$series" && plan+=("$k")
	done
	if [ ${#plan[@]} -eq 0 ]; then
		echo "run.sh: no kernel matches ${want[*]} (names: 5.10 6.1 6.12-bpo 6.12 host; suites; series)" >&2
		exit 2
	fi
	if [ $update_readme = 1 ] && [ ${#plan[@]} -ne ${#kernels[@]} ]; then
		echo "run.sh: --update-readme needs the whole matrix (no kernel arguments)" >&2
		exit 2
	fi
	[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (netwatcher, network namespaces)" >&2; exit 1; }

	keep=${KEEP_WORK:-0}
	if [ -n "${WORK:-}" ]; then
		keep=1
		mkdir -p "$WORK"
	else
		WORK=$(mktemp -d -t nwkernels.XXXXXX)
	fi
	mkdir -p "$WORK/logs" "$WORK/bin"
	netns=""
	cleanup() {
		[ -z "$netns" ] || ip netns del "$netns" 2>/dev/null || true
		if [ "$keep" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
	}
	trap cleanup EXIT
	trap 'exit 130' INT TERM

	build_binaries

	need_guest=0
	for k in "${plan[@]}"; do [[ $k == host* ]] || need_guest=1; done
	if [ $need_guest = 1 ]; then
		prepare_apt # here, not in fetch_vmlinuz's subshell: once per run
		build_initramfs
	fi

	failed=()
	summary=()
	table_args=()
	t_all=$(date +%s)
	for k in "${plan[@]}"; do
		read -r name suite series glob <<<"$k"
		t0=$(date +%s)
		if [ "$name" = host ]; then
			label="host $(uname -r | cut -d- -f1)"
			echo "--- $label: running the workload in a fresh namespace"
			run_host "$name"
		else
			if ! img=$(fetch_vmlinuz "$suite" "$glob"); then
				echo "FAIL $name: no kernel image for $suite"
				failed+=("$name")
				continue
			fi
			ver=$(basename "$(dirname "$img")" | sed 's/^linux-image-[^_]*_\([^-_]*\).*/\1/')
			label="$ver ($suite)"
			echo "--- $label: booting $(basename "$(dirname "$img")")"
			boot_guest "$name" "$img"
		fi
		secs=$(($(date +%s) - t0))
		verdict=$("$WORK/bin/nwkcheck" judge --expect "$here/expect.tsv" --series "$series" \
			--name "$name" "$WORK/logs/$name.log") && res=PASS || res=FAIL
		echo "$verdict"
		grep -E '^(FEATURE|WARN|FATAL) ' "$WORK/logs/$name.log" | tr -d '\r' | sed "s/^/  $name: /" || true
		if [ $res = FAIL ]; then
			failed+=("$name")
			if ! grep -q '^=== NWK END' "$WORK/logs/$name.log"; then
				echo "  $name: unfinished; last lines of $WORK/logs/$name.log:"
				tail -15 "$WORK/logs/$name.log" | tr -d '\r' | cut -c1-300 | sed 's/^/    /'
			fi
		fi
		summary+=("$(printf '%-9s %-32s %-4s %4d s' "$name" "$label" "$res" "$secs")")
		table_args+=("$label=$WORK/logs/$name.log")
	done
	total=$(($(date +%s) - t_all))

	# every candidate of the hook table ran on some kernel (only the whole
	# matrix can tell; a subset only reports)
	hooks_args=()
	[ ${#plan[@]} -lt ${#kernels[@]} ] && hooks_args+=(--partial)
	logs=()
	for k in "${plan[@]}"; do
		read -r name _ <<<"$k"
		logs+=("$WORK/logs/$name.log")
	done
	hooks_ok=1
	"$WORK/bin/nwkcheck" hooks "${hooks_args[@]}" "${logs[@]}" >"$WORK/hooks.md" || hooks_ok=0

	# summary and compatibility table
	{
		local rev
		rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')
		git -C "$repo" diff --quiet HEAD -- 2>/dev/null || rev="$rev + uncommitted changes"
		echo "Measured by \`make test-kernels\` on $(date -u +%Y-%m-%d) ($rev). ok: seen and right;"
		echo "missing: not produced on that kernel (netwatcher's warning says why); bad: produced but wrong."
		echo
		"$WORK/bin/nwkcheck" table "${table_args[@]}"
		echo
		echo "Which candidate hook ran where (\`nwkcheck hooks\`; the last run of each kernel (fallback) avoids tp_btf candidates, \`NW_AVOID=tp_btf\`):"
		echo
		cat "$WORK/hooks.md"
	} >"$WORK/compat.md"

	echo
	echo "kernel    version                          result  wall"
	printf '%s\n' "${summary[@]}"
	echo "total $total s"
	echo
	cat "$WORK/compat.md"

	if [ $update_readme = 1 ]; then
		begin='<!-- kernel-matrix:begin -->' end='<!-- kernel-matrix:end -->'
		if grep -qF "$begin" "$repo/README.md" && grep -qF "$end" "$repo/README.md"; then
			awk -v b="$begin" -v e="$end" -v f="$WORK/compat.md" '
				$0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
				$0 == e { skip = 0 }
				!skip' "$repo/README.md" >"$WORK/README.md.new"
			cat "$WORK/README.md.new" >"$repo/README.md"
			echo "README.md: compatibility table updated"
		else
			echo "README.md has no kernel-matrix markers; table not written" >&2
		fi
	fi

	if [ $hooks_ok = 0 ]; then
		grep '^HOOKS never ran' "$WORK/hooks.md"
		failed+=("hooks")
	fi
	# the plain closing line test runners print (CI reads it): kernels,
	# plus the hook coverage as one more check
	echo "kernels: $((${#plan[@]} + 1 - ${#failed[@]})) passed, ${#failed[@]} failed"
	if [ ${#failed[@]} -gt 0 ]; then
		keep=1
		echo "FAILED: ${failed[*]} (logs in $WORK/logs)"
		exit 1
	fi
}

# one line: bash reads a script as it runs it; this is the last it reads
main "$@"; exit
