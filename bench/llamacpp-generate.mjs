// Greedy generation with llama.cpp (node-llama-cpp's prebuilt CPU build), for
// comparison with `lrmc generate --json` on the same GGUF file. Prints one
// JSON line: the prompt ids (llama.cpp's tokenization, with BOS when the
// vocabulary adds one), the generated ids and their text.
//
//   node llamacpp-generate.mjs MODEL.gguf MAX_NEW KV_TYPE PROMPT
//
// KV_TYPE is the key/value cache type, F32 or F16 (llama.cpp's default);
// flash attention is off, so attention runs in the cache's precision.
import {getLlama} from "node-llama-cpp";

const [modelPath, maxNewArg, kv, prompt] = process.argv.slice(2);
if (!prompt) {
    console.error("usage: node llamacpp-generate.mjs MODEL.gguf MAX_NEW KV_TYPE PROMPT");
    process.exit(2);
}
const llama = await getLlama({build: "never", gpu: false, maxThreads: 1, logLevel: "error"});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({
    contextSize: model.trainContextSize, sequences: 1, threads: {ideal: 1, min: 1},
    flashAttention: false, experimentalKvCacheKeyType: kv, experimentalKvCacheValueType: kv,
});
const sequence = context.getSequence();
const addBOS = model.fileInfo.metadata.tokenizer.ggml.add_bos_token !== false && model.tokens.bos != null;
const promptIds = [...(addBOS ? [model.tokens.bos] : []), ...model.tokenize(prompt, false)];
const ids = [];
let stop = "max_tokens";
for await (const t of sequence.evaluate(promptIds, {temperature: 0})) {
    if (model.isEogToken(t)) {
        stop = "eos";
        break;
    }
    ids.push(t);
    if (ids.length >= Number(maxNewArg)) break;
}
console.log(JSON.stringify({prompt_ids: promptIds, ids, text: model.detokenize(ids), stop}));
await context.dispose();
await model.dispose();
