#!/usr/bin/env bash
# Runs every native Go fuzz target in the module for DURATION each, one
# after another (go test -fuzz uses one target at a time; -parallel 1 keeps
# it to one core, so the figures of two runs compare).
#
#   scripts/fuzz.sh [DURATION] [PACKAGE-PATTERN]     e.g. scripts/fuzz.sh 10m ./drdynvc/...
#
# DURATION is go test's -fuzztime (3s by default). It prints one line per
# target with its executions and new corpus entries, then a summary, and
# exits 1 if any target found a crasher (left in the package's
# testdata/fuzz for go test to replay). FUZZ_PARALLEL sets -parallel (1).
{
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION=${1:-3s}
PATTERN=${2:-./...}
PARALLEL=${FUZZ_PARALLEL:-1}
LOG=$(mktemp /tmp/rdpdvc-fuzz.XXXXXX)
trap 'rm -f "$LOG"' EXIT

targets=0
failed=()
start=$SECONDS
for pkg in $(go list "$PATTERN"); do
	for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		targets=$((targets + 1))
		dir=$(go list -f '{{.Dir}}' "$pkg")
		run() { go test -run='^$' -fuzz="^${f}\$" -fuzztime="$DURATION" -parallel "$PARALLEL" "$pkg" >"$LOG" 2>&1; }
		# Go's fuzz coordinator can fail a clean run with a bare "context
		# deadline exceeded" as -fuzztime ends (golang/go issue 75804),
		# twice in a row on a loaded machine: such a failure, which
		# leaves no new crasher in testdata, is retried, up to 3 runs in
		# all. Any other failure, or a crasher, fails the target at once.
		ok=0
		for attempt in 1 2 3; do
			if run; then ok=1; break; fi
			if [ -n "$(git status --porcelain -- "$dir/testdata/fuzz")" ] || ! grep -q 'context deadline exceeded' "$LOG"; then
				break
			fi
		done
		if [ "$ok" = 0 ]; then
			cat "$LOG"
			echo "FAIL ${pkg#github.com/rdpdvc/rdpdvc/} $f (a crasher, if any, is in $dir/testdata/fuzz)"
			failed+=("$pkg $f")
			continue
		fi
		# The coordinator's last progress line: "fuzz: elapsed: 3s, execs: 123 (41/sec), new interesting: 2 (total: 10)".
		last=$(grep -E '^fuzz: elapsed: .*execs:' "$LOG" | tail -n 1 | sed 's/^fuzz: //')
		printf 'ok   %-28s %-34s %s\n' "${pkg#github.com/rdpdvc/rdpdvc/}" "$f" "${last:-(no progress line)}"
	done
done
echo "$targets fuzz targets, $DURATION each, in $((SECONDS - start)) s: ${#failed[@]} failed"
[ "${#failed[@]}" = 0 ]
exit
}
