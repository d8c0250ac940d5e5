// Summary of a `scripts/bench bwe` run: reads DIR/round*/bwe-TARGET.json (written by bwe.mjs)
// and prints, for ferrosfu and the stock mediasoup 3.27.1 worker side by side, the median
// (min–max) of each figure over the rounds, whether ferrosfu is at least as good on it, and one
// line per run. Also writes DIR/results.json.
//
//   node tests/browser/bwe-report.mjs DIR
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const rounds = readdirSync(dir).filter((d) => d.startsWith('round')).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
// bwe.mjs's recoverMs, from the timeline (for runs written before it had it): lift → the end
// of the first 0.5 s window at ≥ 1000 px and ≥ 75 % of the unlimited phase's median frame rate.
function recoverFullMs(timeline, liftT) {
  const fps = timeline.filter((r) => r.phase === 'free' && r.fps != null).map((r) => r.fps).sort((a, b) => a - b);
  const full = fps.length ? fps[Math.floor(fps.length / 2)] : 0;
  const lifted = timeline.filter((r) => r.phase === 'lifted');
  const r = lifted.find((x) => x.width >= 1000 && x.fps != null && x.fps >= 0.75 * full);
  return r ? Math.round((r.t - liftT) * 1000) : null;
}
const runs = [];
for (const r of rounds) {
  for (const f of readdirSync(join(dir, r)).filter((x) => /^bwe-.*\.json$/.test(x))) {
    const j = JSON.parse(readFileSync(join(dir, r, f), 'utf8'));
    const fig = { ...(j.figures || {}) };
    if (fig.recoverWidthMs === undefined && j.timeline) {
      // Older runs: recoverMs was the first sample ≥ 1000 px; the lift within the 0.5 s before
      // the first lifted window (at most 0.5 s early).
      fig.recoverWidthMs = fig.recoverMs;
      const lifted = j.timeline.find((x) => x.phase === 'lifted');
      fig.recoverMs = lifted ? recoverFullMs(j.timeline, lifted.t - 0.5) : null;
    }
    if (fig.lossFreeMs === undefined && j.timeline) {
      const lossy = j.timeline.filter((x) => x.phase === 'limited' && x.lossPct > 1);
      fig.lossFreeMs = lossy.length ? Math.round(lossy[lossy.length - 1].t * 1000) : 0;
    }
    runs.push({ round: r, target: j.target, ok: j.ok, failures: j.failures, ...fig });
  }
}
const nums = (v) => v.filter((x) => typeof x === 'number').sort((a, b) => a - b);
const median = (v) => {
  const s = nums(v);
  if (!s.length) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const range = (v) => {
  const s = nums(v);
  return s.length ? `${s[0]}–${s[s.length - 1]}` : '–';
};
// [figure, label, better: 'lower' | 'higher']
const figures = [
  ['adaptDownMs', 'adapt down: limit → first ≤ 800 px (ms)', 'lower'],
  ['stayDownMs', 'adapt down and stay until the lift (ms; runs that stayed)', 'lower'],
  ['lossFreeMs', 'limit → end of the last window losing > 1 % (ms)', 'lower'],
  ['recoverMs', 'recover: lift → ≥ 1000 px at ≥ 75 % of the unlimited frame rate (ms)', 'lower'],
  ['recoverWidthMs', 'lift → first sample ≥ 1000 px, any frame rate (ms)', null],
  ['lossPct', 'loss over the limited phase (%, inbound-rtp)', 'lower'],
  ['freezes', 'freezes: framesDecoded stalls > 1 s (count)', 'lower'],
  ['maxStallMs', 'longest framesDecoded stall after the limit (ms)', 'lower'],
  ['chromeFreezeCount', "Chromium's freezeCount after the limit", 'lower'],
  ['midShareSettled', 'share of samples at ~640 px, limit+10 s → lift', 'higher'],
  ['medianEstimateLimitedKbps', 'median estimate, limit+10 s → lift (kbit/s)', null],
  ['maxEstimateLimitedKbps', 'max estimate, limit+10 s → lift (kbit/s)', null],
  ['downlinkBwe', 'downlinkBwe notifications', null],
];
const table = figures.map(([key, label, better]) => {
  const row = { key, label, better };
  for (const t of ['ferrosfu', 'mediasoup']) {
    const v = runs.filter((r) => r.target === t).map((r) => r[key]);
    row[t] = { median: median(v), range: range(v), n: nums(v).length, runs: v.length };
  }
  const f = row.ferrosfu.median;
  const m = row.mediasoup.median;
  if (better && f != null && m != null) row.ferrosfuAtLeastAsGood = better === 'lower' ? f <= m : f >= m;
  else if (better && key === 'stayDownMs') row.ferrosfuAtLeastAsGood = row.ferrosfu.n >= row.mediasoup.n && (m == null || (f != null && f <= m));
  else if (better) row.ferrosfuAtLeastAsGood = f != null;
  return row;
});
writeFileSync(join(dir, 'results.json'), JSON.stringify({ runs, table }, null, 1));
const cell = (c) => `${c.median ?? '–'} (${c.range}; ${c.n}/${c.runs})`;
const w = Math.max(...table.map((r) => r.label.length));
const lines = [
  `${'figure'.padEnd(w)} | ferrosfu median (min–max; runs with a value) | mediasoup 3.27.1 | ferrosfu ≥ mediasoup`,
  ...table.map((r) => `${r.label.padEnd(w)} | ${cell(r.ferrosfu)} | ${cell(r.mediasoup)} | ${r.better ? (r.ferrosfuAtLeastAsGood ? 'yes' : 'NO') : ''}`),
  '',
  `runs passing every criterion of bwe.mjs: ferrosfu ${runs.filter((r) => r.target === 'ferrosfu' && r.ok).length}/${runs.filter((r) => r.target === 'ferrosfu').length}, `
    + `mediasoup ${runs.filter((r) => r.target === 'mediasoup' && r.ok).length}/${runs.filter((r) => r.target === 'mediasoup').length}`,
  '',
  'per run: round target adaptDownMs stayDownMs lossFreeMs recoverMs lossPct freezes maxStallMs midShare estimate(kbit/s) failures',
  ...runs.map((r) => `${r.round} ${r.target} ${r.adaptDownMs} ${r.stayDownMs} ${r.lossFreeMs} ${r.recoverMs} ${r.lossPct} ${r.freezes} ${r.maxStallMs} `
    + `${r.midShareSettled} ${r.medianEstimateLimitedKbps} ${(r.failures || []).map((x) => x.split('\n')[0]).join('; ') || '-'}`),
];
console.log(lines.join('\n'));
