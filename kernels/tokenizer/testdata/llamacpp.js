// Writes llama.cpp's ids for the files TestWriteGGUFVocabs made, for
// TestAgainstLlamaCpp (see llamacpp_test.go):
//
//   npm i -E --ignore-scripts node-llama-cpp@3.21.1
//   node llamacpp.js /tmp/tg      # writes /tmp/tg/llamacpp.json
//
// Texts are tokenized with special tokens parsed and nothing added, and
// decoded with special tokens rendered.
const fs = require("fs");
const path = require("path");

(async () => {
  const { getLlama } = await import("node-llama-cpp");
  const llama = await getLlama({ build: "never", gpu: false });
  const dir = process.argv[2];
  const texts = JSON.parse(fs.readFileSync(path.join(dir, "texts.json"), "utf8"));
  const out = {};
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".gguf"))) {
    const name = file.slice(0, -".gguf".length);
    const model = await llama.loadModel({ modelPath: path.join(dir, file), vocabOnly: true });
    const t = model.tokens;
    out[name] = {
      bos: t.bos, eos: t.eos, add_bos: t.shouldPrependBosToken,
      cases: texts.map((text) => {
        const ids = Array.from(model.tokenize(text, true));
        return { text, ids, decoded: model.detokenize(ids, true) };
      }),
    };
    await model.dispose();
  }
  fs.writeFileSync(path.join(dir, "llamacpp.json"), JSON.stringify(out));
})();
