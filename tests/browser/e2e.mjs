// Browser end-to-end test of the demo app: two headless Chromium pages (fake camera and
// microphone) join the same room through the real supervisor; each must decode the other's
// video and receive its audio; then one leaves and the other must get `peerClosed`.
//
// Simulcast, as the app publishes by default (1280×720 camera at 15 fps, VP8, mediasoup-demo's 3
// encodings): each producer has 3 encodings (rids) and the browser sends ≥ 2 of them
// (outbound-rtp); Bob's consumer of Alice's video is `simulcast`; clicking "Low" on Alice's tile
// at Bob makes the decoded width ≤ 400 px (the video's `resize` event, 30 s deadline), "High"
// ≥ 1000 px — unless Alice's browser did not send its top encoding at ≥ 1000 px for 30 frames
// in that time (its encoder or bandwidth estimate), which is reported (`high.senderTop`: frames,
// since when it flowed, the estimate in kbps every 500 ms), not failed. Tiles show score bars, layers and resolution; a
// page that gets `activeSpeaker` must outline that peer's tile. Screenshots (tests/artifacts/
// browser/): alice.png, bob.png (grid with badges after the switches), bob-low.png (after
// "Low"), alice-9-tiles.png (the grid with 7 extra tiles showing Bob's video: all 9 must fit the
// 960×600 window), alice-after-leave.png.
//
// Runs inside a loopback-only network namespace (Chromium then gathers 127.0.0.1 candidates):
//   unshare -n sh -c 'ip link set lo up; exec node tests/browser/e2e.mjs --supervisor PATH --artifacts DIR'
// Prints one JSON line with the result; exit 0 on success, 1 on failure.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { pageWait, startSupervisor as start } from './harness.mjs';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const supervisorBin = arg('supervisor');
const artifacts = arg('artifacts', 'tests/artifacts/browser');
const chromiumBin = arg('chromium', '/usr/bin/chromium');
const timeoutMs = Number(arg('timeout-ms', '45000'));
const switchMs = Number(arg('switch-ms', '30000'));
// Workers of the supervisor and its per-worker consumer limit: with `--worker-cores 0,1
// --worker-max-consumers 1` Alice's room fills its worker and Bob is placed on the other one,
// so every stream crosses a pipe between the workers (the result's `workers` says where the
// consumers are).
const workerCores = arg('worker-cores', '0');
const maxConsumers = arg('worker-max-consumers', null);
// `--cluster`: two nodes clustered through a redis-server started here (inside the test's
// network namespace, on 127.0.0.1:46379, no persistence): Alice on node A (core 0), Bob on node
// B (core 1).
const clustered = process.argv.includes('--cluster');
if (!supervisorBin) {
  console.error('usage: e2e.mjs --supervisor PATH [--artifacts DIR] [--chromium PATH] [--worker-cores LIST] [--worker-max-consumers N]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const logs = [];
const children = [];
let browser;


const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, ms = timeoutMs) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last && last.ok) return last;
    await sleep(500);
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
}

// Media flowing into a page: a remote video whose framesDecoded grows between two samples and a
// remote audio whose bytesReceived grows.
async function mediaFlows(page) {
  const a = await page.evaluate(() => window.ferrosfu.stats());
  await sleep(1000);
  const b = await page.evaluate(() => window.ferrosfu.stats());
  const sum = (list, kind, key) => list.filter((s) => s.kind === kind).reduce((n, s) => n + s[key], 0);
  const v0 = sum(a, 'video', 'framesDecoded');
  const v1 = sum(b, 'video', 'framesDecoded');
  const a0 = sum(a, 'audio', 'bytesReceived');
  const a1 = sum(b, 'audio', 'bytesReceived');
  const ok = v1 > v0 && v0 > 0 && a1 > a0;
  // When media does not flow, say why: transport states, consumers, their stats.
  const diag = ok ? undefined : await page.evaluate(() => window.ferrosfu.diag());
  return { ok, framesDecoded: v1, audioBytes: a1, streams: b.length, diag };
}


// The publisher's encodings, then Bob picking Low and High on Alice's tile.
async function simulcast(pages) {
  const out = {};
  // Each camera producer was announced with 3 encodings and the browser sends ≥ 2 of them.
  for (const [name, page] of Object.entries(pages)) {
    let last;
    await waitFor(`${name} sending ≥ 2 video encodings`, async () => {
      last = await page.evaluate(() => window.ferrosfu.sendStats());
      return { ok: last.video.filter((e) => e.bytesSent > 0).length >= 2 && last.producedEncodings.length >= 3, last };
    }, 20000);
    out[`${name}Encodings`] = { produced: last.producedEncodings, codec: last.codec,
      sending: last.video.map(({ rid, width, height, fps }) => ({ rid, width, height, fps })) };
  }
  const alice = await pages.alice.evaluate(() => window.ferrosfu.peerId);
  const bob = pages.bob;
  const video = (await bob.evaluate(() => window.ferrosfu.consumers())).find((c) => c.kind === 'video');
  out.consumerType = video && video.type;
  if (!video || video.type !== 'simulcast') {
    throw new Error(`Bob's consumer of Alice's video is ${video ? `'${video.type}'` : 'missing'}, not 'simulcast'`);
  }
  const tileSel = `#tile-${alice}`;
  const picker = await bob.$$eval(`${tileSel} .picker button`, (bs) => bs.map((b) => b.textContent));
  out.picker = picker;
  if (picker.join() !== 'Low,Med,High') throw new Error(`Alice's tile at Bob has picker ${JSON.stringify(picker)}`);

  // At its default preference (the highest layer) Bob gets more than the lowest encoding first,
  // so that "Low" changes something.
  const initial = await bob.evaluate(([p, ms]) => window.ferrosfu.waitVideoWidth(p, 401, 1e5, ms), [alice, switchMs]);
  out.initial = { ok: initial.ok, ms: initial.ms, width: initial.width };
  if (!initial.ok) {
    throw new Error(`Bob never decoded Alice's video wider than 400 px at the default preference (${switchMs} ms): ${JSON.stringify(out)}`);
  }

  // Clicks a quality button on Alice's tile at Bob; resolves when Bob's video is lo..hi px wide
  // (or at the deadline), all times in ms since the click. Alice's top encoding is sampled every
  // 500 ms meanwhile (and for 1.5 s after).
  const pickLayer = async (label, spatial, lo, hi) => {
    const button = `${tileSel} .picker button:text-is("${label}")`;
    await bob.$eval(button, (b, [p, l, h, ms]) => {
      window.e2ePick = {
        click: new Promise((res) => b.addEventListener('click', () => res(performance.now()), { once: true })),
        width: window.ferrosfu.waitVideoWidth(p, l, h, ms),
      };
    }, [alice, lo, hi, switchMs]);
    const sender = [];
    let waiting = true;
    const clickAt = Date.now();
    const sampling = (async () => {
      for (let after = 0; after < 3; after += waiting ? 0 : 1) {
        const s = await pages.alice.evaluate(() => window.ferrosfu.sendStats()).catch(() => null);
        const e = s && (s.video.find((x) => x.rid === 'r2') || s.video[s.video.length - 1]);
        if (e) sender.push({ ms: Date.now() - clickAt, frames: e.framesEncoded, width: e.width, bytes: e.bytesSent,
          fps: e.fps, bwe: s.availableOutgoingBitrate, limit: e.qualityLimitationReason });
        await sleep(500);
      }
    })();
    await bob.click(button);
    const [t0, r] = await bob.evaluate(() => Promise.all([window.e2ePick.click, window.e2ePick.width]));
    waiting = false;
    await sampling;
    const since = (at) => Math.round(at - t0);
    // consumerLayersChanged for that spatial layer (it may trail the first frame a little).
    const n = await pageWait(bob, ([from, s]) => {
      const e = window.ferrosfu.events.find((x) => x.t >= from && x.method === 'consumerLayersChanged' && x.data.spatialLayer === s);
      return e ? { at: e.t, spatialLayer: e.data.spatialLayer, temporalLayer: e.data.temporalLayer } : null;
    }, [t0, spatial], r.ok ? 5000 : 1000);
    const t = (await bob.evaluate(() => window.ferrosfu.tiles())).find((x) => x.peerId === alice);
    // Alice's top encoding around the wait: frames encoded at ≥ 1000 px during it, and since
    // when it flowed (first 500 ms sample with ≥ 3 new frames at that width; ms since the click).
    const during = sender.filter((x) => x.ms <= since(r.at) + 500);
    const first = during[0] || {};
    const last = during[during.length - 1] || {};
    const flowing = sender.find((x, i) => i > 0 && x.width >= 1000 && x.frames - sender[i - 1].frames >= 3);
    const top = { width: last.width, framesDuring: (last.frames || 0) - (first.frames || 0), fps: last.fps,
      flowingAtMs: flowing ? flowing.ms : null, bweKbps: sender.map((x) => Math.round((x.bwe || 0) / 1000)),
      limits: [...new Set(sender.map((x) => x.limit))] };
    return { ok: r.ok, ms: since(r.at), width: r.width, height: r.height,
      widths: r.widths.map(([at, w]) => [since(at), w]),
      layersChanged: n ? { ms: since(n.at), spatialLayer: n.spatialLayer, temporalLayer: n.temporalLayer } : null,
      senderTop: top, tile: { layers: t.layers, resolution: t.resolution, preferred: t.preferred, score: t.score } };
  };

  out.low = await pickLayer('Low', 0, 0, 400);
  delete out.low.senderTop;
  await bob.screenshot({ path: join(artifacts, 'bob-low.png') });
  if (!out.low.ok) {
    throw new Error(`"Low" on Alice's tile: width still ${out.low.width} px after ${switchMs} ms (want ≤ 400): ${JSON.stringify(out)}`);
  }
  out.high = await pickLayer('High', 2, 1000, 1e5);
  // Alice's encoder sent its top encoding at ≥ 1000 px for ≥ 2 s of frames: Bob must get it.
  const senderReached = out.high.senderTop.width >= 1000 && out.high.senderTop.framesDuring >= 30;
  if (!out.high.ok && senderReached) {
    throw new Error(`"High" on Alice's tile: Alice sent ${out.high.senderTop.width} px but Bob decoded ${out.high.width} px after ${switchMs} ms: ${JSON.stringify(out)}`);
  }
  if (!out.high.ok) {
    out.high.note = `Alice's browser did not send its top encoding at ≥ 1000 px for 30 frames within ${switchMs} ms `
      + `(quality limited by: ${out.high.senderTop.limits.join(', ')}): not a server failure`;
    out.high.producerStats = await pages.alice.evaluate(() => window.ferrosfu.producerStats()).catch((e) => String(e));
  }
  // Every consumerLayersChanged Bob got for Alice's video: [ms since the offer, spatial, temporal].
  out.layersChanged = await bob.evaluate((id) => {
    const ev = window.ferrosfu.events;
    const offer = ev.find((e) => e.method === 'newConsumer' && e.data.id === id);
    return ev.filter((e) => e.method === 'consumerLayersChanged' && e.data.consumerId === id)
      .map((e) => [Math.round(e.t - offer.t), e.data.spatialLayer, e.data.temporalLayer]);
  }, video.id);
  return out;
}

// activeSpeaker as each page saw it; the tile outlined must be the last one named.
async function activeSpeaker(pages) {
  const out = {};
  for (const [name, page] of Object.entries(pages)) {
    const r = await page.evaluate(() => {
      const ev = window.ferrosfu.events.filter((e) => e.method === 'activeSpeaker');
      const last = ev[ev.length - 1];
      const want = last && last.data.peerId ? (last.data.peerId === window.ferrosfu.peerId ? 'me' : last.data.peerId) : null;
      const lit = Array.from(document.querySelectorAll('.tile.speaking'), (t) => t.dataset.peerId);
      return { events: ev.length, named: ev.filter((e) => e.data.peerId).length, last: want, outlined: lit };
    });
    out[name] = r;
    if (r.events && JSON.stringify(r.outlined) !== JSON.stringify(r.last ? [r.last] : [])) {
      throw new Error(`${name}: last activeSpeaker ${r.last}, tiles outlined ${JSON.stringify(r.outlined)}`);
    }
  }
  return out;
}

// 9 tiles at once: 7 copies of Bob's tile (his video) beside Alice's two; every tile must be
// inside the 960×600 window and at least 160 px wide. The copies are removed afterwards.
async function nineTiles(page) {
  const r = await page.evaluate(async () => {
    const grid = document.getElementById('tiles');
    const src = grid.querySelector('.tile:not(.me)');
    for (let i = 1; i <= 7; i++) {
      const c = src.cloneNode(true);
      c.id = `tile-layout-${i}`;
      c.dataset.peerId = `layout-${i}`;
      c.classList.add('layout-copy');
      c.classList.remove('speaking'); // the copies are nobody
      c.querySelectorAll('audio').forEach((a) => a.remove());
      c.querySelector('.name').textContent = `copy ${i}`;
      const v = c.querySelector('video');
      v.srcObject = src.querySelector('video').srcObject;
      v.play().catch(() => {});
      grid.append(c);
    }
    // Each copy shows a frame (or 3 s pass).
    await Promise.all(Array.from(grid.querySelectorAll('.layout-copy video'), (v) => new Promise((res) => {
      if (v.videoWidth) res();
      v.addEventListener('resize', res, { once: true });
      setTimeout(res, 3000);
    })));
    await new Promise((res) => setTimeout(res, 500));
    const boxes = Array.from(grid.children, (t) => t.getBoundingClientRect());
    return { count: boxes.length, viewport: [innerWidth, innerHeight],
      columns: getComputedStyle(grid).gridTemplateColumns.split(' ').length,
      tile: [Math.round(boxes[0].width), Math.round(boxes[0].height)],
      inside: boxes.every((b) => b.left >= 0 && b.top >= 0 && b.right <= innerWidth && b.bottom <= innerHeight) };
  });
  await page.screenshot({ path: join(artifacts, 'alice-9-tiles.png') });
  await page.evaluate(() => document.querySelectorAll('.layout-copy').forEach((c) => c.remove()));
  if (r.count !== 9 || !r.inside || r.tile[0] < 160) throw new Error(`9 tiles do not fit the window: ${JSON.stringify(r)}`);
  return r;
}

// A redis-server for the cluster run; resolves with its URL once it accepts connections.
function startRedis() {
  const port = 46379;
  const dir = mkdtempSync(join(tmpdir(), 'ferrosfu-e2e-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('redis-server did not start within 10 s')), 10000);
    child.on('exit', (code) => fail(new Error(`redis-server exited (${code})`)));
    child.stdout.on('data', (d) => {
      logs.push(`[redis] ${String(d).trim()}`);
      if (String(d).includes('Ready to accept connections')) {
        clearTimeout(timer);
        ok(`redis://127.0.0.1:${port}/0`);
      }
    });
  });
}

async function main() {
  const supervisorArgs = maxConsumers ? ['--worker-max-consumers', maxConsumers] : [];
  const redisUrl = clustered ? await startRedis() : null;
  const cluster = (id) => ['--cluster-redis-url', redisUrl, '--cluster-node-id', id, '--cluster-heartbeat-ms', '1000'];
  const addr = redisUrl
    ? await start({
      supervisorBin, artifacts, logs, children, workerCores: '0', rtcPorts: '22000-22499', db: 'ferrosfu-a.db',
      supervisorArgs: [...supervisorArgs, ...cluster('node-a')],
    })
    : await start({ supervisorBin, artifacts, logs, children, workerCores, supervisorArgs });
  const addrB = redisUrl
    ? await start({
      supervisorBin, artifacts, logs, children, workerCores: '1', rtcPorts: '22500-22999', db: 'ferrosfu-b.db',
      supervisorArgs: [...supervisorArgs, ...cluster('node-b'), '--webrtc-server-port', '24454'],
    })
    : addr;
  const addrOf = { alice: addr, bob: addrB };
  browser = await chromium.launch({
    executablePath: chromiumBin,
    headless: true, // playwright gives every launch a fresh temporary profile
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
      // Two pages share one browser: neither may be throttled as a background page.
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 960, height: 600 } });
  await context.grantPermissions(['camera', 'microphone']);
  const room = `e2e-${Math.random().toString(16).slice(2, 10)}`;
  const pages = {};
  for (const name of ['alice', 'bob']) {
    const page = await context.newPage();
    page.on('console', (m) => logs.push(`[${name} console.${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`[${name} pageerror] ${e.message}`));
    // 15 fps: two 1280×720 simulcast encoders (3 encodings each) and two decoders share 2 cores.
    await page.goto(`http://${addrOf[name]}/app/?roomId=${room}&displayName=${name}&autojoin=1&fps=15&p2p=0`);
    pages[name] = page;
    // Alice publishes camera and microphone before Bob arrives, so Bob (a late joiner) gets
    // both consumers at join, in the server's order, while Alice gets Bob's as he produces.
    // (A late joiner once showed the worker forwarding the publisher's MID: Bob's audio went
    // into his video transceiver whenever the two orders differed.)
    await waitFor(`${name} joined and publishing`, async () => ({
      ok: await page.evaluate(() => window.ferrosfu.state === 'joined' && window.ferrosfu.producing() === 2),
    }), 20000);
  }
  const figures = {};
  for (const [name, page] of Object.entries(pages)) {
    figures[name] = await waitFor(`media into ${name}`, () => mediaFlows(page));
  }
  // Where the consumers are: one entry a worker.
  const workers = await (await fetch(`http://${addr}/api/workers`)).json();
  figures.workers = workers.map((w) => ({ core: w.core, consumers: w.load && w.load.consumers }));
  if (redisUrl) figures.cluster = await (await fetch(`http://${addrB}/api/cluster`)).json();
  // The publishers' bandwidth estimate grows past the browser's start only with the server's
  // transport-wide congestion feedback. Chrome grows it step by step from the feedback, at a
  // pace that depends on how busy the machine is: both pages are polled together every 250 ms
  // until each has passed 700 kbps or 30 s have gone by, and each reports the highest estimate
  // seen and when it first passed 700 kbps (never one sample taken at a fixed moment). The Rust
  // side checks the figures.
  const since = Date.now();
  await Promise.all(Object.entries(pages).map(async ([name, page]) => {
    const send = { peakEstimate: 0, passedMs: null, samples: 0 };
    while (Date.now() - since < 30000) {
      const last = await page.evaluate(() => window.ferrosfu.sendStats()).catch(() => null);
      const est = (last && last.availableOutgoingBitrate) || 0;
      send.samples += 1;
      send.last = last;
      send.availableOutgoingBitrate = est;
      send.peakEstimate = Math.max(send.peakEstimate, est);
      if (est > 700000) {
        send.passedMs = Date.now() - since;
        break;
      }
      await sleep(250);
    }
    if (send.passedMs === null) logs.push(`[${name}] bandwidth estimate never past 700 kbps in 30 s (peak ${send.peakEstimate})`);
    figures[name].send = send;
  }));
  for (const [name, page] of Object.entries(pages)) {
    figures[name].tiles = await page.$$eval('.tile .name', (els) => els.map((e) => e.textContent));
  }
  figures.simulcast = await simulcast(pages);
  // Both tiles visible with names, score bars, layers, resolution: screenshots for the record.
  for (const [name, page] of Object.entries(pages)) {
    figures[name].tileState = await page.evaluate(() => window.ferrosfu.tiles());
    await page.screenshot({ path: join(artifacts, `${name}.png`) });
  }
  figures.activeSpeaker = await activeSpeaker(pages);
  figures.nineTiles = await nineTiles(pages.alice);
  for (const [name, page] of Object.entries(pages)) {
    const deviations = await page.evaluate(() => window.ferrosfu.deviations);
    if (deviations.length) figures[name].deviations = deviations;
  }
  // The worker's drop counters: `behind` (input shed while overloaded) explains stalls and a
  // collapsed bandwidth estimate on a busy machine.
  const metrics = await (await fetch(`http://${addr}/metrics`)).text();
  figures.workerDrops = Object.fromEntries(metrics.split('\n')
    .map((l) => /^ferrosfu_(?:worker_socket_drops_total|rtp_packets_dropped_total)\{[^}]*reason="([a-z_]+)"\} (\d+)/.exec(l))
    .filter((m) => m && m[2] !== '0').map((m) => [m[1], Number(m[2])]));
  // Bob leaves; Alice is told.
  await pages.bob.evaluate(() => window.ferrosfu.leave());
  await waitFor('peerClosed at alice', async () => ({
    ok: await pages.alice.evaluate(() => window.ferrosfu.events.some((e) => e.method === 'peerClosed')),
  }), 15000);
  figures.alice.tilesAfterLeave = await pages.alice.$$eval('.tile .name', (els) => els.map((e) => e.textContent));
  await pages.alice.screenshot({ path: join(artifacts, 'alice-after-leave.png') });
  return figures;
}

let code = 0;
try {
  const figures = await main();
  console.log(JSON.stringify({ ok: true, ...figures }));
} catch (e) {
  code = 1;
  console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) }));
  console.error(logs.slice(-200).join('\n'));
} finally {
  if (browser) await browser.close().catch(() => {});
  for (const c of children) c.kill('SIGKILL');
}
process.exit(code);
