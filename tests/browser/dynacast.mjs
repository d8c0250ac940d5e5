// Dynacast in a real browser: what the publisher's upstream costs when its only subscriber
// watches the lowest layer, with and without dynacast, and how fast the top layer comes back.
//
// Per mode (`on`: the demo app as it is; `off`: its URL has `dynacast=0`), in a fresh Chromium
// against one supervisor: Alice opens the demo app (fake camera 1280×720 at 15 fps, VP8
// simulcast, 3 encodings) and Bob joins the room only to watch (his getUserMedia is made to fail,
// so the 2 cores encode one camera). Once Bob decodes Alice's top layer (≥ 1000 px), Alice's
// upstream is sampled for --before-ms; then Bob clicks "Low" on Alice's tile (the quality picker
// → setConsumerPreferredLayers spatial 0) and, every second for --measure-ms, Alice's
// outbound-rtp video (bytesSent per encoding, active, width, fps), her dynacast state
// (window.ferrosfu.dynacast) and Bob's decoded width are recorded. Then Bob clicks "High": the
// time until Bob's video is ≥ 1000 px wide again (--resume-ms deadline), and on the way when
// Alice heard `producerLayersNeeded` with the top layer and when her top encoding sent frames.
//
// Figures per mode: `beforeKbps` (before the click), `windowKbps` (the whole --measure-ms after
// it), `steadyKbps` (from --steady-from-ms after it to the end: dynacast stops layers after 3 s
// unneeded, so this is what it saves for good), each {total: outbound-rtp video bytesSent summed
// over the encodings, per: by rid, rtx: the retransmitted bytes among them (Chrome's RTX payload
// padding, which probes its estimate up towards the top layer), wire: the send transport's bytes};
// `ratio` = on.steadyKbps.total ÷ off.steadyKbps.total (`wireRatio` likewise). The timeline of
// every run goes to DIR/dynacast.json.
//
//   unshare -n sh -c 'ip link set lo up && exec node tests/browser/dynacast.mjs \
//     --supervisor target/release/ferrosfu [--artifacts DIR] [--modes on,off]'
//
// Prints one JSON line (the summary; `ok` false with `error` when a run could not be made: the
// browser, the server, or a publisher that never sent its top layer); exit 0 / 1.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startSupervisor as start } from './harness.mjs';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const supervisorBin = arg('supervisor');
const artifacts = arg('artifacts', 'tests/artifacts/browser/dynacast');
const chromiumBin = arg('chromium', '/usr/bin/chromium');
const modes = arg('modes', 'on,off').split(',');
const readyMs = Number(arg('ready-ms', '60000'));
const beforeMs = Number(arg('before-ms', '5000'));
const measureMs = Number(arg('measure-ms', '20000'));
const steadyFromMs = Number(arg('steady-from-ms', '6000'));
const resumeMs = Number(arg('resume-ms', '30000'));
if (!supervisorBin || modes.some((m) => m !== 'on' && m !== 'off')) {
  console.error('usage: dynacast.mjs --supervisor PATH [--artifacts DIR] [--chromium PATH] [--modes on,off]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const logs = [];
const children = [];
let browser;


const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, ms) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last && last.ok) return last;
    await sleep(500);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}: ${JSON.stringify(last)}`);
}

// One sample of both pages: Alice's outbound video per encoding and dynacast state, Bob's
// decoded width of Alice's video. `t`: Date.now().
async function sample(alice, bob) {
  const [a, b] = await Promise.all([
    alice.evaluate(async () => ({ send: await window.ferrosfu.sendStats(), dynacast: window.ferrosfu.dynacast })),
    bob.evaluate(async () => (await window.ferrosfu.stats()).filter((s) => s.kind === 'video')),
  ]);
  return {
    t: Date.now(),
    bwe: a.send.availableOutgoingBitrate,
    wire: a.send.transportBytesSent,
    enc: a.send.video.map((e) => ({ rid: e.rid, bytes: e.bytesSent, rtx: e.retransmittedBytesSent, active: e.active, width: e.width,
      fps: e.fps, frames: e.framesEncoded, limit: e.qualityLimitationReason })),
    dynacast: { needed: a.dynacast.needed, active: a.dynacast.active },
    bobWidth: b.length ? b[0].frameWidth : 0,
  };
}

// kbit/s of Alice's video between two samples: `total` (outbound-rtp bytesSent summed over the
// encodings), `per` rid, `rtx` (of those, retransmissions and RTX padding per rid) and `wire`
// (the send transport's candidate pair: headers, audio, RTCP and padding included).
function rates(a, b) {
  const secs = (b.t - a.t) / 1000;
  const kbps = (bytes) => Math.round((bytes * 8) / 1000 / secs);
  const per = {};
  const rtx = {};
  let total = 0;
  for (const e of b.enc) {
    const prev = a.enc.find((x) => x.rid === e.rid) || { bytes: 0, rtx: 0 };
    per[e.rid] = kbps(e.bytes - prev.bytes);
    rtx[e.rid] = kbps(e.rtx - prev.rtx);
    total += e.bytes - prev.bytes;
  }
  return { total: kbps(total), per, rtx, wire: kbps(b.wire - a.wire) };
}

// Samples every `everyMs` for `ms`; returns them (the first taken at once).
async function record(alice, bob, ms, everyMs = 1000) {
  const out = [await sample(alice, bob)];
  const end = out[0].t + ms;
  while (Date.now() < end) {
    await sleep(Math.max(0, Math.min(everyMs, end - Date.now()) - 5));
    out.push(await sample(alice, bob));
  }
  return out;
}

// Mean kbit/s over the samples from `fromT` on (total and per rid).
function mean(samples, fromT) {
  const s = samples.filter((x) => x.t >= fromT);
  if (s.length < 2) return null;
  return rates(s[0], s[s.length - 1]);
}

function timeline(samples, t0) {
  return samples.slice(1).map((s, i) => {
    const r = rates(samples[i], s);
    return { ms: s.t - t0, kbps: r.total, perKbps: r.per, rtxKbps: r.rtx, wireKbps: r.wire, bweKbps: Math.round((s.bwe || 0) / 1000),
      active: s.enc.map((e) => e.active), widths: s.enc.map((e) => e.width), fps: s.enc.map((e) => e.fps),
      limits: s.enc.map((e) => e.limit), dynacast: s.dynacast, bobWidth: s.bobWidth };
  });
}

// Clicks a picker button of Alice's tile at Bob; returns Date.now() of the click.
async function pick(bob, tileSel, label) {
  const t = Date.now();
  await bob.click(`${tileSel} .picker button:text-is("${label}")`);
  return t;
}

// producerLayersNeeded Alice heard since node time `t0`: [{ms, spatialLayers}].
async function layersNeeded(alice, t0) {
  const [perfNow, ev] = await alice.evaluate(() => [performance.now(),
    window.ferrosfu.events.filter((e) => e.method === 'producerLayersNeeded').map((e) => [e.t, e.data.spatialLayers])]);
  const offset = Date.now() - perfNow; // Alice's performance.now() → Date.now()
  return ev.map(([t, l]) => ({ ms: Math.round(t + offset - t0), spatialLayers: l })).filter((e) => e.ms >= -60000);
}

async function runMode(addr, mode) {
  browser = await chromium.launch({
    executablePath: chromiumBin,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 960, height: 600 } });
  await context.grantPermissions(['camera', 'microphone']);
  const room = `dynacast-${mode}-${Math.random().toString(16).slice(2, 10)}`;
  const query = `roomId=${room}&autojoin=1&fps=15&p2p=0${mode === 'off' ? '&dynacast=0' : ''}`;
  const pages = {};
  for (const name of ['alice', 'bob']) {
    const page = await context.newPage();
    page.on('console', (m) => logs.push(`[${mode} ${name} console.${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`[${mode} ${name} pageerror] ${e.message}`));
    if (name === 'bob') {
      // Bob only watches: one camera encoder on the machine, the one measured.
      await page.addInitScript(() => {
        navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('watching only', 'NotFoundError'));
      });
    }
    await page.goto(`http://${addr}/app/?${query}&displayName=${name}`);
    pages[name] = page;
    await waitFor(`${name} joined`, async () => ({
      ok: await page.evaluate(([n]) => window.ferrosfu.state === 'joined' && window.ferrosfu.producing() === n,
        [name === 'alice' ? 2 : 0]),
    }), 20000);
  }
  const { alice, bob } = pages;
  const out = { mode };
  out.dynacastEnabled = await alice.evaluate(() => window.ferrosfu.dynacast.enabled);
  const alicePeer = await alice.evaluate(() => window.ferrosfu.peerId);
  const tileSel = `#tile-${alicePeer}`;
  const video = await waitFor("Bob's consumer of Alice's video", async () => {
    const v = (await bob.evaluate(() => window.ferrosfu.consumers())).find((c) => c.kind === 'video');
    return { ok: Boolean(v), v };
  }, 20000);
  out.consumerType = video.v.type;
  if (out.consumerType !== 'simulcast') throw new Error(`${mode}: Bob's consumer is '${out.consumerType}'`);

  // Ready: Alice sends her top encoding ≥ 1000 px and Bob decodes it.
  const t00 = Date.now();
  const top = await bob.evaluate(([p, ms]) => window.ferrosfu.waitVideoWidth(p, 1000, 1e5, ms), [alicePeer, readyMs]);
  if (!top.ok) {
    const s = await sample(alice, bob);
    throw new Error(`${mode}: Bob never decoded Alice's top layer (≥ 1000 px) in ${readyMs} ms `
      + `(width ${top.width}; Alice sends ${JSON.stringify(s.enc)}, estimate ${s.bwe})`);
  }
  out.readyMs = Date.now() - t00;
  const before = await record(alice, bob, beforeMs);
  out.beforeKbps = mean(before, 0);

  // Bob picks Low.
  const tLow = await pick(bob, tileSel, 'Low');
  const afterLow = await record(alice, bob, measureMs);
  out.low = {
    windowKbps: mean(afterLow, 0),
    steadyKbps: mean(afterLow, tLow + steadyFromMs),
    layersNeeded: await layersNeeded(alice, tLow),
    dynacast: afterLow[afterLow.length - 1].dynacast,
    activeStats: afterLow[afterLow.length - 1].enc.map((e) => e.active),
    bobWidth: afterLow[afterLow.length - 1].bobWidth,
  };
  // When Alice's top encodings stopped sending (first second with no bytes from r1 and r2).
  const tl = timeline(afterLow, tLow);
  const quiet = tl.find((x) => Object.entries(x.perKbps).every(([rid, k]) => rid === 'r0' || k === 0));
  out.low.stoppedAtMs = quiet ? quiet.ms : null;

  // Bob picks High: the top layer must come back.
  const waiting = bob.evaluate(([p, ms]) => window.ferrosfu.waitVideoWidth(p, 1000, 1e5, ms), [alicePeer, resumeMs]);
  const tHigh = await pick(bob, tileSel, 'High');
  const during = [];
  let done = false;
  const sampling = (async () => {
    let prev = await sample(alice, bob);
    during.push(prev);
    while (!done) {
      await sleep(250);
      prev = await sample(alice, bob);
      during.push(prev);
    }
  })();
  const r = await waiting;
  const resolvedAt = Date.now();
  await sleep(2000); // a little of the top layer flowing, for the record
  done = true;
  await sampling;
  const topRid = (s) => s.enc[s.enc.length - 1];
  const topFlowing = during.find((s, i) => i > 0 && topRid(s).frames > topRid(during[i - 1]).frames);
  const needed = (await layersNeeded(alice, tHigh)).filter((e) => e.ms >= 0);
  const all = needed.find((e) => e.spatialLayers.length >= 3);
  out.high = {
    ok: r.ok,
    // Bob's video ≥ 1000 px after the click (Date.now() of the resolve, ≤ 50 ms late).
    resumeMs: r.ok ? resolvedAt - tHigh : null,
    width: r.width,
    layersNeededMs: all ? all.ms : null,
    topEncodingFramesMs: topFlowing ? topFlowing.t - tHigh : null,
    layersNeeded: needed,
    dynacast: during[during.length - 1].dynacast,
  };
  out.timeline = {
    before: timeline(before, tLow),
    low: tl,
    high: timeline(during, tHigh),
  };
  await bob.screenshot({ path: join(artifacts, `bob-high-${mode}.png`) }).catch(() => {});
  await browser.close().catch(() => {});
  browser = null;
  return out;
}

async function main() {
  const addr = await start({ supervisorBin, artifacts, logs, children });
  const runs = {};
  for (const mode of modes) runs[mode] = await runMode(addr, mode);
  const result = { ok: true, steadyFromMs, measureMs, runs: {} };
  for (const [mode, r] of Object.entries(runs)) {
    const { timeline: _t, ...summary } = r;
    result.runs[mode] = summary;
  }
  if (runs.on && runs.off && runs.off.low.steadyKbps?.total) {
    result.ratio = Number((runs.on.low.steadyKbps.total / runs.off.low.steadyKbps.total).toFixed(3));
    result.windowRatio = Number((runs.on.low.windowKbps.total / runs.off.low.windowKbps.total).toFixed(3));
    result.wireRatio = Number((runs.on.low.steadyKbps.wire / runs.off.low.steadyKbps.wire).toFixed(3));
  }
  writeFileSync(join(artifacts, 'dynacast.json'), `${JSON.stringify({ ...result, runs }, null, 1)}\n`);
  return result;
}

let code = 0;
try {
  console.log(JSON.stringify(await main()));
} catch (e) {
  code = 1;
  console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) }));
  console.error(logs.slice(-200).join('\n'));
} finally {
  if (browser) await browser.close().catch(() => {});
  for (const c of children) c.kill('SIGKILL');
}
process.exit(code);
