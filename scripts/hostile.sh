#!/usr/bin/env bash
# Runs the hostile-peer scenarios of docs/security.md against the real
# programs: builds cmd/ into a temporary directory, then runs
# internal/hostile on it over 127.0.0.1.
#
#   scripts/hostile.sh [-short] [-run TEXT]
#
# -short (CI) uses smaller floods and shorter waits and finishes in under a
# minute. The exit status is 1 when a figure misses its target.
{
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=$(mktemp -d /tmp/rdpdvc-hostile.XXXXXX)
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN" ./cmd/rdp-simple-plugin-server ./cmd/rdp-simple-plugin-client ./cmd/rdpdvc ./internal/hostile
"$BIN/hostile" -bin "$BIN" "$@"
exit
}
