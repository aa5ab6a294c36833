#!/usr/bin/env bash
# Runs every Fuzz target in the module for DURATION each (default 30s):
#   bash bench/fuzz.sh 30s
# Targets are found with grep, so a new FuzzX in any package is picked up.
# A failure leaves the crasher under that package's testdata/fuzz/FuzzX/;
# commit it, so `go test` replays it from then on. Set FUZZ_PARALLEL to cap
# the fuzzing workers (default: all cores).
set -euo pipefail
duration="${1:-30s}"
cd "$(dirname "$0")/.."
parallel=()
if [[ -n "${FUZZ_PARALLEL:-}" ]]; then
	parallel=(-parallel "$FUZZ_PARALLEL")
fi
failed=()
count=0
while IFS=: read -r file line; do
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(.*/\1/' <<<"$line")
	pkg="$(dirname "$file")"
	count=$((count + 1))
	echo "== $pkg $name ($duration)"
	corpus="$pkg/testdata/fuzz/$name"
	before=$(ls "$corpus" 2>/dev/null | sort || true)
	log=$(mktemp)
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$duration" -fuzzminimizetime "${FUZZ_MINIMIZE:-200x}" "${parallel[@]}" "$pkg" 2>&1 | tee "$log"; then
		after=$(ls "$corpus" 2>/dev/null | sort || true)
		# Go 1.26's fuzz coordinator can report its own -fuzztime deadline
		# as a failure (golang/go#75804, fixed in Go 1.27): no input is
		# written and nothing reproduces. Only that case is retried, by
		# replaying the corpus; a written reproducer always fails.
		if [[ "$before" == "$after" ]] && grep -q 'context deadline exceeded' "$log"; then
			echo "-- $name: fuzzing stopped by golang/go#75804 with no input written; replaying the corpus"
			go test -run "^${name}\$" "$pkg" || failed+=("$pkg $name")
		else
			failed+=("$pkg $name")
		fi
	fi
	rm -f "$log"
done < <(grep -rHE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . | grep -v '^./bench/results' | sort)
echo "ran $count fuzz targets for $duration each"
if ((${#failed[@]})); then
	printf 'FAILED: %s\n' "${failed[@]}"
	exit 1
fi
