// The report of scripts/bench-uplink: reads DIR/round*/uplink-TARGET[-busy].json (tests/browser/
// uplink.mjs) and prints, for the quiet and the busy machine, the median publisher estimate at
// every sampled point for ferrosfu and mediasoup side by side (kbit/s; the ratio ferrosfu ÷
// mediasoup; min–max over the rounds), then each run's figures at 1, 2, 5, 10 and 15 s.
//
//   node tests/browser/uplink-report.mjs DIR [--commit TEXT]

import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';

const dir = process.argv[2];
const ci = process.argv.indexOf('--commit');
const commit = ci > 0 ? process.argv[ci + 1] : 'unknown';
if (!dir) {
  console.error('usage: uplink-report.mjs DIR [--commit TEXT]');
  process.exit(2);
}

const runs = [];
for (const round of readdirSync(dir).filter((d) => d.startsWith('round')).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)))) {
  for (const f of readdirSync(join(dir, round)).filter((x) => /^uplink-.*\.json$/.test(x))) {
    const r = JSON.parse(readFileSync(join(dir, round, f), 'utf8'));
    runs.push({ round, ...r });
  }
}

const median = (v) => {
  const s = v.filter((x) => x != null).sort((a, b) => a - b);
  if (!s.length) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const kbps = (x) => (x == null ? '-' : String(Math.round(x / 1000)));
const pad = (s, n) => String(s).padStart(n);

const lines = [];
const out = (s = '') => lines.push(s);
out('bench: uplink (publisher availableOutgoingBitrate, Chromium, first 15 s)');
out(`commit: ${commit}`);
out(`date: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`);
out(`machine: Linux ${release()}; ${cpus().length} cores; ${cpus()[0] ? cpus()[0].model : '?'}`);
out('targets: ferrosfu (release, worker pinned to core 0) vs mediasoup 3.27.1 worker, built offline');
out('  against Debian 12 libs (/work/shared/anchors), driven by tests/browser/reference-server.mjs');
out('busy: two `node -e "for(;;){}"` at normal priority during the whole run (2-core machine)');
out('t = 0: the first sample with an estimate (ICE + DTLS up); then every 0.5 s, timed in the page');
out('');

for (const busy of [false, true]) {
  const sel = (target) => runs.filter((r) => r.target === target && !!r.busy === busy && r.ok);
  const f = sel('ferrosfu');
  const m = sel('mediasoup');
  const failed = runs.filter((r) => !!r.busy === busy && !r.ok).map((r) => `${r.round} ${r.target}: ${(r.error || '').split('\n')[0]}`);
  out(`== ${busy ? 'busy' : 'quiet'}: ${f.length} ferrosfu runs, ${m.length} mediasoup runs (median kbit/s [min-max])`);
  for (const x of failed) out(`   failed: ${x}`);
  if (!f.length && !m.length) {
    out();
    continue;
  }
  const at = (rs, ms) => rs.map((r) => (r.points.find((p) => p.ms === ms) || {}).estimate ?? null);
  const grid = [...new Set([...f, ...m].flatMap((r) => r.points.map((p) => p.ms)))].sort((a, b) => a - b);
  out(`${pad('t s', 5)} ${pad('ferrosfu', 9)} ${pad('[min-max]', 13)} ${pad('mediasoup', 9)} ${pad('[min-max]', 13)} ${pad('f/m', 5)}`);
  let behind = [];
  for (const ms of grid) {
    const fv = at(f, ms).filter((x) => x != null);
    const mv = at(m, ms).filter((x) => x != null);
    const fm = median(fv);
    const mm = median(mv);
    const range = (v) => (v.length ? `[${kbps(Math.min(...v))}-${kbps(Math.max(...v))}]` : '');
    const ratio = fm != null && mm ? (fm / mm).toFixed(2) : '-';
    if (fm != null && mm != null && fm < mm) behind.push((ms / 1000).toFixed(1));
    out(`${pad((ms / 1000).toFixed(1), 5)} ${pad(kbps(fm), 9)} ${pad(range(fv), 13)} ${pad(kbps(mm), 9)} ${pad(range(mv), 13)} ${pad(ratio, 5)}`);
  }
  out(`ferrosfu's median below mediasoup's at: ${behind.length ? behind.join(', ') + ' s' : 'no point'}`);
  out('per run (kbit/s at 1 / 2 / 5 / 10 / 15 s; first estimate after ready; loadavg at start; top width sent at 15 s):');
  for (const r of [...f, ...m]) {
    const v = [1000, 2000, 5000, 10000, 15000].map((ms) => kbps((r.points.find((p) => p.ms === ms) || {}).estimate));
    const last = r.points[r.points.length - 1] || {};
    out(`   ${r.round} ${pad(r.target, 9)}: ${v.map((x) => pad(x, 5)).join(' ')}  (${r.firstEstimateMs} ms; load ${r.load && r.load.start ? r.load.start[0] : '?'}; ${last.widths ? Math.max(0, ...last.widths) : '?'} px)`);
  }
  out();
}
if (!runs.length) out(`no runs found under ${dir}${existsSync(dir) ? '' : ' (missing)'}`);
console.log(lines.join('\n'));
