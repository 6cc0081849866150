#!/usr/bin/env bash
# llamacpp.sh: lrmc next to llama.cpp on the same synthetic model, same
# thread count, interleaved runs. Optional and outside CI: it needs Node.js,
# npm and the npm registry.
#
#   bench/llamacpp.sh                          # SmolLM-135M shape, 1 and 2 threads, 3 rounds
#   SHAPE=qwen3-0.6b THREADS="2" ROUNDS=5 bench/llamacpp.sh
#   LLAMACPP_DIR=/tmp/llcpp bench/llamacpp.sh  # reuse (or keep) an install there
#   RESULTS=runs.jsonl bench/llamacpp.sh       # also keep every run's JSON line
#
# llama.cpp comes prebuilt for the CPU from node-llama-cpp@3.21.1, installed
# with `npm i -E --ignore-scripts` into a temporary folder and loaded with
# getLlama({build: "never", gpu: false}). lrmc exports the shape's model with
# `lrmc bench model --export-gguf` (f32 weights, synthetic vocabulary), so
# both engines run the same weights. Each round runs lrmc and then llama.cpp
# at each thread count: these hosts drift by tens of percent over minutes,
# so only numbers taken side by side compare. The table shows medians.
set -euo pipefail

shape=${SHAPE:-smollm-135m}
threads=${THREADS:-"1 2"}
rounds=${ROUNDS:-3}
prefill=${PREFILL:-512}
decode=${DECODE:-128}

# shellcheck source=bench/llamacpp-setup.sh
source "$(dirname "$0")/llamacpp-setup.sh"
cp "$here/llamacpp.mjs" "$npmdir/llamacpp.mjs"

"$work/lrmc" bench model --shape "$shape" --export-gguf "$work/models" >/dev/null
model="$work/models/$shape.gguf"

results="$work/results.jsonl"
for round in $(seq 1 "$rounds"); do
	for t in $threads; do
		echo "round $round/$rounds, $t thread(s): lrmc" >&2
		"$work/lrmc" bench model --shape "$shape" --threads "$t" --prefill "$prefill" --decode "$decode" --json 2>/dev/null |
			sed 's/^{/{"engine":"lrmc",/' >>"$results"
		echo "round $round/$rounds, $t thread(s): llama.cpp" >&2
		(cd "$npmdir" && node llamacpp.mjs "$model" "$shape" "$t" "$prefill" "$decode") >>"$results"
	done
done

if [ -n "${RESULTS:-}" ]; then
	cp "$results" "$RESULTS"
fi
node "$here/median-table.mjs" "$results" "$rounds" "f32 weights" lrmc llama.cpp
