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
const table = (of) => {
	for (const k of keys) {
		const [shape, threads, phase] = k.split("\t");
		const pick = e => median(rows.filter(r => r.engine === e && r.shape === shape && String(r.threads) === threads && r.phase === phase).map(of));
		const v = engines.map(pick);
		console.log([shape, threads, phase, ...v.map(x => x.toFixed(1)), ...v.slice(1).map(x => (v[0] / x).toFixed(2))].join("\t"));
	}
};
table(r => r.tokens_per_s);
// On a shared host wall time mostly measures the neighbours: the same
// table per CPU-second (tokens·threads/cpu_seconds, the rate each of the
// threads would give on cores of its own), when every engine reports it.
if (rows.every(r => r.cpu_seconds > 0)) {
	console.log(`\ntokens per CPU-second × threads, ${title}, median of ${rounds} interleaved rounds`);
	console.log(["shape", "threads", "phase", ...engines, ...others.map(e => `${first}/${e}`)].join("\t"));
	table(r => r.tokens * r.threads / r.cpu_seconds);
}
