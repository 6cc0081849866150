#!/usr/bin/env bash
# llamacpp-bf16.sh: lrmc's bf16 compute (bfloat16 weights, activations
# rounded to bfloat16, VDPBF16PS) next to llama.cpp's bf16 model on the same
# weights, plus lrmc's float32 compute on the same bfloat16 weights, same
# thread count, interleaved rounds. Optional and outside CI, like
# llamacpp.sh (it needs Node.js, npm and the npm registry).
#
#   bench/llamacpp-bf16.sh                          # SmolLM-135M shape, 1 and 2 threads, 3 rounds
#   SHAPE=qwen3-0.6b THREADS="2" ROUNDS=5 bench/llamacpp-bf16.sh
#   LLAMACPP_DIR=/tmp/llcpp bench/llamacpp-bf16.sh  # reuse (or keep) an install there
#
# The GGUF is written by `lrmc bench model --export-gguf DIR --export-dtype
# bf16`: the f32 synthetic weights rounded to bfloat16 (to nearest even),
# which are exactly the weights `--dtype bfloat16` holds. llama.cpp reports
# its dtype as f32 in the JSON (llamacpp.mjs does not know it); the engine
# field tells the three apart.
set -euo pipefail

shape=${SHAPE:-smollm-135m}
threads=${THREADS:-"1 2"}
rounds=${ROUNDS:-3}
prefill=${PREFILL:-512}
decode=${DECODE:-32}

# shellcheck source=bench/llamacpp-setup.sh
source "$(dirname "$0")/llamacpp-setup.sh"
cp "$here/llamacpp.mjs" "$npmdir/llamacpp.mjs"

"$work/lrmc" bench model --shape "$shape" --export-gguf "$work/models" --export-dtype bf16 >/dev/null
model="$work/models/$shape.gguf"

results="$work/results.jsonl"
for round in $(seq 1 "$rounds"); do
	for t in $threads; do
		for c in bf16 f32; do
			echo "round $round/$rounds, $t thread(s): lrmc compute $c" >&2
			"$work/lrmc" bench model --shape "$shape" --threads "$t" --prefill "$prefill" --decode "$decode" \
				--dtype bfloat16 --compute "$c" --json 2>/dev/null | sed "s/^{/{\"engine\":\"lrmc-$c\",/" >>"$results"
		done
		echo "round $round/$rounds, $t thread(s): llama.cpp bf16" >&2
		(cd "$npmdir" && node llamacpp.mjs "$model" "$shape" "$t" "$prefill" "$decode") >>"$results"
	done
done

if [ -n "${RESULTS:-}" ]; then
	cp "$results" "$RESULTS"
fi
node "$here/median-table.mjs" "$results" "$rounds" "bfloat16 weights" lrmc-bf16 llama.cpp lrmc-f32
