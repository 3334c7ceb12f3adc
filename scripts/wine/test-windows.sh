#!/usr/bin/env bash
# Runs rdpdvc's Windows tests (GOOS=windows go test) under Wine.
#
#   scripts/wine/test-windows.sh [go test flags...]    e.g. -race -count=1 -v
#
# Non-interactive and bounded: installs Wine 8.0 and the mingw compiler
# from Debian if they are missing (needs root), builds the two test DLLs,
# rdpdvc-plugin.dll and its C test host, creates a Wine prefix, runs the
# tests, and stops wineserver on exit.
# Environment: RDPDVC_WINEPREFIX (default /tmp/rdpdvc-wine) to reuse a
# prefix between runs; RDPDVC_WINE_PKGS and RDPDVC_WINE_CMDS to override
# which packages to test; RDPDVC_WINDOWS_BIN, a folder to keep the
# Windows builds of the two programs in.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
start=$SECONDS
log() { printf '%s [wine %3ds] %s\n' "$(date -u +%H:%M:%S)" $((SECONDS - start)) "$*" >&2; }

# 1. Tools. Debian bookworm's wine/wine64 are 8.0; gcc-mingw-w64-x86-64-win32
# builds the DLLs below and is the C compiler for -race on windows/amd64.
need=()
{ command -v wine && [[ -x /usr/lib/wine/wine64 ]]; } >/dev/null || need+=(wine wine64)
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64-win32)
if ((${#need[@]})); then
	if [[ $(id -u) != 0 ]]; then
		echo "test-windows.sh: needs ${need[*]}: run as root, or: sudo apt-get install ${need[*]}" >&2
		exit 1
	fi
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	timeout 600 apt-get update -qq -o DPkg::Lock::Timeout=600
	timeout 900 apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${need[@]}" >/dev/null
fi

# 2. The test DLLs (see the .c files for why each exists).
build=$(mktemp -d /tmp/rdpdvc-wine-build.XXXXXX)
export WINEPREFIX=${RDPDVC_WINEPREFIX:-/tmp/rdpdvc-wine}
export WINEARCH=win64 WINEDEBUG=-all
cleanup() {
	wineserver -k >/dev/null 2>&1 || true
	rm -rf "$build"
}
trap cleanup EXIT
cc=x86_64-w64-mingw32-gcc
$cc -shared -O2 -s -Wall -Werror -o "$build/bcryptprimitives.dll" "$here/dll/bcryptprimitives.c" -lbcrypt
if [[ -f $here/dll/wtsapi32.c ]]; then
	$cc -shared -O2 -s -Wall -Werror -o "$build/wtsapi32.dll" "$here/dll/wtsapi32.c"
fi

# 3. The prefix. wineserver and wineboot must not hold go test's stdout:
# a child that inherits it keeps go test waiting (a minute, then failure)
# after the test binary has exited. So both start detached, once, here.
log "prefix $WINEPREFIX"
# A server left over from an interrupted run would refuse -p.
wineserver -k >/dev/null 2>&1 || true
wineserver -w >/dev/null 2>&1 || true
# mscoree/mshtml= : do not offer to install Mono and Gecko (no one to click).
boot_overrides="mscoree,mshtml="
if [[ ! -f $WINEPREFIX/system.reg ]]; then
	# A new prefix goes on setting itself up after wineboot returns (COM
	# calls were seen to take 13 s each for a minute): let every Wine
	# process of the set-up finish, and the server exit, before testing.
	mkdir -p "$WINEPREFIX"
	WINEDLLOVERRIDES=$boot_overrides timeout 300 wineboot -i </dev/null >/dev/null 2>&1
	timeout 300 wineserver -w </dev/null >/dev/null 2>&1 || true
	log "new prefix set up"
fi
wineserver -p </dev/null >/dev/null 2>&1
WINEDLLOVERRIDES=$boot_overrides timeout 300 wineboot </dev/null >/dev/null 2>&1
sys32=$WINEPREFIX/drive_c/windows/system32
cp "$build"/*.dll "$sys32/"
log "prefix ready"

# 4. The tests. go test runs each windows/amd64 test binary through
# go_windows_amd64_exec (here) -> wine.
export PATH=$here:$PATH
cd "$root"
# -race on windows/amd64 needs cgo and a mingw C compiler.
for a in "$@"; do
	[[ $a == -race ]] && export CGO_ENABLED=1 CC=$cc
done
# The Windows builds of both programs (kept in $RDPDVC_WINDOWS_BIN if set);
# the client's exe is also what the out-of-process COM activation test
# registers and has COM start.
GOOS=windows GOARCH=amd64 go build -o "$build/" ./cmd/rdp-simple-plugin-client ./cmd/rdp-simple-plugin-server
# The in-process plugin DLL (the README's command) and the C host that
# plays mstsc's side of it (host/dvchost.c), for scripts/wine's
# TestPluginDLL*.
log "building rdpdvc-plugin.dll and dvchost.exe"
CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=$cc go build -buildmode=c-shared -o "$build/rdpdvc-plugin.dll" ./cmd/rdpdvc-plugin
rm -f "$build/rdpdvc-plugin.h"
$cc -O2 -Wall -Werror -o "$build/dvchost.exe" "$here/host/dvchost.c" -lole32
if [[ -n ${RDPDVC_WINDOWS_BIN:-} ]]; then
	mkdir -p "$RDPDVC_WINDOWS_BIN"
	cp "$build"/rdp-simple-plugin-*.exe "$build/rdpdvc-plugin.dll" "$RDPDVC_WINDOWS_BIN/"
fi
export RDPDVC_CLIENT_EXE=$build/rdp-simple-plugin-client.exe
export RDPDVC_PLUGIN_DLL=$build/rdpdvc-plugin.dll RDPDVC_DVCHOST=$build/dvchost.exe
# The test wtsapi32.dll replaces Wine's stub one (native first) for the
# processes go test starts; RDPDVC_WINE=1 tells tests the fakes are there.
export WINEDLLOVERRIDES="wtsapi32=n,b;mscoree,mshtml=" RDPDVC_WINE=1

pkgs=${RDPDVC_WINE_PKGS:-./scripts/wine/... ./backend/wts/... ./backend/com/...}
# In the programs, only the Windows-specific tests (TestWindows*): the
# others belong to the portable build and run on Linux.
cmds=${RDPDVC_WINE_CMDS-./cmd/rdp-simple-plugin-client ./cmd/rdp-simple-plugin-server}
rc=0
log "GOOS=windows go test $* $pkgs"
# shellcheck disable=SC2086
GOOS=windows GOARCH=amd64 timeout 600 go test "$@" $pkgs || rc=$?
if [[ -n $cmds ]]; then
	run=(-run '^TestWindows')
	for a in "$@"; do
		[[ $a == -run || $a == -run=* ]] && run=()
	done
	log "GOOS=windows go test $* ${run[*]} $cmds"
	# shellcheck disable=SC2086
	GOOS=windows GOARCH=amd64 timeout 600 go test "$@" "${run[@]}" $cmds || rc=$?
fi
log "done rc=$rc"
exit $rc
