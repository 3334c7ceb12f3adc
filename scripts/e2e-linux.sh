#!/usr/bin/env bash
# End-to-end test of rdpdvc in a real RDP session on Linux: xrdp as the
# server, FreeRDP (xfreerdp under Xvfb) as the client, all on 127.0.0.1,
# on each Linux RDP stack of the matrix:
#
#   stack               FreeRDP  xrdp     where
#   bookworm            2.11     0.9.21   the host (Debian 12), else a chroot
#   bookworm-backports  3.10     0.9.24   a debootstrap chroot (scripts/chroot.sh)
#   trixie              3.15     0.10.1   a debootstrap chroot
#   trixie-backports    3.33     0.10.6   a debootstrap chroot
#
#   sudo scripts/e2e-linux.sh [--stack NAME|all] [--clean]
#
# --stack picks one row (bookworm by default); all runs every row and
# prints a table of the results (.ci/run does). Chroots are cached under
# /var/cache/rdpdvc-e2e/chroot and made again only when their recipe
# changes; --clean removes them (alone, or before the run). No row other
# than a bookworm host's changes the host's packages.
#
# In each row it installs the packages (or finds them in the chroot),
# creates a test user, starts xrdp-sesman, xrdp, Xvfb and xfreerdp with
# our plugin, and runs as the session user:
#   (a) rdp-simple-plugin-server -xrdp pings FreeRDP's ECHO listener (/echo);
#   (b) it pings librdpdvc-client.so's Simple echo (/dvc:rdpdvc,simple); an
#       open with no listener fails with 0xC0000001 (FreeRDP up to 3.10) or
#       0xC0000225 (3.11 on); a burst of pings 200us
#       apart reaches the client one whole frame per message;
#   (c) rdpdvc pnp-server -xrdp finds the devices the plugin redirects
#       (/dvc:rdpdvc,pnp=...: a file, a read-only file, a memory device),
#       writes at an offset (also 100000 bytes, over xrdp's 32768-byte
#       message ceiling), reads back, and the bytes are in the client's
#       file; the read-only device refuses a write with 0x80070013;
#   (d) RTT of 5120-byte pings, rdpdvc against a raw xrdpapi baseline;
#   (e) rdpdvc echo -xrdp (MS-RDPEECO server role) against FreeRDP's /echo;
#   (f) xfreerdp stops and starts again on the same session: the Simple
#       server counts the gap's pings lost and goes on pinging, and (xrdp
#       0.10.5 on, which reports disconnects) pnp-server sees the devices
#       go and come back;
#   (g) rdpdvc echo -xrdp against the plugin's own echo feature (the new
#       xfreerdp of (f) runs without /echo);
#   (p) go test -tags freerdp|freerdp3 ./freerdp/plugin: the plugin's tests
#       against the row's FreeRDP headers;
#   (t) the traces (b) and (c) took with -trace, and the plugin with
#       trace=FILE, decode with rdpdvc decode -trace.
# It always stops everything it started and removes what it created.
# Exit status: 0 when every check of every row passed, 1 otherwise.
#
# Environment: E2E_USER (rdpdvc-e2e), E2E_COUNT (pings per side for the
# RTT comparison, 600) in E2E_ROUNDS (6) alternating runs,
# E2E_RTT_MAX_RATIO (1.2; reported, and enforced only with E2E_RTT_ENFORCE=1), E2E_KEEP=1 keeps the work dir, E2E_HOLD=N keeps the session up N seconds after the checks, for poking
# at it by hand (/tmp/rdpdvc-e2e.hold then names display, user, work dir
# and xfreerdp's pid; inside the row's chroot for chroot rows).
# The whole script is one { ... } block so that bash parses it before
# running any of it: editing the file during a run cannot change the run.
{
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACKS=(bookworm bookworm-backports trixie trixie-backports)
STACK=bookworm
INSIDE=0
CLEAN=0
while [ $# -gt 0 ]; do
	case "$1" in
	--stack) STACK=${2:?--stack needs a name}; shift 2 ;;
	--stack=*) STACK=${1#--stack=}; shift ;;
	--clean) CLEAN=1; shift ;;
	--inside) INSIDE=1; shift ;; # set by this script when it re-runs itself in a chroot
	-h | --help) sed -n '2,47p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "e2e: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
case " all ${STACKS[*]} " in
*" $STACK "*) ;;
*) echo "e2e: unknown stack '$STACK' (known: all ${STACKS[*]})" >&2; exit 2 ;;
esac

log() { printf 'e2e[%s]: %s\n' "$STACK" "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (it installs packages, makes chroots and starts xrdp)"

host_codename() { . /etc/os-release && echo "${VERSION_CODENAME:-}"; }

if [ "$INSIDE" = 0 ]; then
	if [ "$CLEAN" = 1 ]; then
		bash "$ROOT/scripts/chroot.sh" clean
		[ "$#" = 0 ] && [ "$STACK" = bookworm ] && [ "${E2E_CLEAN_ONLY:-1}" = 1 ] && exit 0
	fi
	# run_row NAME: one row, on the host or in its chroot.
	run_row() {
		local name=$1
		if [ "$name" = bookworm ] && [ "$(host_codename)" = bookworm ]; then
			bash "$ROOT/scripts/e2e-linux.sh" --stack bookworm --inside
			return
		fi
		bash "$ROOT/scripts/chroot.sh" make "$name" || return 1
		local pass=() v
		for v in $(compgen -v E2E_); do pass+=("$v=${!v}"); done
		RDPDVC_PASS_ENV="${pass[*]}" bash "$ROOT/scripts/chroot.sh" run "$name" \
			bash /rdpdvc/scripts/e2e-linux.sh --stack "$name" --inside
	}
	if [ "$STACK" != all ]; then
		run_row "$STACK"
		exit
	fi
	declare -A RESULT TIME
	rc=0
	for s in "${STACKS[@]}"; do
		t0=$SECONDS
		if run_row "$s"; then RESULT[$s]=PASS; else RESULT[$s]=FAIL rc=1; fi
		TIME[$s]=$((SECONDS - t0))
	done
	STACK=all
	log "matrix:"
	for s in "${STACKS[@]}"; do log "$(printf '  %-20s %s  (%d s)' "$s" "${RESULT[$s]}" "${TIME[$s]}")"; done
	exit "$rc"
fi

# From here on: one row, on this machine (the host, or inside the row's
# chroot).
E2E_USER=${E2E_USER:-rdpdvc-e2e}
COUNT=${E2E_COUNT:-600}
ROUNDS=${E2E_ROUNDS:-6}
MAX_RATIO=${E2E_RTT_MAX_RATIO:-1.2}
ENFORCE_RTT=${E2E_RTT_ENFORCE:-0}
# NO_LISTENER: the CreationStatus the client sends for a name nobody
# listens on: STATUS_UNSUCCESSFUL up to FreeRDP 3.10, STATUS_NOT_FOUND from
# 3.11 on.
NO_LISTENER=0xC0000225
case "$STACK" in
bookworm | bookworm-backports) NO_LISTENER=0xC0000001 ;;
esac
case "$STACK" in
bookworm)
	FREERDP=2 XFREERDP=xfreerdp BUILD_TAG=freerdp
	PACKAGES=(xrdp xorgxrdp xvfb freerdp2-x11 freerdp2-dev libwinpr2-dev) ;;
*)
	FREERDP=3 XFREERDP=xfreerdp3 BUILD_TAG=freerdp3
	# freerdp3.pc (3.10, 3.15) names zlib and libssl, which freerdp3-dev does
	# not depend on: without them pkg-config fails.
	PACKAGES=(xrdp xorgxrdp xvfb freerdp3-x11 freerdp3-dev libwinpr3-dev zlib1g-dev libssl-dev) ;;
esac
# xauth: xrdp 0.10's sesman runs it to start the session's X server.
PACKAGES+=(xauth pkg-config gcc libc6-dev iproute2 procps util-linux passwd curl python3)
command -v go >/dev/null || die "go is not on PATH"

# One run at a time on a machine: a second one waits (sesman's port, the
# test user and the plugin file are shared).
exec 9>/run/rdpdvc-e2e.lock
if ! flock -n 9; then
	log "another e2e-linux run is in progress; waiting for it (up to 20 min)"
	flock -w 1200 9 || die "the other run did not finish"
fi
if id "$E2E_USER" >/dev/null 2>&1 && pgrep -u "$E2E_USER" >/dev/null; then
	die "user $E2E_USER still has processes from a run that was killed without cleanup: $(pgrep -u "$E2E_USER" | tr '\n' ' ')(stop them, then: userdel -r $E2E_USER)"
fi

WORK=$(mktemp -d /tmp/rdpdvc-e2e.XXXXXX)
chmod 755 "$WORK"
GROUPS_STARTED=()   # process groups we started (setsid), killed at exit
CREATED_USER=""
PLUGIN_DEST=""
PLUGIN_BACKUP=""
CREATED_ADDIN_DIR=""
CREATED_POLICY_RC=""
STOPPED_SERVICES=()
SESSION_DISPLAY=""
SOCKET_DIR=""
FAILED=0

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.2 s.
wait_for() {
	local secs=$1 what=$2
	shift 2
	local end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || {
			log "timed out after ${secs}s waiting for $what"
			return 1
		}
		sleep 0.2
	done
}

# start NAME COMMAND...: run COMMAND in its own session and process group,
# output in $WORK/NAME.log; remembers the group for cleanup.
start() {
	local name=$1
	shift
	setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null 9>&- &
	local pid=$!
	GROUPS_STARTED+=("$pid")
	eval "PID_${name//-/_}=$pid"
	log "started $name (pid $pid): $*"
}

# Each started command leads its own session (setsid), and everything it
# starts stays in that session even in process groups of its own (xrdp
# 0.10's sesexec puts the session's Xorg and chansrv in one): stop by session.
group_alive() { pgrep -s "$1" >/dev/null 2>&1; }

stop_group() {
	local g=$1
	group_alive "$g" || return 0
	pkill -TERM -s "$g" 2>/dev/null || true
	local end=$((SECONDS + 10))
	while group_alive "$g" && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
	if group_alive "$g"; then
		log "session $g ignored SIGTERM; killing"
		pkill -KILL -s "$g" 2>/dev/null || true
		sleep 0.5
	fi
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	[ "$FAILED" = 0 ] || rc=1
	# Reverse start order: the client first, then xrdp, sesman (and the
	# session it spawned, which shares sesman's group), then Xvfb.
	local i
	for ((i = ${#GROUPS_STARTED[@]} - 1; i >= 0; i--)); do
		stop_group "${GROUPS_STARTED[$i]}"
	done
	if [ -n "$SESSION_DISPLAY" ]; then
		# Sockets and X locks a killed session may leave behind.
		rm -f "$SOCKET_DIR"/xrdp*_"$SESSION_DISPLAY" "$SOCKET_DIR"/xrdpapi_"$SESSION_DISPLAY" \
			"$SOCKET_DIR"/xrdp_chansrv_*_"$SESSION_DISPLAY"
		if ! pgrep -f "Xorg :$SESSION_DISPLAY " >/dev/null; then
			rm -f "/tmp/.X$SESSION_DISPLAY-lock" "/tmp/.X11-unix/X$SESSION_DISPLAY"
		fi
	fi
	if [ -n "$PLUGIN_DEST" ]; then
		if [ -n "$PLUGIN_BACKUP" ]; then mv -f "$PLUGIN_BACKUP" "$PLUGIN_DEST"; else rm -f "$PLUGIN_DEST"; fi
	fi
	[ -z "$CREATED_ADDIN_DIR" ] || rmdir "$CREATED_ADDIN_DIR" 2>/dev/null
	[ -z "$CREATED_POLICY_RC" ] || rm -f "$CREATED_POLICY_RC"
	for svc in "${STOPPED_SERVICES[@]}"; do
		log "restarting $svc, stopped for the test"
		timeout 60 systemctl start "$svc" || log "could not restart $svc"
	done
	if [ -n "$CREATED_USER" ]; then
		pgrep -u "$CREATED_USER" >/dev/null && log "processes of $CREATED_USER still running: $(pgrep -u "$CREATED_USER" | tr '\n' ' ')"
		userdel -r "$CREATED_USER" >/dev/null 2>&1 || userdel "$CREATED_USER" >/dev/null 2>&1
	fi
	if [ "$rc" != 0 ]; then
		for f in "$WORK"/*.log; do
			[ -s "$f" ] || continue
			echo "----- ${f##*/} (last 40 lines)" >&2
			tail -n 40 "$f" >&2
		done
	fi
	if [ "${E2E_KEEP:-0}" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
	if [ "$rc" = 0 ]; then log "PASS"; else log "FAILED"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---------------------------------------------------------------- packages
missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Keep the packages from starting xrdp's system services (on a machine
	# with systemd they would take the ports this script uses).
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		CREATED_POLICY_RC=/usr/sbin/policy-rc.d
	fi
	apt_install() {
		timeout 1200 apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1
	}
	if ! apt_install; then
		timeout 600 apt-get -o DPkg::Lock::Timeout=600 update -q >>"$WORK/apt.log" 2>&1 || true
		apt_install || die "apt-get install failed (see apt.log)"
	fi
	[ -z "$CREATED_POLICY_RC" ] || rm -f "$CREATED_POLICY_RC"
	CREATED_POLICY_RC=""
fi

# ------------------------------------------------------------------- build
BIN=$WORK/bin
mkdir -p "$BIN"
log "building"
(
	cd "$ROOT"
	go build -o "$BIN/rdp-simple-plugin-server" ./cmd/rdp-simple-plugin-server
	go build -o "$BIN/rdpdvc" ./cmd/rdpdvc
	go build -o "$BIN/xrdpapi-echo-baseline" ./cmd/xrdpapi-echo-baseline
	# Plain go vet skips the plugin (build tag); vet it here, where the
	# FreeRDP headers are installed.
	CGO_ENABLED=1 go vet -tags "$BUILD_TAG" ./freerdp/plugin
	CGO_ENABLED=1 go build -tags "$BUILD_TAG" -buildmode=c-shared -o "$BIN/librdpdvc-client.so" ./freerdp/plugin
) >"$WORK/build.log" 2>&1 || die "build failed (see build.log)"
chmod -R a+rX "$BIN"

MULTIARCH=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH)
ADDIN_DIR=/usr/lib/$MULTIARCH/freerdp$FREERDP
if [ ! -d "$ADDIN_DIR" ]; then
	mkdir -p "$ADDIN_DIR"
	CREATED_ADDIN_DIR=$ADDIN_DIR
fi
PLUGIN_DEST=$ADDIN_DIR/librdpdvc-client.so
if [ -e "$PLUGIN_DEST" ]; then
	PLUGIN_BACKUP=$WORK/librdpdvc-client.so.orig
	cp -a "$PLUGIN_DEST" "$PLUGIN_BACKUP"
fi
install -m 644 "$BIN/librdpdvc-client.so" "$PLUGIN_DEST"

# -------------------------------------------------------------------- user
if ! id "$E2E_USER" >/dev/null 2>&1; then
	# A uid no process has: the kernel's uids are shared with the host and
	# with other chroots, whose users may have the same number.
	uid=""
	for u in $(seq 31000 31999); do
		if ! getent passwd "$u" >/dev/null && ! pgrep -U "$u" >/dev/null; then
			uid=$u
			break
		fi
	done
	[ -n "$uid" ] || die "no free uid in 31000-31999"
	useradd -m -u "$uid" -s /bin/sh "$E2E_USER"
	CREATED_USER=$E2E_USER
fi
PASSWORD="e2e-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$E2E_USER:$PASSWORD" | chpasswd
HOME_DIR=$(getent passwd "$E2E_USER" | cut -d: -f6)
# The session holds as long as startwm.sh runs; no desktop is needed.
printf '#!/bin/sh\nexec sleep infinity\n' >"$HOME_DIR/startwm.sh"
chmod 755 "$HOME_DIR/startwm.sh"
chown "$E2E_USER:" "$HOME_DIR/startwm.sh"

# ------------------------------------------------------------ xrdp config
# A port is free when no TCP socket has it as its local port, listening or
# connected: a connection another program made from an ephemeral port
# (32768 and up) holds that port too, and a listener's bind on it then
# fails. TIME-WAIT sockets (a previous run's sesman) do not stop a bind
# with SO_REUSEADDR, which every listener here sets.
port_free() { [ -z "$(ss -Htan exclude time-wait "sport = :$1" 2>/dev/null)" ]; }
XRDP_PORT=""
for p in $(seq 33890 33990); do
	if port_free "$p"; then
		XRDP_PORT=$p
		break
	fi
done
[ -n "$XRDP_PORT" ] || die "no free port in 33890-33990"
# xrdp finds sesman through /etc/xrdp/sesman.ini whatever -c says, so
# sesman keeps the packaged port; it must be free. xrdp 0.10's default is a
# UNIX socket (ListenPort commented out, sesman.socket), which cannot clash.
SESMAN_PORT=$(sed -n 's/^ListenPort=\([0-9]*\)$/\1/p' /etc/xrdp/sesman.ini | head -n1)
if [ -z "$SESMAN_PORT" ] && ! grep -q '^ListenPort=' /etc/xrdp/sesman.ini && xrdp-sesman --version 2>&1 | grep -q 'xrdp-sesman 0\.9'; then
	SESMAN_PORT=3350
fi
# A system xrdp (systemd) holds the packaged ports: stop it for the test
# and start it again at exit.
if [ -d /run/systemd/system ]; then
	for svc in xrdp xrdp-sesman; do
		if systemctl is-active --quiet "$svc" 2>/dev/null; then
			log "stopping $svc for the test"
			timeout 60 systemctl stop "$svc" && STOPPED_SERVICES+=("$svc")
		fi
	done
fi
[ -z "$SESMAN_PORT" ] || port_free "$SESMAN_PORT" || die "port $SESMAN_PORT (sesman) is in use: stop the system's xrdp-sesman first"
for pidfile in /run/xrdp/xrdp-sesman.pid /run/xrdp/xrdp.pid /var/run/xrdp/xrdp-sesman.pid /var/run/xrdp/xrdp.pid; do
	[ -e "$pidfile" ] || continue
	if kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		die "$pidfile names a running process: another xrdp is running"
	fi
	rm -f "$pidfile" # stale, from a run that was killed
done
mkdir -p /run/xrdp

cp /etc/xrdp/xrdp.ini "$WORK/xrdp.ini"
cp /etc/xrdp/sesman.ini "$WORK/sesman.ini"
# Globals port line (the first port= in the file) to loopback only; logs
# into the work dir.
sed -i "0,/^port=.*/s||port=tcp://127.0.0.1:$XRDP_PORT|" "$WORK/xrdp.ini"
sed -i "s|^LogFile=.*|LogFile=$WORK/xrdp-file.log|; s|^EnableSyslog=.*|EnableSyslog=false|" "$WORK/xrdp.ini"
sed -i "s|^ListenAddress=.*|ListenAddress=127.0.0.1|; s|^LogFile=.*|LogFile=$WORK/sesman-file.log|; s|^EnableSyslog=.*|EnableSyslog=false|" "$WORK/sesman.ini"
# The session's X display: sesman picks the first free one from
# X11DisplayOffset by looking at /tmp/.X*-lock, which a chroot has its own
# of, while X's abstract sockets are shared by every chroot on the host. Start
# from one that nothing listens on.
x_display_free() {
	[ ! -e "/tmp/.X$1-lock" ] && [ ! -e "/tmp/.X11-unix/X$1" ] &&
		! ss -Hxl 2>/dev/null | grep -q "@/tmp/.X11-unix/X$1 "
}
X_OFFSET=""
for d in $(seq 10 5 95); do
	if x_display_free "$d" && x_display_free $((d + 1)) && x_display_free $((d + 2)); then
		X_OFFSET=$d
		break
	fi
done
[ -n "$X_OFFSET" ] || die "no free X display for the session in :10-:97"
sed -i "s|^X11DisplayOffset=.*|X11DisplayOffset=$X_OFFSET|" "$WORK/sesman.ini"
grep -q "^port=tcp://127.0.0.1:$XRDP_PORT" "$WORK/xrdp.ini" || die "could not set the port in xrdp.ini"

# ----------------------------------------------------------------- servers
# xrdp 0.10 runs as user xrdp (runtime_user) and must read the TLS key;
# Debian's 0.10.6.1 does not put it in group ssl-cert, and without the key
# xrdp falls back to RDP's own security, which FreeRDP 3.33 fails with
# "MAC checksum error". Only inside a row's chroot: the host's user stays.
if [ -n "${RDPDVC_STACK:-}" ] && id xrdp >/dev/null 2>&1 && getent group ssl-cert >/dev/null &&
	! id -nG xrdp | tr ' ' '\n' | grep -qx ssl-cert; then
	usermod -a -G ssl-cert xrdp
	log "added user xrdp to group ssl-cert (xrdp must read its TLS key)"
fi
log "$(xrdp --version 2>&1 | head -n1), $(dpkg-query -W -f='xorgxrdp ${Version}, ' xorgxrdp 2>/dev/null)$(dpkg-query -W -f='FreeRDP (freerdp'$FREERDP'-x11) ${Version}' freerdp$FREERDP-x11 2>/dev/null)"
start sesman xrdp-sesman --nodaemon -c "$WORK/sesman.ini"
listening() { ss -Hlpn 2>/dev/null | grep -q "pid=$1,"; }
wait_for 15 "xrdp-sesman listening" listening "$PID_sesman" || die "xrdp-sesman did not start"
start xrdp xrdp --nodaemon -c "$WORK/xrdp.ini"
wait_for 15 "xrdp on 127.0.0.1:$XRDP_PORT" bash -c "! [ -z \"\$(ss -Htln 'sport = :$XRDP_PORT')\" ]" || die "xrdp did not start"

XVFB_DISPLAY=""
for d in $(seq 99 150); do
	if x_display_free "$d"; then
		XVFB_DISPLAY=$d
		break
	fi
done
[ -n "$XVFB_DISPLAY" ] || die "no free X display in :99-:150"
start xvfb Xvfb ":$XVFB_DISPLAY" -screen 0 1280x800x24 -nolisten tcp
wait_for 15 "Xvfb :$XVFB_DISPLAY" test -S "/tmp/.X11-unix/X$XVFB_DISPLAY" || die "Xvfb did not start"

# ------------------------------------------------------- (c)'s devices
# Client-side files for the plugin's PNP devices. xfreerdp runs as root and
# opens them; the session user only reads big.bin (the data it writes).
PNP=$WORK/pnp
mkdir -p "$PNP"
head -c 131072 /dev/zero | tr '\0' 'A' >"$PNP/rw.img"
printf 'read-only bytes' >"$PNP/ro.img"
cp "$PNP/ro.img" "$PNP/ro.orig"
head -c 100000 /dev/urandom >"$PNP/big.bin"
chmod 755 "$PNP"
chmod 644 "$PNP"/*
# (h)'s and (s)'s client-side peers, started before xfreerdp since a
# bridged channel connects once, as it opens: bridge/testdata/echo.py
# echoes each message on the bridge's socket, and an HTTP server on
# loopback is what the tunnel's SOCKS proxy in the session fetches from.
mkdir -p "$WORK/bridge" "$WORK/www"
BRIDGE_SOCK=$WORK/bridge/out.sock
start bridge-echo python3 "$ROOT/bridge/testdata/echo.py" "$BRIDGE_SOCK"
head -c 5000000 /dev/urandom >"$WORK/www/big.bin"
HTTP_PORT="" REFUSED_PORT=""
for p in $(seq 28080 28180); do # below the ephemeral ports (see port_free)
	port_free "$p" || continue
	if [ -z "$HTTP_PORT" ]; then HTTP_PORT=$p; elif [ -z "$REFUSED_PORT" ]; then REFUSED_PORT=$p; else break; fi
done
[ -n "$REFUSED_PORT" ] || die "no two free ports in 28080-28180"
start http python3 -m http.server --bind 127.0.0.1 --directory "$WORK/www" "$HTTP_PORT"
tcp_listening() { ! [ -z "$(ss -Htln "sport = :$1")" ]; }
wait_for 20 "the HTTP server on 127.0.0.1:$HTTP_PORT" tcp_listening "$HTTP_PORT" || die "the HTTP server did not start: $(tail -n 3 "$WORK/http.log")"
# The tunnel allows only the HTTP server's port on loopback, by address:
# check (s) asks for "localhost", which the client resolves and checks.
BRIDGE_ARGS="bridge=rdpdvc::e2e::bridge=message:unix:$BRIDGE_SOCK"
TUNNEL_ARGS="tunnel=allow:127.0.0.0/8:$HTTP_PORT"

# No commas inside a /dvc argument: options follow colons (docs/linux.md).
PNP_ARGS="pnp=file:$PNP/rw.img:hwid=RDPDVC"'\E2E-RW'",pnp=file:$PNP/ro.img:ro:hwid=RDPDVC"'\E2E-RO'",pnp=mem:1MiB:hwid=RDPDVC"'\E2E-MEM'

# ------------------------------------------------------------------ client
# Every xrdpapi socket there is: 0.9 puts them in /run/xrdp/sockdir, Debian's
# 0.10 in /run/xrdp/sockdir/<uid>, upstream's 0.10 in /run/xrdp/<uid>.
xrdpapi_sockets() { find /run/xrdp /var/run/xrdp -maxdepth 3 -type s -name 'xrdpapi_*' 2>/dev/null | sort -u; }
before=$(xrdpapi_sockets)
# trace=: the plugin records every channel message (check (t)).
start xfreerdp env DISPLAY=":$XVFB_DISPLAY" RDPDVC_LOG=info $XFREERDP /v:"127.0.0.1:$XRDP_PORT" \
	/u:"$E2E_USER" /p:"$PASSWORD" /cert:ignore /size:1024x768 /echo /dvc:rdpdvc,simple,"$PNP_ARGS","$BRIDGE_ARGS","$TUNNEL_ARGS",trace="$WORK/plugin-trace.jsonl"

new_session_socket() {
	local s
	for s in $(xrdpapi_sockets); do
		grep -qxF "$s" <<<"$before" && continue
		[ "$(stat -c %U "$s")" = "$E2E_USER" ] || continue
		echo "$s"
		return 0
	done
	return 1
}
session_up() {
	kill -0 "$PID_xfreerdp" 2>/dev/null || return 2
	new_session_socket >/dev/null
}
end=$((SECONDS + 60))
until session_up; do
	kill -0 "$PID_xfreerdp" 2>/dev/null || die "xfreerdp exited before the session came up"
	[ "$SECONDS" -lt "$end" ] || die "no xrdpapi socket for $E2E_USER after 60s"
	sleep 0.3
done
SESSION_SOCKET=$(new_session_socket)
SESSION_DISPLAY=${SESSION_SOCKET##*/xrdpapi_}
SOCKET_DIR=${SESSION_SOCKET%/*}
log "session is on display :$SESSION_DISPLAY (socket $SESSION_SOCKET)"

# Where the session user's programs write their traces.
TRACE_DIR=$WORK/traces
mkdir -p "$TRACE_DIR"
chown "$E2E_USER:" "$TRACE_DIR"

# as_user CMD...: run in the session's environment, as the session user.
as_user() {
	${AS_USER_EXEC:-} timeout 120 runuser -u "$E2E_USER" 9>&- -- env -i HOME="$HOME_DIR" PATH=/usr/bin:/bin \
		DISPLAY=":$SESSION_DISPLAY" XRDP_SOCKET_PATH="$SOCKET_DIR" XRDP_SESSION=1 "$@"
}
# as_user_session, only ever run in the background (&), is as_user in a
# session of its own: the background subshell execs setsid, which (not a
# group leader) makes itself the session leader in place, so the pid $!
# gives is the session's id. signal_session SIG PID then reaches the
# program itself, not only the timeout and runuser wrappers, and nothing
# else.
as_user_session() { AS_USER_EXEC="exec setsid" as_user "$@"; }
signal_session() { pkill "-$1" -s "$2" 2>/dev/null || true; }

check() {
	local name=$1 t0
	shift
	t0=$(date +%s%N)
	if "$@"; then
		log "ok   $name ($((($(date +%s%N) - t0) / 1000000)) ms)"
	else
		log "FAIL $name"
		FAILED=1
	fi
}

# The client's DRDYNVC may still be starting when chansrv's socket
# appears: retry the first open for a while.
end=$((SECONDS + 45))
# server CHANNEL COUNT [flags]: rdp-simple-plugin-server in xrdp mode.
server() {
	local ch=$1 n=$2
	shift 2
	as_user "$BIN/rdp-simple-plugin-server" -xrdp -channel "$ch" -count "$n" -interval 10ms "$@"
}
# all_back LOG N: the server's summary says N sent and N came back intact.
all_back() { grep -q "^$2 sent, $2 received, 0 lost, 0 mismatched, 0.0% loss" "$1"; }

until server ECHO 1 >"$WORK/warmup.log" 2>&1; do
	[ "$SECONDS" -lt "$end" ] || die "no channel could be opened within 45s (see warmup.log)"
	sleep 1
done

check_a() { server ECHO 20 >"$WORK/check-a.log" 2>&1 && all_back "$WORK/check-a.log" 20; }
check_b() { server dvc::sample::simpleplugin 20 -trace "$TRACE_DIR/server-trace.jsonl" >"$WORK/check-b.log" 2>&1 && all_back "$WORK/check-b.log" 20; }
check_b_refused() {
	! server rdpdvc::no-such-listener 1 >"$WORK/check-b-refused.log" 2>&1 &&
		grep -qi "$NO_LISTENER" "$WORK/check-b-refused.log"
}
# Pings 200us apart leave several in flight: without backend/xrdp's wait
# for chansrv to read each message, chansrv glues them into 32768-byte DVC
# messages (seen with a raw writer). The plugin logs each message it
# echoes; every one must be a single 5140-byte frame.
check_b_burst() {
	local from
	from=$(($(wc -l <"$WORK/xfreerdp.log") + 1))
	server dvc::sample::simpleplugin 200 -interval 200us -q >"$WORK/check-b-burst.log" 2>&1 &&
		all_back "$WORK/check-b-burst.log" 200 || return 1
	sleep 0.5
	tail -n "+$from" "$WORK/xfreerdp.log" | grep 'msg=echo' >"$WORK/check-b-burst-client.log" || true
	local total whole
	total=$(wc -l <"$WORK/check-b-burst-client.log")
	whole=$(grep -c ' size=5140$' "$WORK/check-b-burst-client.log" || true)
	log "     burst: the client received $total messages, $whole of them one whole 5140-byte frame"
	[ "$total" -ge 200 ] && [ "$total" = "$whole" ]
}
# The MS-RDPEECO server role as a probe of the client (issue 3, item 3).
check_echo() { as_user "$BIN/rdpdvc" echo -xrdp -count 10 -interval 10ms >"$WORK/check-echo.log" 2>&1 && all_back "$WORK/check-echo.log" 10; }
# The plugin's tests, which plain go test skips: the shared object links
# neither libfreerdp nor libwinpr, and a stand-in for drdynvc compiled
# from this row's FreeRDP headers drives Simple and ECHO through it and
# sees it refuse the other major and an unknown feature.
check_plugin_tests() { (cd "$ROOT" && CGO_ENABLED=1 go test -count=1 -tags "$BUILD_TAG" ./freerdp/plugin) >"$WORK/plugin-test.log" 2>&1; }
check "(p) go test -tags $BUILD_TAG ./freerdp/plugin against FreeRDP $FREERDP's headers" check_plugin_tests
check "(a) rdp-simple-plugin-server -xrdp pings FreeRDP's ECHO listener" check_a
check "(b) rdp-simple-plugin-server -xrdp pings librdpdvc-client.so's Simple echo" check_b
check "(b) an open with no client listener fails with $NO_LISTENER" check_b_refused
check "(b) a burst of pings reaches the client one whole message each" check_b_burst
check "(e) rdpdvc echo -xrdp: MS-RDPEECO round trips with FreeRDP's /echo" check_echo

# (c) MS-RDPEPNP through the real stack: pnp-server in the session, the
# plugin's PNP client in xfreerdp. The script's waits and I/O are bounded
# (wait-device 30s, as_user's 120s); pnp-server exits non-zero if any
# command did not do what was expected (! marks one that must fail).
hexof() { od -An -v -tx1 "$@" | tr -d ' \n'; }
# read_data LINE: the hex data of the read result on script line LINE.
# (Keys come sorted: encoding/json orders a map's keys.)
read_data() { grep "\"line\":$1," "$WORK/check-c.out" | grep '"op":"read"' | sed -n 's/.*"data":"\([0-9a-f]*\)".*/\1/p'; }
check_c() {
	cat >"$PNP/script.txt" <<SCRIPT
wait-device hwid:RDPDVC\E2E-RW
wait-device hwid:RDPDVC\E2E-RO
wait-device hwid:RDPDVC\E2E-MEM
open rw hwid:RDPDVC\E2E-RW
write rw 10 text:hello, PNP
read rw 10 10
write rw 4096 @$PNP/big.bin
read rw 4096 100000
open ro hwid:RDPDVC\E2E-RO
! write ro 0 text:overwrite
read ro 0 15
open mem hwid:RDPDVC\E2E-MEM
write mem 1000 @$PNP/big.bin
read mem 1000 100000
close rw
close ro
close mem
SCRIPT
	as_user "$BIN/rdpdvc" pnp-server -xrdp -trace "$TRACE_DIR/pnp-trace.jsonl" -script - <"$PNP/script.txt" >"$WORK/check-c.out" 2>"$WORK/check-c.log" || {
		log "     pnp-server failed:"
		sed 's/"data":"\([0-9a-f]\{64\}\)[0-9a-f]*"/"data":"\1..."/' "$WORK/check-c.out" "$WORK/check-c.log" | sed "s/^/e2e[$STACK]:   /" >&2
		return 1
	}
	local ok=0 big
	big=$(hexof "$PNP/big.bin")
	[ "$(read_data 6)" = "$(printf 'hello, PNP' | hexof)" ] || { log "     read back at offset 10 is not 'hello, PNP'"; ok=1; }
	[ "$(read_data 8)" = "$big" ] || { log "     the 100000 bytes read back from the file device differ"; ok=1; }
	[ "$(read_data 14)" = "$big" ] || { log "     the 100000 bytes read back from the memory device differ"; ok=1; }
	grep '"line":10,' "$WORK/check-c.out" | grep '"expectFail":true' | grep -q '"hresult":"0x80070013"' ||
		{ log "     the read-only device did not refuse the write with ERROR_WRITE_PROTECT (0x80070013)"; ok=1; }
	[ "$(head -c 20 "$PNP/rw.img" | tail -c 10)" = "hello, PNP" ] || { log "     the client's file does not hold 'hello, PNP' at offset 10"; ok=1; }
	cmp -s <(tail -c +4097 "$PNP/rw.img" | head -c 100000) "$PNP/big.bin" || { log "     the client's file does not hold the 100000 bytes at offset 4096"; ok=1; }
	[ "$(stat -c %s "$PNP/rw.img")" = 131072 ] || { log "     the client's file changed size"; ok=1; }
	cmp -s "$PNP/ro.img" "$PNP/ro.orig" || { log "     the read-only file changed"; ok=1; }
	[ "$ok" = 0 ] && log "     wrote 10 and 100000 bytes at offsets, read them back, found them in the client's file; the read-only device refused"
	return "$ok"
}
check "(c) rdpdvc pnp-server -xrdp writes and reads back a device redirected by librdpdvc-client.so" check_c

# (t) Traces taken on both sides of the real stack decode: the Simple
# server's (-trace, over backend/xrdp) and pnp-server's, and the plugin's
# (trace=, inside xfreerdp), each with its messages decoded by protocol.
decodes() { # FILE CHANNEL MIN PATTERN: rdpdvc decode -trace FILE -channel CHANNEL prints >= MIN lines matching PATTERN
	"$BIN/rdpdvc" decode -trace "$1" -channel "$2" >"$1.decoded" 2>&1 || { log "     rdpdvc decode -trace $1 failed: $(tail -n 3 "$1.decoded")"; return 1; }
	local n
	n=$(grep -c -- "$4" "$1.decoded" || true)
	[ "$n" -ge "$3" ] || { log "     $1, channel $2: $n lines matching '$4', want >= $3"; return 1; }
}
check_t() {
	local ok=0
	decodes "$TRACE_DIR/server-trace.jsonl" dvc::sample::simpleplugin 20 'server→client dvc::sample::simpleplugin#[0-9]* data 5140 {"frames"' || ok=1
	decodes "$TRACE_DIR/server-trace.jsonl" dvc::sample::simpleplugin 20 'client→server dvc::sample::simpleplugin#[0-9]* data 5140 {"frames"' || ok=1
	decodes "$TRACE_DIR/pnp-trace.jsonl" FileRedirectorChannel 3 '"message":"Read Reply Message' || ok=1
	decodes "$WORK/plugin-trace.jsonl" dvc::sample::simpleplugin 20 'client→server dvc::sample::simpleplugin#[0-9]* data 5140 {"frames"' || ok=1
	decodes "$WORK/plugin-trace.jsonl" PNPDR 2 'PNPDR#[0-9]* data' || ok=1
	[ "$ok" = 0 ] && log "     $(wc -l <"$TRACE_DIR/server-trace.jsonl") + $(wc -l <"$TRACE_DIR/pnp-trace.jsonl") server records and $(wc -l <"$WORK/plugin-trace.jsonl") plugin records decoded"
	return "$ok"
}
check "(t) traces from rdp-simple-plugin-server, pnp-server and the plugin decode with rdpdvc decode -trace" check_t

# wait_event FILE EVENT SECS: a program's stdout (JSON lines) says it is ready.
wait_event() { wait_for "$3" "\"event\":\"$2\" in $1" grep -q "\"event\":\"$2\"" "$1"; }

# (h) A bridge with a Python program on each end: rdpdvc bridge -xrdp in the
# session makes channel rdpdvc::e2e::bridge a local socket; the plugin's
# bridge feature joins each instance to echo.py's socket on the client.
# Message framing: each message comes back whole, sizes up to 200,000
# bytes (chansrv splits anything over 32,768).
check_h() {
	local out=$TRACE_DIR/bridge.out sock=$TRACE_DIR/in.sock ok=0
	as_user_session "$BIN/rdpdvc" bridge -xrdp -channel rdpdvc::e2e::bridge -socket "unix:$sock" -framing message >"$out" 2>"$WORK/check-h.log" &
	local pid=$!
	if wait_event "$out" socket 20; then
		local got
		got=$(as_user python3 "$ROOT/bridge/testdata/client.py" "$sock" "hello through xrdp" 2>&1) || true
		[ "$got" = "hello through xrdp" ] || { log "     bridge/testdata/client.py printed '$got'"; ok=1; }
		# Several messages on one connection, each checked whole.
		as_user python3 - "$sock" <<-'PY' >"$WORK/check-h.py.log" 2>&1 || { log "     $(tail -n 2 "$WORK/check-h.py.log")"; ok=1; }
			import os, socket, struct, sys
			s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(30)
			def recv(n):
			    b = b""
			    while len(b) < n:
			        c = s.recv(n - len(b))
			        if not c: sys.exit("bridge closed after %d of %d bytes" % (len(b), n))
			        b += c
			    return b
			for size in (0, 1, 1000, 32768, 40000, 200000):
			    m = os.urandom(size)
			    s.sendall(struct.pack("<I", size) + m)
			    n = struct.unpack("<I", recv(4))[0]
			    if n != size or recv(n) != m: sys.exit("message of %d bytes came back as %d bytes, or changed" % (size, n))
			print("6 messages echoed whole")
		PY
	else
		ok=1
	fi
	signal_session INT "$pid"
	wait "$pid" 2>/dev/null
	[ "$ok" = 0 ] && log "     client.py's message and $(cat "$WORK/check-h.py.log") (0 to 200000 bytes) through echo.py on the client"
	return "$ok"
}
check "(h) rdpdvc bridge -xrdp: Python programs on each end, joined by the plugin's bridge feature" check_h

# (s) TCP through the RDP connection: rdpdvc tunnel -xrdp runs a SOCKS5
# proxy in the session; curl --socks5-hostname fetches a file from the
# HTTP server on the client side, byte for byte, by a name the client
# resolves; a port no rule allows is refused (SOCKS reply 2), logged by
# the plugin, and the tunnel goes on.
check_s() {
	local out=$TRACE_DIR/tunnel.out ok=0 socks=""
	for p in $(seq 31080 31180); do port_free "$p" && { socks=$p; break; }; done
	as_user_session "$BIN/rdpdvc" tunnel -xrdp -socks "127.0.0.1:$socks" >"$out" 2>"$WORK/check-s.log" &
	local pid=$!
	if wait_for 20 "the SOCKS proxy on 127.0.0.1:$socks" tcp_listening "$socks"; then
		as_user curl -sS --max-time 60 --socks5-hostname "127.0.0.1:$socks" "http://localhost:$HTTP_PORT/big.bin" -o "$TRACE_DIR/got.bin" 2>"$WORK/check-s.curl.log" || { log "     curl: $(cat "$WORK/check-s.curl.log")"; ok=1; }
		cmp -s "$TRACE_DIR/got.bin" "$WORK/www/big.bin" || { log "     the file fetched through the tunnel differs from the client's"; ok=1; }
		if as_user curl -sS --max-time 30 --socks5-hostname "127.0.0.1:$socks" "http://localhost:$REFUSED_PORT/" -o /dev/null 2>"$WORK/check-s.refused.log"; then
			log "     a port no rule allows was reached"; ok=1
		fi
		grep -q "tunnel: connect failed.*localhost:$REFUSED_PORT.*matches no rule" "$WORK/xfreerdp.log" || { log "     the plugin logged no refusal naming the rules"; ok=1; }
		as_user curl -sS --max-time 60 --socks5-hostname "127.0.0.1:$socks" "http://localhost:$HTTP_PORT/big.bin" -o /dev/null 2>>"$WORK/check-s.curl.log" || { log "     the tunnel did not go on after the refusal"; ok=1; }
	else
		ok=1
	fi
	if [ "$ok" != 0 ]; then
		log "     rdpdvc tunnel said: $(tail -n 5 "$WORK/check-s.log" | tr '\n' '|')"
		log "     the plugin said: $(grep -a 'tunnel' "$WORK/xfreerdp.log" | tail -n 5 | tr '\n' '|')"
		log "     the HTTP server said: $(tail -n 3 "$WORK/http.log" | tr '\n' '|'); listening: $(ss -Htlnp "sport = :$HTTP_PORT" | tr '\n' '|')"
	fi
	signal_session INT "$pid"
	wait "$pid" 2>/dev/null
	[ "$ok" = 0 ] && log "     5000000 bytes fetched byte for byte through SOCKS5 by a name resolved on the client; a port no rule allows refused ($(tail -n 1 "$WORK/check-s.refused.log"))"
	return "$ok"
}
check "(s) rdpdvc tunnel -xrdp: curl --socks5-hostname in the session fetches a file from the client's side" check_s

# (d): many short runs, alternating baseline and rdpdvc so that the noise
# of a shared machine hits both alike; compare the medians of the per-run
# medians. Measured twice before it counts as a failure.
mid_median() { sed -n 's/.* median=\([0-9.]*\).*/\1/p' "$1" | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
measure_d() {
	local i per=$((COUNT / ROUNDS))
	: >"$WORK/rtt-baseline.log"
	: >"$WORK/rtt-rdpdvc.log"
	for ((i = 0; i < ROUNDS; i++)); do
		as_user "$BIN/xrdpapi-echo-baseline" -channel dvc::sample::simpleplugin -count "$per" >>"$WORK/rtt-baseline.log" 2>&1 || return 1
		server dvc::sample::simpleplugin "$per" -q >"$WORK/rtt-run.log" 2>&1 || {
			cat "$WORK/rtt-run.log" >>"$WORK/rtt-rdpdvc.log"
			return 1
		}
		# "rtt min/avg/p50/p99/max = a/b/c/d/e ms" -> the baseline's format
		awk -F'[ /=]+' '/^rtt min/ { printf "rdpdvc rtt_us n='"$per"' min=%.1f median=%.1f mean=%.1f p99=%.1f max=%.1f\n", $7*1000, $9*1000, $8*1000, $10*1000, $11*1000 }' \
			"$WORK/rtt-run.log" >>"$WORK/rtt-rdpdvc.log"
	done
	local b r
	b=$(mid_median "$WORK/rtt-baseline.log")
	r=$(mid_median "$WORK/rtt-rdpdvc.log")
	[ -n "$b" ] && [ -n "$r" ] || return 1
	RATIO=$(awk -v r="$r" -v b="$b" 'BEGIN { printf "%.2f", r / b }')
	log "RTT, ${ROUNDS} alternating runs of ${per} pings each, 5120-byte payload: median of run medians baseline ${b}us, rdpdvc ${r}us, ratio ${RATIO} (target <= ${MAX_RATIO}); load average $(cut -d' ' -f1-3 /proc/loadavg)"
	grep -h rtt_us "$WORK/rtt-baseline.log" "$WORK/rtt-rdpdvc.log" | sed "s/^/e2e[$STACK]:   /" >&2
	if awk -v x="$RATIO" -v m="$MAX_RATIO" 'BEGIN { exit !(x <= m) }'; then
		log "     RTT target met"
	elif [ "$ENFORCE_RTT" = 1 ]; then
		return 1
	else
		# A figure, not a verdict: CI machines are shared and noisy, and
		# no test here asserts a wall-clock time (E2E_RTT_ENFORCE=1 does).
		log "     RTT target NOT met this run (reported, not enforced)"
	fi
}
check_d() { measure_d || { log "(d) failed; measuring again" && measure_d; }; }
check "(d) RTT of rdpdvc vs the raw xrdpapi baseline measured (target ${MAX_RATIO}x)" check_d

# (f) The client disconnects and a client reconnects to the same session
# (xrdp keeps it): rdp-simple-plugin-server counts the gap's pings lost
# and pings the new connection; pnp-server sees the devices go and come
# back. Last, since it replaces xfreerdp.
# xrdp 0.10.5 added the session-information channel that reports a
# client's disconnect and reconnect (backend/xrdp WatchSession).
XRDP_VERSION=$(dpkg-query -W -f='${Version}' xrdp)
SESSION_EVENTS=0
if dpkg --compare-versions "$XRDP_VERSION" ge 0.10.5; then SESSION_EVENTS=1; fi
count_in() { grep -c -- "$1" "$2" 2>/dev/null || true; }
check_f() {
	local slog=$WORK/check-f-simple.log pout=$WORK/check-f-pnp.out
	as_user "$BIN/rdp-simple-plugin-server" -xrdp -interval 50ms -count 100 >"$slog" 2>&1 &
	local spid=$!
	as_user_session "$BIN/rdpdvc" pnp-server -xrdp >"$pout" 2>"$WORK/check-f-pnp.log" &
	local ppid=$!
	local ok=0
	wait_for 20 "pings before the disconnect" grep -q 'Ping#5 ' "$slog" &&
		wait_for 20 "pnp-server to list the 3 devices" bash -c "[ \$(grep -c '\"event\":\"device-arrived\"' '$pout') -ge 3 ]" || ok=1
	if [ "$ok" = 0 ]; then
		log "     disconnecting the client (stopping xfreerdp)"
		stop_group "$PID_xfreerdp"
		wait_for 30 "the Simple server to see the client go" grep -q 'went away' "$slog" || ok=1
		if [ "$SESSION_EVENTS" = 1 ]; then
			wait_for 30 "pnp-server to see the devices go" bash -c "[ \$(grep -c '\"event\":\"device-removed\"' '$pout') -ge 3 ]" || ok=1
		fi
		log "     reconnecting a client to the session"
		# This time the plugin answers ECHO itself (its echo feature), not
		# FreeRDP's /echo: check (g) probes it.
		start xfreerdp env DISPLAY=":$XVFB_DISPLAY" RDPDVC_LOG=debug $XFREERDP /v:"127.0.0.1:$XRDP_PORT" \
			/u:"$E2E_USER" /p:"$PASSWORD" /cert:ignore /size:1024x768 /dvc:rdpdvc,simple,echo,"$PNP_ARGS"
		if [ "$SESSION_EVENTS" = 1 ]; then
			wait_for 60 "pnp-server to list the 3 devices again" bash -c "[ \$(grep -c '\"event\":\"device-arrived\"' '$pout') -ge 6 ]" || ok=1
		fi
		wait_for 60 "the Simple server to finish its 100 pings on the new connection" bash -c "! kill -0 $spid" || ok=1
	fi
	signal_session INT "$ppid"
	kill "$spid" 2>/dev/null
	wait "$spid" "$ppid" 2>/dev/null
	local sum
	sum=$(grep -E '^[0-9]+ sent, [0-9]+ received, [0-9]+ lost' "$slog" | tail -n1)
	log "     Simple server: $sum; after a gap of $(grep 'client back' "$slog" | grep -o 'gap_ms=[0-9]* lost=[0-9]*' | head -n1)"
	if [ "$SESSION_EVENTS" = 1 ]; then
		log "     pnp-server: $(count_in device-arrived "$pout") arrivals, $(count_in device-removed "$pout") removals"
	else
		# chansrv before 0.10.5 tells a channel of the disconnect only when
		# the program writes, and PNPDR is quiet once the devices are
		# listed (docs/linux.md): not checked on these stacks.
		log "     pnp-server: not checked (xrdp $XRDP_VERSION reports no disconnects; $(count_in device-arrived "$pout") arrivals, $(count_in device-removed "$pout") removals)"
	fi
	local recv lost
	recv=$(sed -n 's/^[0-9]* sent, \([0-9]*\) received, \([0-9]*\) lost.*/\1/p' <<<"$sum")
	lost=$(sed -n 's/^[0-9]* sent, \([0-9]*\) received, \([0-9]*\) lost.*/\2/p' <<<"$sum")
	grep -q 'client back; pinging again' "$slog" || { log "     the Simple server did not ping the new connection"; ok=1; }
	[ -n "$recv" ] && [ "$recv" -ge 105 ] || { log "     the Simple server received ${recv:-no} echoes, want >= 105 (5 before, 100 after)"; ok=1; }
	[ -n "$lost" ] && [ "$lost" -ge 1 ] || { log "     the Simple server counted no ping lost across the gap"; ok=1; }
	return "$ok"
}
check "(f) a client reconnects to the session: the Simple server and pnp-server carry on" check_f

# (g) The plugin's own MS-RDPEECO listener (/dvc:rdpdvc,echo; xfreerdp now
# runs without /echo, so nothing else answers ECHO), probed by rdpdvc echo.
check_g() {
	as_user "$BIN/rdpdvc" echo -xrdp -count 10 -interval 10ms >"$WORK/check-g.log" 2>&1 && all_back "$WORK/check-g.log" 10 || return 1
	local n
	n=$(grep -c 'msg=echo.*channel=ECHO' "$WORK/xfreerdp.log" || true)
	log "     the plugin logged $n ECHO answers"
	[ "$n" -ge 10 ]
}
check "(g) rdpdvc echo -xrdp: MS-RDPEECO round trips with the plugin's echo feature" check_g

kill -0 "$PID_xfreerdp" 2>/dev/null || {
	log "FAIL xfreerdp died during the checks"
	FAILED=1
}
if [ "${E2E_HOLD:-0}" -gt 0 ]; then
	log "holding the session for ${E2E_HOLD}s (display :$SESSION_DISPLAY, user $E2E_USER, work dir $WORK)"
	echo "$SESSION_DISPLAY $E2E_USER $WORK $PID_xfreerdp" >/tmp/rdpdvc-e2e.hold
	sleep "$E2E_HOLD" || true
	rm -f /tmp/rdpdvc-e2e.hold
fi
[ "$FAILED" = 0 ]
exit
}
