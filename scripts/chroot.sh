#!/usr/bin/env bash
# Debian chroots for the e2e matrix's rows other than the host's own
# (scripts/e2e-linux.sh --stack NAME). Each row's xrdp and FreeRDP come from
# Debian's own mirror into a chroot made with debootstrap, so that no row
# changes the host's packages. Chroots are cached under $RDPDVC_CHROOTS
# (/var/cache/rdpdvc-e2e/chroot) and made again when the package list
# below changes.
#
#   scripts/chroot.sh make NAME          make (or refresh) the chroot of stack NAME
#   scripts/chroot.sh path NAME          print its folder
#   scripts/chroot.sh run NAME CMD...    run CMD in it, with /proc, /dev, /dev/pts,
#                                        a fresh /run, a tmpfs on /dev/shm, Go and the
#                                        repository (at /rdpdvc) mounted; unmounts after
#   scripts/chroot.sh clean              remove every cached chroot
#   scripts/chroot.sh stacks             list the stacks it knows
#
# As root. MIRROR overrides the Debian mirror (deb.debian.org/debian).
{
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHROOTS=${RDPDVC_CHROOTS:-/var/cache/rdpdvc-e2e/chroot}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

log() { printf 'chroot: %s\n' "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}

# What every row needs besides its stack: an X server for xfreerdp, a C
# toolchain for the plugin, and the tools the e2e script calls.
COMMON=(xvfb xauth pkg-config gcc libc6-dev iproute2 procps util-linux passwd ssl-cert
	ca-certificates curl python3 openssl)

# stack NAME: sets SUITE (what debootstrap installs), BACKPORTS (a suite to
# add and prefer, or empty) and PKGS (the stack's own packages).
stack() {
	BACKPORTS=""
	case "$1" in
	bookworm)
		# Only where the host is not Debian 12 (e2e-linux.sh runs this row
		# on a bookworm host directly).
		SUITE=bookworm
		PKGS=(xrdp xorgxrdp freerdp2-x11 freerdp2-dev libwinpr2-dev)
		;;
	bookworm-backports)
		SUITE=bookworm BACKPORTS=bookworm-backports
		PKGS=(xrdp xorgxrdp freerdp3-x11 freerdp3-dev libwinpr3-dev zlib1g-dev libssl-dev)
		;;
	trixie)
		SUITE=trixie
		PKGS=(xrdp xorgxrdp freerdp3-x11 freerdp3-dev libwinpr3-dev zlib1g-dev libssl-dev)
		;;
	trixie-backports)
		SUITE=trixie BACKPORTS=trixie-backports
		PKGS=(xrdp xorgxrdp freerdp3-x11 freerdp3-dev libwinpr3-dev zlib1g-dev libssl-dev)
		;;
	*) die "unknown stack '$1' (known: $(stacks))" ;;
	esac
}
stacks() { echo "bookworm bookworm-backports trixie trixie-backports"; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, mount and chroot need it)"

# The stamp records what a chroot was made with; a different recipe makes
# it again.
recipe() {
	stack "$1"
	printf '%s\n' "v1 $SUITE ${BACKPORTS:-none} $MIRROR ${PKGS[*]} ${COMMON[*]}"
}

make_chroot() {
	local name=$1 dir=$CHROOTS/$1
	stack "$name"
	local want
	want=$(recipe "$name")
	if [ -f "$dir/.rdpdvc-recipe" ] && [ "$(cat "$dir/.rdpdvc-recipe")" = "$want" ]; then
		return 0
	fi
	mkdir -p "$CHROOTS"
	exec 8>"$CHROOTS/.$name.lock"
	flock -w 1800 8 || die "another run is making $name"
	if [ -f "$dir/.rdpdvc-recipe" ] && [ "$(cat "$dir/.rdpdvc-recipe")" = "$want" ]; then
		return 0
	fi
	safe_rm "$dir.new"
	local t0=$SECONDS
	command -v debootstrap >/dev/null || {
		log "installing debootstrap"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null ||
			{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; } ||
			die "could not install debootstrap"
	}
	log "debootstrap $SUITE into $dir"
	debootstrap --variant=minbase "$SUITE" "$dir.new" "$MIRROR" >"$CHROOTS/$name.debootstrap.log" 2>&1 ||
		die "debootstrap $SUITE failed (see $CHROOTS/$name.debootstrap.log)"
	{
		echo "deb $MIRROR $SUITE main"
		[ -z "$BACKPORTS" ] || echo "deb $MIRROR $BACKPORTS main"
	} >"$dir.new/etc/apt/sources.list"
	# No service may start inside the chroot (it would take the host's ports).
	printf '#!/bin/sh\nexit 101\n' >"$dir.new/usr/sbin/policy-rc.d"
	chmod 755 "$dir.new/usr/sbin/policy-rc.d"
	cp /etc/resolv.conf "$dir.new/etc/resolv.conf" 2>/dev/null || true
	local target=()
	[ -z "$BACKPORTS" ] || target=(-t "$BACKPORTS")
	log "installing ${PKGS[*]}${BACKPORTS:+ from $BACKPORTS}"
	if ! unshare --mount --propagation private "$0" _enter "$dir.new" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 sh -c \
		"apt-get update -q && apt-get install -y -q --no-install-recommends ${target[*]} ${PKGS[*]} ${COMMON[*]} && apt-get clean" \
		>"$CHROOTS/$name.apt.log" 2>&1; then
		die "installing packages in $name failed (see $CHROOTS/$name.apt.log)"
	fi
	echo "$want" >"$dir.new/.rdpdvc-recipe"
	# Swap in the new chroot, and remove the old one only when no process
	# still runs in it (a run in progress keeps its tree until it ends).
	if [ -e "$dir" ]; then
		safe_rm "$dir.old"
		mv "$dir" "$dir.old"
	fi
	mv "$dir.new" "$dir"
	if [ -e "$dir.old" ] && ! in_use "$dir.old"; then safe_rm "$dir.old"; fi
	log "made $name in $((SECONDS - t0)) s ($(du -sh "$dir" | cut -f1))"
}

# mount_all DIR: what xrdp, Xorg and FreeRDP need inside; /dev/shm must be
# a tmpfs (xorgxrdp crashes without shared memory).
mount_all() {
	local d=$1
	mount -t proc proc "$d/proc"
	mount --rbind /dev "$d/dev"
	mkdir -p "$d/dev/pts" "$d/dev/shm"
	mount -t devpts -o newinstance,ptmxmode=0666 devpts "$d/dev/pts"
	mount --bind "$d/dev/pts/ptmx" "$d/dev/ptmx"
	mount -t tmpfs -o mode=1777 shm "$d/dev/shm"
	mount -t tmpfs -o mode=755 run "$d/run"
	mount -t sysfs sysfs "$d/sys" 2>/dev/null || true
	mkdir -p "$d/tmp"
	chmod 1777 "$d/tmp"
	# debootstrap's bookworm minbase has no /etc/hosts (trixie's has), and
	# without it "localhost" resolves nowhere: e2e check (s) asks the
	# client to resolve it, as every installed system can.
	[ -e "$d/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$d/etc/hosts"
}

# in_use DIR: some process has its root or working folder below DIR.
in_use() {
	local r p
	r=$(realpath -m "$1")
	for p in /proc/[0-9]*; do
		case "$(readlink "$p/root" 2>/dev/null)/" in "$r"/*) return 0 ;; esac
	done
	return 1
}

# safe_rm DIR...: remove chroot folders, refusing while anything is still
# mounted below one (a bind of /dev would take the host's with it).
safe_rm() {
	local d r
	for d in "$@"; do
		[ -e "$d" ] || continue
		r=$(realpath -m "$d")
		if awk -v d="$r/" 'index($2 "/", d) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
			die "something is still mounted below $r; not removing it"
		fi
		rm -rf --one-file-system "$r"
	done
}

run_in() {
	local name=$1 dir=$CHROOTS/$1
	shift
	[ -f "$dir/.rdpdvc-recipe" ] || die "no chroot for $name (scripts/chroot.sh make $name)"
	(cd "$ROOT" && go mod download) || die "go mod download failed"
	# A private mount namespace: the mounts vanish with the command, and two
	# runs in one chroot cannot unmount each other's.
	RDPDVC_GOROOT=$(go env GOROOT) RDPDVC_MODCACHE=$(go env GOMODCACHE) \
		unshare --mount --propagation private "$0" _enter "$dir" env -i HOME=/root LC_ALL=C.UTF-8 TERM=dumb \
		PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		GOMODCACHE=/gomodcache GOPROXY=off GOFLAGS=-mod=mod GOCACHE=/root/.cache/go-build GOTOOLCHAIN=local \
		RDPDVC_STACK="$name" ${RDPDVC_PASS_ENV:-} "$@"
}

# enter DIR CMD...: (in the private namespace) mount, then chroot.
enter() {
	local d=$1
	shift
	mount_all "$d"
	if [ -n "${RDPDVC_GOROOT:-}" ]; then
		mkdir -p "$d/rdpdvc" "$d/usr/local/go" "$d/gomodcache"
		mount --bind "$ROOT" "$d/rdpdvc"
		mount --bind -o ro "$RDPDVC_GOROOT" "$d/usr/local/go"
		mount --bind -o ro "$RDPDVC_MODCACHE" "$d/gomodcache"
	fi
	exec chroot "$d" "$@"
}

case "${1:-}" in
make)
	[ $# = 2 ] || die "usage: scripts/chroot.sh make NAME"
	make_chroot "$2"
	;;
path)
	[ $# = 2 ] || die "usage: scripts/chroot.sh path NAME"
	stack "$2"
	echo "$CHROOTS/$2"
	;;
run)
	[ $# -ge 3 ] || die "usage: scripts/chroot.sh run NAME CMD..."
	name=$2
	shift 2
	run_in "$name" "$@"
	;;
_enter)
	shift
	enter "$@"
	;;
clean)
	for d in "$CHROOTS"/*/; do
		[ -d "$d" ] && safe_rm "$d"
	done
	rm -rf "$CHROOTS"
	log "removed $CHROOTS"
	;;
stacks) stacks ;;
*) die "usage: scripts/chroot.sh make|path|run|clean|stacks ..." ;;
esac
exit
}
