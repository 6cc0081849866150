// median-table.mjs prints the median tokens/s of each engine per shape,
// threads and phase from the JSON lines the bench scripts collect, and the
// ratio of the first engine to each other one (all measured in the same
// interleaved rounds).
//
//   node bench/median-table.mjs RESULTS.jsonl ROUNDS TITLE ENGINE...
import fs from "node:fs";

const [file, rounds, title, ...engines] = process.argv.slice(2);
const rows = fs.readFileSync(file, "utf8").trim().split("\n").map(l => JSON.parse(l));
const median = xs => { const s = [...xs].sort((a, b) => a - b); return s[(s.length - 1) >> 1]; };
const keys = [...new Set(rows.map(r => `${r.shape}\t${r.threads}\t${r.phase}`))];
console.log(`tokens/s, ${title}, median of ${rounds} interleaved rounds`);
const [first, ...others] = engines;
console.log(["shape", "threads", "phase", ...engines, ...others.map(e => `${first}/${e}`)].join("\t"));
for (const k of keys) {
	const [shape, threads, phase] = k.split("\t");
	const pick = e => median(rows.filter(r => r.engine === e && r.shape === shape && String(r.threads) === threads && r.phase === phase).map(r => r.tokens_per_s));
	const v = engines.map(pick);
	console.log([shape, threads, phase, ...v.map(x => x.toFixed(1)), ...v.slice(1).map(x => (v[0] / x).toFixed(2))].join("\t"));
}
