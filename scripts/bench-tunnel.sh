#!/usr/bin/env bash
# Runs internal/tunnelbench with OpenSSH's `ssh -D` as a baseline beside raw
# TCP: installs Debian's openssh-server and openssh-client if they are
# missing (apt-get; needs root), starts a private sshd on 127.0.0.1 with a
# throwaway host key and client key in a temporary directory (the system's
# /etc/ssh is not read or changed), runs `ssh -N -D` against it, runs the
# benchmark with the arguments given, and stops everything it started.
#
#   scripts/bench-tunnel.sh [tunnelbench flags]
#   scripts/bench-tunnel.sh -rdpdvc-server "$BIN/rdpdvc tunnel -q -socks {socks} -listen {listen}" \
#       -rdpdvc-client "$BIN/rdpdvc tunnel-client -q -connect {listen} -allow 127.0.0.1"
#
# ssh uses its default cipher (what users of `ssh -D` get); SSH_CIPHER
# picks another (e.g. aes128-gcm@openssh.com).
{
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! [ -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		echo "bench-tunnel: openssh-server and openssh-client are needed; run as root to install them, or install them" >&2
		exit 1
	fi
	# Installing openssh-server would start the system's sshd on port 22:
	# policy-rc.d 101 stops that for this install only.
	policy=/usr/sbin/policy-rc.d
	own_policy=
	if ! [ -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		own_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server openssh-client >&2 ||
		{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server openssh-client >&2; }
	[ -n "$own_policy" ] && rm -f "$policy"
fi

dir=$(mktemp -d /tmp/bench-tunnel.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$dir/tunnelbench" ./internal/tunnelbench
sshd_port=$("$dir/tunnelbench" -free-port)
socks_port=$("$dir/tunnelbench" -free-port)

ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
cp "$dir/client_key.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"
user=$(id -un)
cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $sshd_port
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowTcpForwarding yes
AllowUsers $user
EOF
# sshd refuses to start without its privilege separation directory, which
# Debian's service creates at boot.
[ -d /run/sshd ] || { mkdir -p /run/sshd && chmod 755 /run/sshd; }
/usr/sbin/sshd -f "$dir/sshd_config" -D -e 2>"$dir/sshd.log" &
pids+=($!)

for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$sshd_port") 2>/dev/null && break
	sleep 0.1
done

cipher=()
[ -n "${SSH_CIPHER:-}" ] && cipher=(-c "$SSH_CIPHER")
# ExitOnForwardFailure: a busy SOCKS port ends ssh instead of leaving it
# up without the proxy. tunnelbench waits for the proxy to work.
ssh -N -D "127.0.0.1:$socks_port" -p "$sshd_port" -i "$dir/client_key" "${cipher[@]}" \
	-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile="$dir/known_hosts" \
	-o ExitOnForwardFailure=yes -o LogLevel=ERROR "$user@127.0.0.1" 2>"$dir/ssh.log" &
pids+=($!)
echo "bench-tunnel: sshd on 127.0.0.1:$sshd_port, ssh -D on 127.0.0.1:$socks_port ($(ssh -V 2>&1))" >&2

status=0
"$dir/tunnelbench" -ssh "127.0.0.1:$socks_port" -ssh-pids "${pids[0]},${pids[1]}" "$@" || status=$?
if [ "$status" != 0 ]; then
	echo "bench-tunnel: tunnelbench failed; sshd's and ssh's logs:" >&2
	cat "$dir/sshd.log" "$dir/ssh.log" >&2
fi
exit "$status"
}
