// Summary of a `scripts/bench layers` run: reads DIR/round*/layers-TARGET-CODEC.json (written
// by layers.mjs), writes DIR/results.json and DIR/README.md with, per codec and spatial layer,
// the median (min–max) time from setConsumerPreferredLayers to the first frame of the new width
// on screen and to consumerLayersChanged, for ferrosfu and mediasoup 3.27.1, and their ratio.
//
//   node tests/browser/layers-report.mjs DIR
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const rounds = readdirSync(dir).filter((d) => d.startsWith('round')).sort();
const runs = [];
for (const r of rounds) {
  for (const f of readdirSync(join(dir, r)).filter((f) => /^layers-.*\.json$/.test(f))) {
    const j = JSON.parse(readFileSync(join(dir, r, f), 'utf8'));
    runs.push({ round: r, target: j.target, codec: j.codec, ok: j.ok, failures: j.failures,
      switches: (j.switches || []).map((s) => ({ spatial: s.spatial, ok: s.ok, frameMs: s.frameMs,
        layersMs: s.layersChanged ? s.layersChanged.ms : null })),
      stallMs: j.stall?.acrossSwitches?.maxMs ?? null,
      jitterBufferMs: j.subscriber?.jitterBufferMs ?? null, plis: j.subscriber?.pliCount ?? null });
  }
}
const median = (v) => {
  const s = v.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  if (!s.length) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const range = (v) => {
  const s = v.filter((x) => typeof x === 'number');
  return s.length ? `${Math.min(...s)}–${Math.max(...s)}` : '–';
};
const table = [];
for (const codec of [...new Set(runs.map((r) => r.codec))]) {
  for (const spatial of [0, 1, 2]) {
    const row = { codec, spatial };
    for (const target of ['ferrosfu', 'mediasoup']) {
      const sw = runs.filter((r) => r.codec === codec && r.target === target)
        .map((r) => r.switches.find((s) => s.spatial === spatial)).filter(Boolean);
      row[target] = { runs: sw.length, ok: sw.filter((s) => s.ok).length,
        frameMs: median(sw.map((s) => s.frameMs)), frameRange: range(sw.map((s) => s.frameMs)),
        layersMs: median(sw.map((s) => s.layersMs)), layersRange: range(sw.map((s) => s.layersMs)) };
    }
    const f = row.ferrosfu.frameMs; const m = row.mediasoup.frameMs;
    row.ratio = f != null && m ? +(f / m).toFixed(2) : null;
    table.push(row);
  }
}
writeFileSync(join(dir, 'results.json'), JSON.stringify({ runs, table }, null, 1));
const lines = [
  '# Layer switch latency in Chromium: ferrosfu vs mediasoup 3.27.1 worker',
  '',
  `Runs: ${rounds.length} rounds (order alternating), tests/browser/layers.mjs; "frame": ms from`,
  'setConsumerPreferredLayers to the first presented frame of the new width; "layers": ms to',
  'consumerLayersChanged. Median (min–max). mediasoup 3.27.1 worker, built offline against Debian 12 libs.',
  '',
  '| codec | spatial | ferrosfu frame | mediasoup frame | ratio | ferrosfu layers | mediasoup layers | ok (f/m) |',
  '|---|---|---|---|---|---|---|---|',
  ...table.map((r) => `| ${r.codec} | ${r.spatial} | ${r.ferrosfu.frameMs} (${r.ferrosfu.frameRange}) | `
    + `${r.mediasoup.frameMs} (${r.mediasoup.frameRange}) | ${r.ratio ?? '–'} | ${r.ferrosfu.layersMs} `
    + `(${r.ferrosfu.layersRange}) | ${r.mediasoup.layersMs} (${r.mediasoup.layersRange}) | `
    + `${r.ferrosfu.ok}/${r.ferrosfu.runs}, ${r.mediasoup.ok}/${r.mediasoup.runs} |`),
  '',
  '| codec | target | receiver jitter buffer ms (median of runs) | PLIs by the receiver (median) |',
  '|---|---|---|---|',
  ...[...new Set(runs.map((r) => r.codec))].flatMap((codec) => ['ferrosfu', 'mediasoup'].map((target) => {
    const rs = runs.filter((r) => r.codec === codec && r.target === target);
    return `| ${codec} | ${target} | ${median(rs.map((r) => r.jitterBufferMs))} | ${median(rs.map((r) => r.plis))} |`;
  })),
  '',
  'Failures:',
  ...runs.filter((r) => !r.ok).map((r) => `- ${r.round} ${r.target} ${r.codec}: ${(r.failures || []).join('; ')}`),
  '',
];
writeFileSync(join(dir, 'README.md'), lines.join('\n'));
console.log(lines.join('\n'));
if (!existsSync(join(dir, 'README.md'))) process.exit(1);
