#!/usr/bin/env bash
# llamacpp-width.sh: the width-pruned stories260K models of
# recipes/stories260k-width.cue loaded by llama.cpp, greedy output compared
# with lrmc's token by token (bench/llamacpp-generate.sh on each). Models
# whose blocks differ in width are GGUF "deci" files with per-block
# head_count/head_count_kv/feed_forward_length arrays and, for FLAP, o/down
# output biases; uniformly pruned ones are plain llama. Optional and outside
# CI: it needs Node.js, npm and the npm registry.
#
#   bench/llamacpp-width.sh
#   MAX_NEW=200 LLAMACPP_DIR=/tmp/llcpp bench/llamacpp-width.sh
#
# Exit status 1 when any model's F32 run differs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export LLAMACPP_DIR=${LLAMACPP_DIR:-$work/npm}

(cd "$repo" && go build -o "$work/lrmc" ./cmd/lrmc)
(cd "$repo/recipes" && "$work/lrmc" --cache "$work/cache" apply stories260k-width.cue >&2)

fail=0
for model in "$repo"/recipes/out/stories260k-width/*/model.gguf; do
	run=$(basename "$(dirname "$model")")
	echo "== $run"
	"$here/llamacpp-generate.sh" "$model" || fail=1
done
exit $fail
