#!/usr/bin/env bash
# Cache cost (issue 13, target 5): for each example recipe, a cold apply on an
# empty cache, then five fully cached applies; prints cold seconds, the median
# warm seconds and their ratio. Usage: bench/warm-rerun.sh [LRMC] [RECIPE...]
# (LRMC defaults to a fresh build). The machine is shared: compare binaries in
# one run, repeat, take medians.
set -euo pipefail
cd "$(dirname "$0")/.."
lrmc="${1:-}"
if [ -z "$lrmc" ]; then lrmc="$(mktemp -d)/lrmc"; go build -o "$lrmc" ./cmd/lrmc; else shift; fi
recipes=("$@"); [ ${#recipes[@]} -gt 0 ] || recipes=(recipes/*.cue)
now() { date +%s.%N; }
printf '%-28s %8s %8s %7s\n' recipe cold_s warm_s ratio
for r in "${recipes[@]}"; do
  export LRMC_CACHE; LRMC_CACHE="$(mktemp -d)"
  t0=$(now); "$lrmc" apply --progress=plain "$r" >/dev/null 2>&1; cold=$(echo "$(now) - $t0" | bc)
  warm=()
  for _ in 1 2 3 4 5; do
    t0=$(now); out=$("$lrmc" apply --progress=plain "$r" 2>/dev/null); warm+=("$(echo "$(now) - $t0" | bc)")
    grep -q "Nothing to run" <<<"$out" || { echo "$r: a rerun ran something" >&2; exit 1; }
  done
  med=$(printf '%s\n' "${warm[@]}" | sort -g | sed -n 3p)
  printf '%-28s %8.2f %8.3f %6.1f%%\n' "$(basename "$r" .cue)" "$cold" "$med" "$(echo "100 * $med / $cold" | bc -l)"
  rm -rf "$LRMC_CACHE"
done
