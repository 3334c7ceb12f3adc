#!/bin/sh
# The issue's "done when", at the shell: two processes, `rdpdvc pnp-client`
# redirecting a file-backed device (and a read-only one) and `rdpdvc
# pnp-server` running a script, let this script open the device, write
# bytes at an offset, read them back and find them in the client's file;
# the read-only device refuses the write with an HRESULT and its file is
# unchanged.
#
# usage: rw-ro.sh RDPDVC WORKDIR     (exit 0 when everything held)
set -eu
RDPDVC=$1
cd "$2"

printf 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' > rw.img
printf 'read-only bytes' > ro.img
cp ro.img ro.orig

cat > script.txt <<'SCRIPT'
wait-device hwid:TEST\RW
wait-device hwid:TEST\RO
open rw hwid:TEST\RW
write rw 10 text:hello, PNP
read rw 10 10
open ro hwid:TEST\RO
! write ro 0 text:overwrite
read ro 0 15
close rw
close ro
SCRIPT

"$RDPDVC" pnp-server -listen 127.0.0.1:0 -script script.txt > server.out 2> server.err &
server=$!
i=0
until grep -q '"event":"listening"' server.out 2>/dev/null; do
	i=$((i + 1))
	if [ "$i" -gt 300 ]; then echo "pnp-server did not start listening" >&2; kill "$server"; exit 1; fi
	sleep 0.1
done
addr=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' server.out | head -n 1)

"$RDPDVC" pnp-client -connect "$addr" -device 'file:rw.img,hwid=TEST\RW' -device 'file:ro.img,ro,hwid=TEST\RO' > client.out 2>&1 &
client=$!

status=0
wait "$server" || status=$?
wait "$client" || { echo "pnp-client failed:" >&2; cat client.out >&2; exit 1; }
if [ "$status" -ne 0 ]; then
	echo "pnp-server exited $status:" >&2; cat server.out server.err >&2; exit 1
fi

fail() { echo "$*" >&2; cat server.out >&2; exit 1; }
grep '"op":"read"' server.out | grep -q '"data":"68656c6c6f2c20504e50"' || fail "read back is not 'hello, PNP'"
grep '"op":"write"' server.out | grep '"expectFail":true' | grep -q '"hresult":"0x80070013"' ||
	fail "the read-only write was not refused with ERROR_WRITE_PROTECT (0x80070013)"
printf 'AAAAAAAAAAhello, PNPAAAAAAAAAA' > rw.want
cmp rw.img rw.want || fail "the client's file does not hold the written bytes: $(cat rw.img)"
cmp ro.img ro.orig || fail "the read-only file changed: $(cat ro.img)"
echo "ok: wrote and read back through two processes; the read-only device refused the write"
