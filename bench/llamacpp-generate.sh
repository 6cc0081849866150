#!/usr/bin/env bash
# llamacpp-generate.sh: lrmc's greedy generation next to llama.cpp's on the
# same GGUF file, token by token. Optional and outside CI: it needs Node.js,
# npm and the npm registry (node-llama-cpp@3.21.1, as bench/llamacpp.sh).
#
#   bench/llamacpp-generate.sh                 # stories260K pruned by ShortGPT (1 block), exported to GGUF
#   bench/llamacpp-generate.sh MODEL.gguf      # any GGUF lrmc reads
#   MAX_NEW=200 LLAMACPP_DIR=/tmp/llcpp bench/llamacpp-generate.sh
#
# Each prompt runs with llama.cpp's key/value cache in F32 (where greedy
# tokens must agree: the same f32 weights and f32 arithmetic, up to
# summation order) and in F16, llama.cpp's default (where a near-tie
# between the two best logits can flip). Exit status 1 when an F32 run
# differs.
set -euo pipefail

max_new=${MAX_NEW:-400}
# shellcheck source=bench/llamacpp-setup.sh
source "$(dirname "$0")/llamacpp-setup.sh"
cp "$here/llamacpp-generate.mjs" "$npmdir/llamacpp-generate.mjs"

model=${1:-}
if [ -z "$model" ]; then
	data=$(cd "$repo/../shared/data" && pwd)
	cat >"$work/prune.cue" <<CUE
model: path: "$data/models/stories260K/stories260K.bin"
calibration: {data: {path: "$data/text/tinystories/tinystories_val.txt", format: "text"}, samples: 8, seqLen: 64, seed: 3}
eval: [{task: "perplexity", data: {path: "$data/text/tinystories/tinystories_val.txt", format: "text"}, samples: 4, seqLen: 64}]
runs: "shortgpt-1": prune: {paradigm: "depth", method: "shortgpt", remove: 1}
dense: false
output: {dir: "out", formats: ["gguf"]}
CUE
	echo "pruning stories260K (ShortGPT, 1 block) and exporting GGUF" >&2
	"$work/lrmc" --cache "$work/cache" apply --progress plain "$work/prune.cue" >&2
	model="$work/out/shortgpt-1/model.gguf"
fi
model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")

fail=0
printf 'prompt\tkv\tnew tokens\tsame ids\tsame text\n'
for prompt in "Once upon a time" "Tom and Sue went to the park" "The little dog" "Lily had a red ball."; do
	"$work/lrmc" generate --model "$model" --prompt "$prompt" --max-new-tokens "$max_new" --json >"$work/lrmc.json"
	for kv in F32 F16; do
		(cd "$npmdir" && node llamacpp-generate.mjs "$model" "$max_new" "$kv" "$prompt") >"$work/llama.json"
		node - "$work/lrmc.json" "$work/llama.json" "$prompt" "$kv" <<'JS' || { [ "$kv" = F32 ] && fail=1; }
const fs = require("fs");
const [a, b, prompt, kv] = process.argv.slice(2);
const l = JSON.parse(fs.readFileSync(a, "utf8")), c = JSON.parse(fs.readFileSync(b, "utf8"));
if (JSON.stringify(l.prompt_ids) !== JSON.stringify(c.prompt_ids)) {
	console.log(`${prompt}\t${kv}\tprompt ids differ: lrmc ${JSON.stringify(l.prompt_ids)}, llama.cpp ${JSON.stringify(c.prompt_ids)}`);
	process.exit(1);
}
let i = 0;
while (i < Math.min(l.ids.length, c.ids.length) && l.ids[i] === c.ids[i]) i++;
const same = i === l.ids.length && i === c.ids.length;
console.log(`${prompt}\t${kv}\t${l.ids.length}/${c.ids.length}\t${same ? "all" : "first " + i}\t${l.text === c.text}`);
process.exit(same && l.text === c.text ? 0 : 1);
JS
	done
done
exit $fail
