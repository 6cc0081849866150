// Times llama.cpp (through node-llama-cpp's prebuilt CPU build) on a GGUF
// model the way `lrmc bench model` times lrmc: prefill is one batch of
// PREFILL random token ids (logits of the last position only), decode is
// DECODE greedy steps from a one-token context. Prints one JSON line per
// phase, in lrmc's field names, with "engine": "llama.cpp".
//
//   node llamacpp.mjs MODEL.gguf SHAPE THREADS PREFILL DECODE
//
// Run from a folder where node-llama-cpp@3.21.1 is installed (llamacpp.sh
// does that). Node's own threads share the cores with llama.cpp's, which
// understates llama.cpp's 2-thread decode a little (machine-notes.md).
import {getLlama} from "node-llama-cpp";

const [modelPath, shape, threadsArg, prefillArg, decodeArg] = process.argv.slice(2);
if (!decodeArg) {
    console.error("usage: node llamacpp.mjs MODEL.gguf SHAPE THREADS PREFILL DECODE");
    process.exit(2);
}
const threads = Number(threadsArg), nPrefill = Number(prefillArg), nDecode = Number(decodeArg);

const llama = await getLlama({build: "never", gpu: false, maxThreads: threads, logLevel: "error"});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({
    contextSize: nPrefill + nDecode + 16, batchSize: nPrefill, sequences: 1,
    threads: {ideal: threads, min: threads},
});
const sequence = context.getSequence();

// Token ids above the 259 special and byte pieces of lrmc's synthetic
// vocabulary, from a fixed linear congruential stream.
const nVocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
let state = 12345;
const tokens = Array.from({length: nPrefill}, () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return 259 + (state % (nVocab - 259));
});

// cpu_seconds is the process's user+system CPU time over the phase, as
// lrmc reports its own: llama.cpp's threads run inside this process, so
// process.cpuUsage() counts them (and Node's own, mostly idle, threads).
// On a shared host it moves much less than wall time.
function report(phase, n, seconds, cpu0) {
    const cpu = process.cpuUsage(cpu0);
    console.log(JSON.stringify({
        engine: "llama.cpp", shape, dtype: "f32", threads, phase, tokens: n, seconds, tokens_per_s: n / seconds,
        cpu_seconds: (cpu.user + cpu.system) / 1e6,
    }));
}

await sequence.clearHistory();
let cpu0 = process.cpuUsage();
let t0 = performance.now();
await sequence.evaluateWithoutGeneratingNewTokens(tokens);
report("prefill", nPrefill, (performance.now() - t0) / 1000, cpu0);

await sequence.clearHistory();
cpu0 = process.cpuUsage();
t0 = performance.now();
let n = 0;
for await (const _ of sequence.evaluate([tokens[0]], {temperature: 0})) {
    if (++n >= nDecode) break;
}
report("decode", nDecode, (performance.now() - t0) / 1000, cpu0);

await context.dispose();
await model.dispose();
