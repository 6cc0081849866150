#!/usr/bin/env bash
# Cache cost (issue 13, target 5): for each example recipe, a cold apply on an
# empty cache, then five fully cached applies; prints the cold apply's wall
# and CPU seconds (user+system), the median warm ones, and warm / cold for
# both. On a shared machine with oversubscribed cores, wall time mostly
# measures the wait for a core; the CPU ratio is the one that holds still.
#
#   bench/warm-rerun.sh [LRMC] [RECIPE...]
#
# LRMC defaults to a fresh build. With BASELINE=/path/to/other/lrmc the same
# is measured for that binary too, interleaved with LRMC (cold A, cold B,
# then warm A, warm B five times, each on its own cache), so that both see
# the same load on a shared machine. Take medians of several runs.
set -euo pipefail
cd "$(dirname "$0")/.."
lrmc="${1:-}"
if [ -z "$lrmc" ]; then lrmc="$(mktemp -d)/lrmc"; go build -o "$lrmc" ./cmd/lrmc; else shift; fi
recipes=("$@"); [ ${#recipes[@]} -gt 0 ] || recipes=(recipes/*.cue)
bins=("$lrmc"); [ -z "${BASELINE:-}" ] || bins+=("$BASELINE")
tm=$(mktemp)
trap 'rm -f "$tm"' EXIT

# timed BIN CACHE RECIPE: runs one apply, sets wall and cpu (seconds) and out.
# bash's time keyword reads the child's rusage in milliseconds (GNU time
# prints hundredths: 10 ms is an eighth of a warm apply).
timed() {
  local TIMEFORMAT='%3R %3U %3S'
  { time out=$(LRMC_CACHE="$2" "$1" apply --progress=plain "$3" 2>/dev/null); } 2>"$tm"
  read -r wall u s <"$tm"
  cpu=$(echo "$u + $s" | bc)
  [ "$cpu" != 0 ] || cpu=0.0005 # below the resolution
}
median() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }

printf '%-28s %-6s %8s %8s %7s %8s %8s %7s\n' recipe binary cold_s warm_s ratio cold_cpu warm_cpu ratio
for r in "${recipes[@]}"; do
  declare -A cache cold coldcpu
  declare -A walls cpus
  for i in "${!bins[@]}"; do
    cache[$i]="$(mktemp -d)"
    timed "${bins[$i]}" "${cache[$i]}" "$r"; cold[$i]=$wall; coldcpu[$i]=$cpu
    walls[$i]=""; cpus[$i]=""
  done
  for _ in 1 2 3 4 5; do
    for i in "${!bins[@]}"; do
      timed "${bins[$i]}" "${cache[$i]}" "$r"
      grep -q "Nothing to run" <<<"$out" || { echo "$r: a rerun with ${bins[$i]} ran something" >&2; exit 1; }
      walls[$i]+=" $wall"; cpus[$i]+=" $cpu"
    done
  done
  for i in "${!bins[@]}"; do
    # shellcheck disable=SC2086
    w=$(median ${walls[$i]}); c=$(median ${cpus[$i]})
    name=lrmc; [ "$i" = 0 ] || name=base
    printf '%-28s %-6s %8.2f %8.3f %6.1f%% %8.2f %8.3f %6.1f%%\n' "$(basename "$r" .cue)" "$name" "${cold[$i]}" "$w" \
      "$(echo "100 * $w / ${cold[$i]}" | bc -l)" "${coldcpu[$i]}" "$c" "$(echo "100 * $c / ${coldcpu[$i]}" | bc -l)"
    rm -rf "${cache[$i]}"
  done
  unset cache cold coldcpu walls cpus
done
