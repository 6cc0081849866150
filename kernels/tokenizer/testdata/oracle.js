// Writes ids computed by transformers.js (@lenml/tokenizers, the fork the
// reference file was made with) for TestAgainstOracle:
//
//   npm i -E --ignore-scripts @lenml/tokenizers@3.7.2
//   node oracle.js texts.json > /tmp/oracle.json   # texts.json: ["text", ...]
//   TOKENIZER_ORACLE=/tmp/oracle.json go test ./kernels/tokenizer -run TestAgainstOracle
//
// Set LRMC_DATA to the shared data folder if it is not ../shared/data.
const { TokenizerLoader } = require("@lenml/tokenizers");
const fs = require("fs");
const path = require("path");

const data = process.env.LRMC_DATA || path.join(__dirname, "../../../../shared/data");
const texts = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const out = {};
for (const name of ["qwen3", "llama3", "deepseek_v3", "mistral_v0.1"]) {
  const dir = path.join(data, "tokenizers", name);
  const tk = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"))),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"))),
  });
  out[name] = texts.map((text) => {
    const ids = tk.encode(text, { add_special_tokens: false });
    return { text, ids, ids_with_special: tk.encode(text), decoded: ids.length ? tk.decode(ids) : "" };
  });
}
console.log(JSON.stringify(out));
