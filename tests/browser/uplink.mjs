// The publisher's uplink bandwidth estimate in a real browser over the first seconds, against
// ferrosfu or the stock mediasoup 3.27.1 reference server (reference-server.mjs): what Chromium's
// send-side estimator (GoogCC, fed only by the server's transport-wide-cc feedback) makes of it.
//
//   unshare -n sh -c 'ip link set lo up && exec node tests/browser/uplink.mjs \
//     --target ferrosfu --supervisor target/release/ferrosfu --artifacts tests/artifacts/uplink'
//   unshare -n sh -c 'ip link set lo up && exec node tests/browser/uplink.mjs \
//     --target mediasoup --busy --artifacts tests/artifacts/uplink'
//
// Options: --target ferrosfu|mediasoup, --supervisor PATH (ferrosfu), --worker-bin PATH
// (mediasoup; default $MEDIASOUP_WORKER_BIN, else the anchor binary), --artifacts DIR,
// --chromium PATH, --fps N (camera, default 15 as layers.mjs), --duration-ms (15000),
// --interval-ms (500), --busy (two spinning processes at normal priority, one per core of a
// 2-core machine, from before the server starts to the end: the machine of a loaded CI run),
// --busy-procs N (instead of two), --tag TEXT (copied into the result), --chrome-log (Chromium's
// GoogCC logging into DIR/uplink-TARGET[-busy]-chrome.log: probe results, estimates).
//
// One headless Chromium page publishes its fake camera (1280×720, VP8, mediasoup-demo's 3
// simulcast encodings, page/layers-page.js role `pub`) and microphone; nobody subscribes. From
// the first moment the send transport's nominated candidate pair has an
// `availableOutgoingBitrate` (t = 0: ICE and DTLS are up and the estimator runs), the page reads
// its stats every --interval-ms (timed in the page, against t = 0) up to --duration-ms: the
// estimate, the bytes sent (→ the send rate over the last interval) and the widths of the
// encodings that send. The server's view of the video producer comes last (getProducerStats).
//
// Prints one JSON line (also DIR/uplink-TARGET[-busy].json): {ok, target, busy, points: [{ms,
// estimate, sendKbps, widths}], firstEstimateMs (from the page being ready to t = 0), load
// (loadavg at start and end), ...}; exit 0 when the samples were taken, 1 otherwise, 2 on bad
// usage. It asserts nothing about the figures: `scripts/bench uplink` compares the targets.

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { servePage, startServer } from './harness.mjs';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}
const target = arg('target', 'ferrosfu');
const artifacts = resolve(arg('artifacts', 'tests/artifacts/uplink'));
const supervisorBin = arg('supervisor');
const chromiumBin = arg('chromium', '/usr/bin/chromium');
const fps = Number(arg('fps', '15'));
const durationMs = Number(arg('duration-ms', '15000'));
const intervalMs = Number(arg('interval-ms', '500'));
const busy = process.argv.includes('--busy');
const busyProcs = Number(arg('busy-procs', '2'));
const chromeLog = process.argv.includes('--chrome-log');
const chromeLines = [];
const workerBin = arg('worker-bin', process.env.MEDIASOUP_WORKER_BIN || '/work/shared/anchors/mediasoup-worker-3.27.1');
if (!['ferrosfu', 'mediasoup'].includes(target) || (target === 'ferrosfu' && !supervisorBin)) {
  console.error('usage: uplink.mjs --target ferrosfu|mediasoup [--supervisor PATH] [--busy] [--artifacts DIR]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const name = `uplink-${target}${busy ? '-busy' : ''}`;

const logs = [];
const children = [];
let browser;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Two processes that spin at normal priority: each takes a core from whatever else runs there.
function startSpinners() {
  for (let i = 0; i < busyProcs; i++) {
    const c = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
    children.push(c);
  }
}



// In the page: wait for the first estimate (t = 0), then sample every `iv` ms until `dur`.
// Each sample is taken when its time comes (a late timer does not shift the later ones).
async function sampleInPage([iv, dur]) {
  const stats = async () => {
    const s = await window.t.sendStats();
    const bytes = s.encodings.reduce((a, e) => a + (e.bytesSent || 0), 0);
    const widths = s.encodings.filter((e) => e.width).map((e) => e.width);
    return { estimate: s.availableOutgoingBitrate, bytes, widths };
  };
  const ready = performance.now();
  let first;
  for (;;) {
    first = await stats();
    if (first.estimate) break;
    if (performance.now() - ready > 30000) return { error: 'no availableOutgoingBitrate within 30 s' };
    await new Promise((r) => setTimeout(r, 20));
  }
  const t0 = performance.now();
  const points = [{ ms: 0, at: 0, estimate: first.estimate, sendKbps: null, widths: first.widths }];
  let prev = { at: 0, bytes: first.bytes };
  for (let k = 1; k * iv <= dur; k++) {
    const wait = t0 + k * iv - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const at = performance.now() - t0;
    const s = await stats();
    const sendKbps = at > prev.at ? Math.round((8 * (s.bytes - prev.bytes)) / (at - prev.at)) : null;
    points.push({ ms: k * iv, at: Math.round(at), estimate: s.estimate, sendKbps, widths: s.widths });
    prev = { at, bytes: s.bytes };
  }
  return { firstEstimateMs: Math.round(t0 - ready), points };
}

async function main(result) {
  if (busy) startSpinners();
  result.load = { start: loadavg().map((x) => Math.round(x * 100) / 100) };
  const ws = await startServer({
    target, supervisorBin, workerBin, artifacts, db: 'ferrosfu-uplink.db', logs, children,
  });
  const { server: pageServer, base } = await servePage('uplink');
  children.push({ kill: () => pageServer.close() });
  browser = await chromium.launch({
    executablePath: chromiumBin,
    ...(chromeLog ? { logger: { isEnabled: (n) => n === 'browser', log: (n, sev, msg) => chromeLines.push(String(msg)) } } : {}),
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
      // --chrome-log: GoogCC's own account (probe results, delay-based and loss-based estimates).
      ...(chromeLog ? ['--enable-logging=stderr', '--v=0',
        '--vmodule=*probe*=3,*goog_cc*=3,*delay_based*=3,*aimd*=3,*loss_based*=3,*send_side_bandwidth*=3,*transport_feedback*=3,*trendline*=3'] : []),
    ],
  });
  const context = await browser.newContext({ viewport: { width: 640, height: 360 } });
  await context.grantPermissions(['camera', 'microphone']);
  const page = await context.newPage();
  page.on('console', (m) => logs.push(`[page console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[page pageerror] ${e.message}`));
  const room = `uplink-${Math.random().toString(16).slice(2, 10)}`;
  const q = new URLSearchParams({ ws, roomId: room, peerId: `pub-${room}`, name: 'pub', role: 'pub', codec: 'vp8', fps: String(fps) });
  await page.goto(`${base}?${q}`);
  await page.waitForFunction(() => ['ready', 'failed'].includes(window.t && window.t.state), null, { timeout: 30000 });
  const err = await page.evaluate(() => window.t.error);
  if (err) throw new Error(`publisher: ${err}`);
  const s = await page.evaluate(sampleInPage, [intervalMs, durationMs]);
  if (s.error) throw new Error(s.error);
  Object.assign(result, s);
  result.producerStats = await page.evaluate(() => window.t.request('getProducerStats', { producerId: window.t.producers.video.id }))
    .catch((e) => String(e));
  result.load.end = loadavg().map((x) => Math.round(x * 100) / 100);
}

const result = { ok: false, target, busy, fps, intervalMs, durationMs, tag: arg('tag') };
let code = 1;
try {
  await main(result);
  result.ok = Array.isArray(result.points) && result.points.length > 0;
  code = result.ok ? 0 : 1;
} catch (e) {
  result.error = String(e && e.stack || e);
}
const line = JSON.stringify(result);
writeFileSync(join(artifacts, `${name}.json`), `${line}\n`);
writeFileSync(join(artifacts, `${name}.log`), `${logs.join('\n')}\n`);
if (chromeLog) writeFileSync(join(artifacts, `${name}-chrome.log`), `${chromeLines.join('\n')}\n`);
console.log(line);
if (!result.ok) console.error(logs.filter((l) => !l.includes('"level":"DEBUG"')).slice(-40).join('\n'));
if (browser) await browser.close().catch(() => {});
for (const c of children) {
  try { c.kill('SIGTERM'); } catch { /* gone */ }
}
await sleep(300);
for (const c of children) {
  try { if (c.exitCode === null) c.kill('SIGKILL'); } catch { /* gone */ }
}
process.exit(code);
