// Browser test of simulcast / SVC layer switching and active speaker, against ferrosfu or the
// stock mediasoup 3.27.1 reference server (reference-server.mjs), with the same page
// (page/layers-page.js: mediasoup-client + protoo-client, bundled by esbuild at start).
//
//   unshare -n sh -c 'ip link set lo up && exec node tests/browser/layers.mjs \
//     --target ferrosfu --supervisor target/debug/ferrosfu --codec vp8 --artifacts tests/artifacts/layers'
//   unshare -n sh -c 'ip link set lo up && exec node tests/browser/layers.mjs \
//     --target mediasoup --codec vp9 --artifacts tests/artifacts/layers'
//
// Options: --target ferrosfu|mediasoup, --supervisor PATH (ferrosfu), --codec vp8|vp9,
// --artifacts DIR, --chromium PATH, --fps N (camera, default 15; asking 30 gave 18-19 fps on the
// 2-core machine, qualityLimitationReason "none"), --svc MODE (VP9, default L3T3), --worker-bin
// PATH (mediasoup; default $MEDIASOUP_WORKER_BIN, else the anchor binary), --switch-limit-ms
// (5000), --measure-ms (how long a switch is watched, 15000), --initial-ms (60000: VP8 took
// 2-26 s on the reference while the bandwidth estimates ramped up), --drop-ext URI,… (header
// extensions the pages do not negotiate, e.g. abs-capture-time). Reference only:
// --abs-capture-time (offer it; see reference-server.mjs: mediasoup 3.27.1 then cannot switch
// simulcast layers), --log-level debug --log-tags simulcast,svc (worker logs; run with
// DEBUG='mediasoup*' and they land in DIR/layers-TARGET-CODEC.log).
//
// Three peers in one room, in two headless Chromium instances (the fake microphone is one WAV
// per browser, written into DIR): A (loud tone) publishes a 1280×720 camera — VP8: mediasoup-
// demo's 3 simulcast encodings (scaleResolutionDownBy 4/2/1, maxBitrate 500k/1M/5M, L1T3); VP9:
// one L3T3 encoding — and its microphone; B (silent browser) only subscribes; C (silent)
// publishes its silent microphone and pauses the video it is offered.
//
// B samples inbound-rtp every 100 ms (frameWidth, framesDecoded) and, per presented frame, the
// width (requestVideoFrameCallback). Pass criteria: B decodes ≥ 1000 px at its default
// preference; after setConsumerPreferredLayers spatial 0 → ≤ 400 px, 1 → 500..800 px, 2 →
// ≥ 1000 px, each within --switch-limit-ms of the request (made once A sends that layer:
// --publisher-wait-ms, 45000; a busy machine's publisher pauses its top encodings for lack of
// its own bandwidth estimate, which no SFU can switch to); consumerLayersChanged with that
// spatial layer for each;
// framesDecoded never stalls > 1 s from the first switch to the end of the last; C gets
// `activeSpeaker` naming A (and never C); getConsumerStats, setConsumerPriority,
// requestConsumerKeyFrame and pauseConsumer answer ok; closeProducer (A's mic) → consumerClosed at
// C; C leaves → peerClosed at B; every newConsumer has a non-empty rtpParameters.rtcp.cname (else
// the page consumes with an explicit streamId to go on, and reports it). A's encoder figures
// (per rid: width, fps, framesEncoded, qualityLimitationReason) are reported, to tell an SFU
// problem from a machine too slow to encode.
//
// Prints one JSON line (also written to DIR/layers-TARGET-CODEC.json); exit 0 when every criterion
// holds, 1 otherwise (`failures` says which), 2 on bad usage.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import * as harness from './harness.mjs';
import { pageWait, servePage, startServer, wav } from './harness.mjs';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}
const target = arg('target', 'ferrosfu');
const codec = arg('codec', 'vp8');
const artifacts = resolve(arg('artifacts', 'tests/artifacts/layers'));
const supervisorBin = arg('supervisor');
const chromiumBin = arg('chromium', '/usr/bin/chromium');
const fps = Number(arg('fps', '15'));
const svc = arg('svc', 'L3T3');
const workerBin = arg('worker-bin', process.env.MEDIASOUP_WORKER_BIN || '/work/shared/anchors/mediasoup-worker-3.27.1');
const switchLimitMs = Number(arg('switch-limit-ms', '5000'));
const measureMs = Number(arg('measure-ms', '15000'));
const initialMs = Number(arg('initial-ms', '60000'));
// How long A may take to send a layer before it is asked for (its own estimate can pause its
// top encodings on a busy machine; the switch is timed from the request, once it sends).
const publisherWaitMs = Number(arg('publisher-wait-ms', '45000'));
if (!['ferrosfu', 'mediasoup'].includes(target) || !['vp8', 'vp9'].includes(codec)
  || (target === 'ferrosfu' && !supervisorBin)) {
  console.error('usage: layers.mjs --target ferrosfu|mediasoup [--supervisor PATH] --codec vp8|vp9 [--artifacts DIR]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const logs = [];
const children = [];
const browsers = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The server under test: prints its address once listening.


// ---------------------------------------------------------------------------------------------
// The page, and the fake microphones: 48 kHz mono 16-bit WAVs, looped by Chromium.



// Speech-like: two tones, amplitude-modulated at 3 Hz, peaks near full scale.
const openPeer = (browser, base, ws, room, role, name) => harness.openPeer(browser, base, {
  ws, roomId: room, name, role, codec, svc, fps: String(fps), dropExt: arg('drop-ext', ''),
}, logs);

const loudWav = () => wav(join(artifacts, 'loud.wav'), (s) => (0.35 + 0.3 * Math.sin(2 * Math.PI * 3 * s))
  * (Math.sin(2 * Math.PI * 220 * s) + 0.6 * Math.sin(2 * Math.PI * 660 * s)));
const silentWav = () => wav(join(artifacts, 'silent.wav'), () => 0);

async function launch(audioFile) {
  const b = await chromium.launch({
    executablePath: chromiumBin,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${audioFile}`,
      '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
  browsers.push(b);
  return b;
}


// ---------------------------------------------------------------------------------------------

async function main(result) {
  const failures = result.failures;
  const check = (ok, what) => { if (!ok) failures.push(what); return ok; };
  const loud = loudWav();
  const silent = silentWav();
  const ws = await startServer({
    target, supervisorBin, workerBin, artifacts, db: 'ferrosfu.db', logs, children,
    referenceArgs: [...process.argv.slice(2).filter((a, i, v) => a.startsWith('--log-') || a === '--abs-capture-time'
        || (i > 0 && v[i - 1].startsWith('--log-')))],
  });
  const { server: pageServer, base } = await servePage('layers');
  children.push({ kill: () => pageServer.close() });
  const [bLoud, bSilent] = await Promise.all([launch(loud), launch(silent)]);
  const room = `layers-${Math.random().toString(16).slice(2, 10)}`;

  const A = await openPeer(bLoud, base, ws, room, 'pub', 'alice');
  const B = await openPeer(bSilent, base, ws, room, 'sub', 'bob');
  const C = await openPeer(bSilent, base, ws, room, 'peer', 'carol');
  result.peers = { A: A.peerId, B: B.peerId, C: C.peerId };
  const bVideo = await pageWait(B.page, () => window.t.consumers.video || window.t.consumeErrors.length, null, 15000);
  // What the server offered B (rtcp, msid, type) and what A's producers announced.
  result.offers = await B.page.evaluate(() => window.t.events.filter((e) => e.method === 'newConsumer')
    .map(({ data: d }) => ({ kind: d.kind, type: d.type, rtcp: d.rtpParameters.rtcp, msid: d.rtpParameters.msid,
      encodings: d.rtpParameters.encodings })));
  result.produced = await A.page.evaluate(() => Object.values(window.t.producers).map((p) => ({ kind: p.kind,
    rtcp: p.rtpParameters.rtcp, msid: p.rtpParameters.msid, encodings: p.rtpParameters.encodings.map((e) => e.rid || e.scalabilityMode) })));
  result.consumeErrors = await B.page.evaluate(() => window.t.consumeErrors);
  if (!check(bVideo && bVideo.id, `B could not consume A's video: ${result.consumeErrors.join('; ') || 'no newConsumer'}`)) return;
  result.consumerType = bVideo.type;

  // 1. The default preference: the highest layer, once the bandwidth estimate allows it.
  result.initial = await B.page.evaluate((ms) => window.t.waitWidth(1000, 1e5, window.t.consumers.video.at, ms), initialMs);
  result.publisher = { atInitial: await A.page.evaluate(() => window.t.sendStats()) };
  result.publisher.headerExtensions = await A.page.evaluate(() => window.t.producers.video.rtpParameters.headerExtensions.map((h) => h.uri.replace(/^.*[/:]/, '')));
  check(result.initial.ok, `B did not decode ≥ 1000 px at its default preference within ${initialMs} ms (last width ${result.initial.lastWidth})`);

  // 2. The switches, each watched for up to measureMs, held 1.5 s, and photographed.
  // Whether A sends spatial layer `spatial` now (frames of it leave, at least `minWidth` wide):
  // VP8 simulcast by its rid r<spatial>, VP9 SVC by the width of what leaves (its top layer).
  // Polls every 250 ms for at most publisherWaitMs; `last`: A's figures at the end.
  const publisherSends = async (spatial, minWidth) => {
    const start = Date.now();
    let prev = null;
    let last = null;
    while (Date.now() - start < publisherWaitMs) {
      const s = await A.page.evaluate(() => window.t.sendStats());
      const e = codec === 'vp8' ? s.encodings.find((x) => x.rid === `r${spatial}`) : s.encodings[0];
      last = e ? { rid: e.rid, width: e.width, fps: e.fps, framesSent: e.framesSent,
        qualityLimitationReason: e.qualityLimitationReason, availableOutgoingBitrate: s.availableOutgoingBitrate } : null;
      const need = codec === 'vp8' ? minWidth : (spatial === 2 ? 1000 : 0);
      if (e && (e.width || 0) >= need && prev != null && e.framesSent > prev) {
        return { ok: true, ms: Date.now() - start, last };
      }
      prev = e ? e.framesSent : null;
      await sleep(250);
    }
    return { ok: false, ms: Date.now() - start, last };
  };
  result.switches = [];
  result.publisherWaits = [];
  for (const [spatial, lo, hi] of [[0, 0, 400], [1, 500, 800], [2, 1000, 1e5]]) {
    // No SFU can switch to a layer the publisher is not sending (its own bandwidth estimate
    // pauses the top encodings of a busy machine): wait until it sends this one, then time
    // the switch.
    const waited = await publisherSends(spatial, lo);
    result.publisherWaits.push(waited);
    if (!check(waited.ok, `the publisher did not send spatial layer ${spatial} within ${publisherWaitMs} ms (${JSON.stringify(waited.last)})`)) break;
    const r = await B.page.evaluate(([s, l, h, ms]) => window.t.switchLayer(s, l, h, ms), [spatial, lo, hi, measureMs]);
    await sleep(1500);
    await B.page.screenshot({ path: join(artifacts, `layers-${target}-${codec}-spatial${spatial}.png`) });
    result.switches.push(r);
    const range = hi > 1e4 ? `≥ ${lo}` : `${lo}..${hi}`;
    check(r.request.ok, `setConsumerPreferredLayers ${spatial} failed: ${r.request.error}`);
    check(r.ok && r.statsMs <= switchLimitMs, `spatial ${spatial}: width ${range} not decoded within ${switchLimitMs} ms (${r.ok ? `${r.statsMs} ms` : `last width ${r.lastWidth}`})`);
    check(r.layersChanged, `spatial ${spatial}: no consumerLayersChanged with spatialLayer ${spatial}`);
  }
  const first = result.switches[0].t0;
  result.stall = await B.page.evaluate((from) => ({
    acrossSwitches: window.t.stall(from, performance.now()),
    wholeRun: window.t.stall(window.t.samples.find((s) => s.fd > 0)?.t ?? 0, performance.now()),
  }), first);
  check(result.stall.acrossSwitches.maxMs <= 1000, `framesDecoded stalled ${result.stall.acrossSwitches.maxMs} ms across the switches`);
  result.layersChanged = await B.page.evaluate(() => {
    const c = window.t.consumers.video;
    return window.t.events.filter((e) => e.method === 'consumerLayersChanged')
      .map((e) => ({ ms: Math.round(e.t - c.at), spatialLayer: e.data.spatialLayer, temporalLayer: e.data.temporalLayer }));
  });
  result.subscriber = await B.page.evaluate(() => {
    const s = window.t.samples;
    const last = s[s.length - 1] || {};
    const c = window.t.consumers.video;
    // When B's decoder asked for keyframes (ms since the consumer), and what it showed then.
    const pliAt = s.filter((x, i) => i > 0 && x.pli !== s[i - 1].pli)
      .map((x) => ({ ms: Math.round(x.t - c.at), pli: x.pli, width: x.w, keyFramesDecoded: x.kf }));
    // The receiver's mean jitter-buffer delay over the run (ms) and its last jitter (ms).
    const jitterBufferMs = last.jbe ? Math.round((1000 * last.jbd) / last.jbe) : null;
    return { jitterBufferMs, jitterMs: last.jitter != null ? Math.round(1000 * last.jitter) : null,
      samples: s.length, framesDecoded: last.fd, keyFramesDecoded: last.kf, pliCount: last.pli, firCount: last.fir,
      nackCount: last.nack, packetsLost: last.lost, presentedWidthChanges: window.t.frames.map((f) => f.w), pliAt };
  });

  // What the server says of the producer's streams and of B's consumer (score, layers, bitrates).
  result.serverStats = {
    producer: await A.page.evaluate(() => window.t.request('getProducerStats', { producerId: window.t.producers.video.id }).catch((e) => String(e))),
    consumer: await B.page.evaluate(() => window.t.request('getConsumerStats', { consumerId: window.t.consumers.video.id }).catch((e) => String(e))),
  };

  // 3. The other consumer requests answer ok.
  result.requests = await B.page.evaluate(async () => {
    const consumerId = window.t.consumers.video.id;
    for (const [m, d] of [['getConsumerStats', { consumerId }], ['setConsumerPriority', { consumerId, priority: 2 }],
      ['requestConsumerKeyFrame', { consumerId }]]) {
      await window.t.request(m, d).catch(() => {});
    }
    return window.t.requests;
  });
  result.requests.pauseConsumer = await C.page.evaluate(() => window.t.requests.pauseConsumer || null);
  for (const [m, r] of Object.entries(result.requests)) check(r && r.ok, `${m} failed: ${r && r.error}`);

  // 4. Active speaker, as C sees it.
  const named = await pageWait(C.page, (a) => window.t.events.find((e) => e.method === 'activeSpeaker' && e.data.peerId === a), A.peerId, 20000);
  result.activeSpeaker = await C.page.evaluate(([a, c]) => {
    const ev = window.t.events.filter((e) => e.method === 'activeSpeaker');
    const firstA = ev.find((e) => e.data.peerId === a);
    const who = (id) => (id === a ? 'A' : id === c ? 'C' : String(id));
    const count = {};
    for (const e of ev) count[who(e.data.peerId)] = (count[who(e.data.peerId)] || 0) + 1;
    const dom = window.t.events.filter((e) => e.method === 'dominantSpeaker').map((e) => who(e.data.peerId));
    return { peerId: firstA ? firstA.data.peerId : null, msSinceJoin: firstA ? Math.round(firstA.t - window.t.joinedAt) : null,
      volume: firstA ? firstA.data.volume : null, producerId: firstA ? firstA.data.producerId : null, counts: count,
      dominantSpeaker: dom.length ? dom : undefined };
  }, [A.peerId, C.peerId]);
  check(named, 'C got no activeSpeaker naming A');
  check(!result.activeSpeaker.counts.C, 'activeSpeaker named C (silent microphone)');

  for (const [n, p] of [['A', A], ['B', B], ['C', C]]) {
    for (const d of await p.page.evaluate(() => window.t.deviations)) check(false, `${n}: ${d}`);
  }

  // 5. closeProducer (A's microphone) → consumerClosed at C; C leaves → peerClosed at B.
  const micConsumer = await C.page.evaluate(() => window.t.consumers.audio && window.t.consumers.audio.id);
  await A.page.evaluate(() => window.t.closeProducer('audio')).catch((e) => logs.push(`closeProducer: ${e}`));
  result.requests.closeProducer = await A.page.evaluate(() => window.t.requests.closeProducer || null);
  check(result.requests.closeProducer && result.requests.closeProducer.ok, 'closeProducer failed');
  check(await pageWait(C.page, (id) => window.t.events.some((e) => e.method === 'consumerClosed' && e.data.consumerId === id), micConsumer, 5000),
    'no consumerClosed at C after A closed its microphone');
  await C.page.evaluate(() => window.t.leave());
  check(await pageWait(B.page, (id) => window.t.events.some((e) => e.method === 'peerClosed' && e.data.peerId === id), C.peerId, 10000),
    'no peerClosed at B after C left');
  result.publisher.end = await A.page.evaluate(() => window.t.sendStats());
}

const result = { ok: false, target, codec, fps, svc: codec === 'vp9' ? svc : undefined, failures: [] };
let code = 1;
try {
  await main(result);
  result.ok = result.failures.length === 0;
  code = result.ok ? 0 : 1;
} catch (e) {
  result.failures.push(String(e && e.stack || e));
}
for (const s of result.switches || []) delete s.t0;
const line = JSON.stringify(result);
writeFileSync(join(artifacts, `layers-${target}-${codec}.json`), `${line}\n`);
writeFileSync(join(artifacts, `layers-${target}-${codec}.log`), `${logs.join('\n')}\n`);
console.log(line);
if (!result.ok) console.error(logs.filter((l) => !l.includes('"level":"DEBUG"')).slice(-60).join('\n'));
for (const b of browsers) await b.close().catch(() => {});
for (const c of children) {
  try { c.kill('SIGTERM'); } catch { /* gone */ }
}
await sleep(300);
for (const c of children) {
  try { if (c.exitCode === null) c.kill('SIGKILL'); } catch { /* gone */ }
}
process.exit(code);
