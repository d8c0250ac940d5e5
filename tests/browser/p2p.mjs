// Two-party calls peer to peer in the demo app (supervisor/web/src/p2p.js) against the real
// supervisor (`[rooms] p2p = "auto"`, return hysteresis --return-after-s, default 3 s here):
//
// 1. Alice and Bob join one room: both must go direct (the app's p2p state `direct`), decode
//    each other's video and hear audio over their RTCPeerConnection, whose selected candidate
//    pair must lead to the other page (not to the SFU's ports), while `GET /api/rooms/:id`
//    (admin listener) says phase `p2p` and the room's forwarded RTP packets stay 0 over 3 s.
// 2. Carol joins: within the switch all three must decode each other through the SFU (the time
//    from Carol's join is reported; the limit asserted is loose, --decode-limit-ms), Alice and
//    Bob close their direct call, and the longest time each of them went without a new frame of
//    the other's video across the switch is reported (target ≤ 1 s; asserted ≤ --gap-limit-ms).
// 3. Carol leaves: after the hysteresis Alice and Bob are direct again, the server says `p2p`,
//    and the forwarded packets stop growing.
// 4. A recording of Alice starts: the call goes back to the SFU (`p2pStop` reason `recording`,
//    both pages decode through the SFU) and stays there while it runs; once it stops, the two
//    are direct again after the hysteresis.
//
// Runs inside a loopback-only network namespace (tests/tests/browser_p2p.rs):
//   unshare -n sh -c 'ip link set lo up; exec node tests/browser/p2p.mjs --supervisor PATH --artifacts DIR'
// Prints one JSON line with the result; exit 0 on success, 1 on failure.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { arg, chromiumArgs, openApp, pagePoll, runScript, startSupervisor } from './harness.mjs';

const supervisorBin = arg('supervisor');
const artifacts = arg('artifacts', 'tests/artifacts/browser/p2p');
const chromiumBin = arg('chromium', '/usr/bin/chromium');
const returnAfterS = Number(arg('return-after-s', '3'));
// Timing targets are figures in the result; these limits only catch a switch that never ends.
const decodeLimitMs = Number(arg('decode-limit-ms', '20000'));
const gapLimitMs = Number(arg('gap-limit-ms', '10000'));
if (!supervisorBin) {
  console.error('usage: p2p.mjs --supervisor PATH [--artifacts DIR] [--chromium PATH] [--return-after-s N]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const logs = [];
const children = [];
const browsers = [];
const ADMIN = '127.0.0.1:39401';
const RTC_PORTS = [22000, 22999];

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

const diag = () => ({ p2p: window.ferrosfu.p2p.state(), log: window.ferrosfu.p2p.log(), state: window.ferrosfu.state });
const must = (page, what, fn, argv, ms) => pagePoll(page, what, fn, argv, ms, diag);

async function room(id) {
  const r = await fetch(`http://${ADMIN}/api/rooms/${id}`);
  if (!r.ok) throw new Error(`GET /api/rooms/${id}: ${r.status}`);
  return r.json();
}

// 15 fps, one encoding: three pages encode and decode on two cores.
const open = (context, addr, roomId, name) => openApp({ context, addr, roomId, name, query: '&fps=15&simulcast=0', logs, diag,
  ready: () => window.ferrosfu.state === 'joined' && window.ferrosfu.peerId });

// Both pages direct, each decoding the other's video and receiving audio over the direct call.
async function directBoth(pages, ms) {
  for (const [name, page] of Object.entries(pages)) {
    await must(page, `${name} direct`, () => window.ferrosfu.p2p.state() === 'direct', null, ms);
  }
  const out = {};
  for (const [name, page] of Object.entries(pages)) {
    const a = await page.evaluate(() => window.ferrosfu.p2p.inbound());
    await sleep(1000);
    const b = await page.evaluate(() => window.ferrosfu.p2p.inbound());
    const pair = await page.evaluate(() => window.ferrosfu.p2p.selectedPair());
    if (!(b.video.framesDecoded > a.video.framesDecoded && b.audio.bytesReceived > a.audio.bytesReceived)) {
      throw new Error(`${name}: no media over the direct call: ${JSON.stringify({ a, b })}`);
    }
    if (!pair || pair.remote.port >= RTC_PORTS[0] && pair.remote.port <= RTC_PORTS[1]) {
      throw new Error(`${name}: the direct call's candidate pair leads to the SFU: ${JSON.stringify(pair)}`);
    }
    out[name] = { framesDecoded: b.video.framesDecoded, audioBytes: b.audio.bytesReceived, pair };
  }
  return out;
}

// The room's forwarded packets at two moments `ms` apart, with the phase.
async function forwarded(roomId, ms) {
  const a = await room(roomId);
  await sleep(ms);
  const b = await room(roomId);
  return { phase: b.p2p.phase, before: a.rtp.packetsForwarded, after: b.rtp.packetsForwarded,
    received: b.rtp.packetsReceived, pair: b.p2p.pair };
}

// Every page decodes every other one through the SFU: the SFU consumers' decoded frames of
// each other peer grow between two samples 300 ms apart (polled until `ms` have passed).
async function allDecode(pages, ms) {
  const deadline = Date.now() + ms;
  const peerIds = {};
  for (const [n, p] of Object.entries(pages)) peerIds[n] = await p.evaluate(() => window.ferrosfu.peerId);
  const frames = async (page) => {
    const s = await page.evaluate(() => window.ferrosfu.stats());
    const out = {};
    for (const x of s.filter((v) => v.kind === 'video')) out[x.peerId] = (out[x.peerId] || 0) + x.framesDecoded;
    return out;
  };
  for (const [name, page] of Object.entries(pages)) {
    const others = Object.entries(peerIds).filter(([n]) => n !== name).map(([, id]) => id);
    let last;
    for (;;) {
      const a = await frames(page);
      await sleep(300);
      const b = await frames(page);
      last = { a, b };
      if (others.every((id) => b[id] > (a[id] || 0))) break;
      if (Date.now() > deadline) {
        const diag = await page.evaluate(() => window.ferrosfu.diag());
        throw new Error(`${name} is not decoding ${JSON.stringify(others)} through the SFU: ${JSON.stringify({ last, diag })}`);
      }
    }
  }
}

// Records in the page, for every other peer, when its SFU video first decodes a new frame
// (Date.now(); window.firstDecode[peerId]): the stats are read every 50 ms from now on.
function watchDecode(page) {
  return page.evaluate(() => {
    window.firstDecode = {};
    const base = {};
    const tick = async () => {
      const s = await window.ferrosfu.stats().catch(() => []);
      const now = Date.now();
      const frames = {};
      for (const x of s.filter((v) => v.kind === 'video')) frames[x.peerId] = (frames[x.peerId] || 0) + x.framesDecoded;
      for (const [id, n] of Object.entries(frames)) {
        if (base[id] === undefined) base[id] = n;
        else if (n > base[id] && !window.firstDecode[id]) window.firstDecode[id] = now;
      }
      if (!window.stopDecodeWatch) setTimeout(tick, 50);
    };
    tick();
  });
}

async function main(result) {
  const roomId = `p2p-${Math.random().toString(16).slice(2, 10)}`;
  const addr = await startSupervisor({
    supervisorBin, artifacts, logs, children, workerCores: '0', rtcPorts: RTC_PORTS.join('-'),
    supervisorArgs: ['--admin-listen', ADMIN, '--p2p-return-after-s', String(returnAfterS)],
  });
  const browser = await chromium.launch({
    executablePath: chromiumBin, headless: true,
    args: chromiumArgs('--allow-loopback-in-peer-connection', '--disable-quic'),
  });
  browsers.push(browser);
  const context = await browser.newContext({ viewport: { width: 960, height: 600 } });
  await context.grantPermissions(['camera', 'microphone']);

  // 1. Two pages: peer to peer.
  const pages = { alice: await open(context, addr, roomId, 'alice') };
  pages.bob = await open(context, addr, roomId, 'bob');
  result.direct = await directBoth(pages, 30000);
  const fw = await forwarded(roomId, 3000);
  result.direct.server = fw;
  if (fw.phase !== 'p2p' || fw.before !== 0 || fw.after !== 0) {
    throw new Error(`the SFU forwarded media during the direct call: ${JSON.stringify(fw)}`);
  }
  for (const [name, page] of Object.entries(pages)) await page.screenshot({ path: join(artifacts, `${name}-direct.png`) });

  // 2. Carol joins: the switch to the SFU, with the longest frame gap at Alice and Bob.
  const ids = {};
  for (const [n, p] of Object.entries(pages)) ids[n] = await p.evaluate(() => window.ferrosfu.peerId);
  await pages.alice.evaluate((id) => window.ferrosfu.gaps.start([id]), ids.bob);
  await pages.bob.evaluate((id) => window.ferrosfu.gaps.start([id]), ids.alice);
  for (const name of ['alice', 'bob']) await watchDecode(pages[name]);
  const t0 = Date.now();
  pages.carol = await open(context, addr, roomId, 'carol');
  await watchDecode(pages.carol);
  const joinedMs = Date.now() - t0;
  await allDecode(pages, decodeLimitMs);
  // When each page first decoded each other one through the SFU, from Carol's join answer.
  const joinedAt = await pages.carol.evaluate(() => window.ferrosfu.joinedAt);
  const firsts = {};
  for (const [name, page] of Object.entries(pages)) {
    firsts[name] = await page.evaluate(() => { window.stopDecodeWatch = true; return window.firstDecode; });
  }
  const decodedMs = Math.max(...Object.values(firsts).flatMap((f) => Object.values(f))) - joinedAt;
  for (const name of ['alice', 'bob']) {
    await must(pages[name], `${name} closing its direct call`, () => window.ferrosfu.p2p.state() === 'idle', null, 15000);
  }
  await sleep(1000); // the gap monitor sees a second of SFU video after the switch
  result.switchToSfu = { carolOpenedMs: joinedMs, allDecodingAfterJoinMs: decodedMs,
    firstDecodeAfterJoinMs: Object.fromEntries(Object.entries(firsts).map(([n, f]) => [n,
      Object.fromEntries(Object.entries(f).map(([id, t]) => [id, t - joinedAt]))])), gaps: {} };
  for (const name of ['alice', 'bob']) {
    const other = name === 'alice' ? ids.bob : ids.alice;
    const g = await pages[name].evaluate((id) => { const r = window.ferrosfu.gaps.report(); window.ferrosfu.gaps.stop(); return r[id]; }, other);
    result.switchToSfu.gaps[name] = g;
    const log = await pages[name].evaluate(() => window.ferrosfu.p2p.log());
    result.switchToSfu[`${name}Stop`] = log.filter((e) => e.what === 'stop').pop();
    if (!g || !g.sources.some((s) => s.startsWith('sfu:')) || g.maxGapMs > gapLimitMs) {
      throw new Error(`${name}: the switch to the SFU left a gap of ${g && g.maxGapMs} ms: ${JSON.stringify(g)}`);
    }
  }
  const sfu = await room(roomId);
  result.switchToSfu.server = { phase: sfu.p2p.phase, forwarded: sfu.rtp.packetsForwarded, history: sfu.p2p.history };
  if (sfu.p2p.phase !== 'sfu' || !(sfu.rtp.packetsForwarded > 0)) {
    throw new Error(`after the third join the server says ${JSON.stringify(result.switchToSfu.server)}`);
  }
  for (const [name, page] of Object.entries(pages)) await page.screenshot({ path: join(artifacts, `${name}-three.png`) });

  // 3. Carol leaves: back to peer to peer after the hysteresis.
  const t1 = Date.now();
  await pages.carol.evaluate(() => window.ferrosfu.leave());
  await pages.carol.close();
  delete pages.carol;
  result.back = await directBoth(pages, returnAfterS * 1000 + 30000);
  result.back.afterMs = Date.now() - t1;
  if (result.back.afterMs < returnAfterS * 1000) {
    throw new Error(`back to peer to peer after ${result.back.afterMs} ms, before the ${returnAfterS} s hysteresis`);
  }
  const fw2 = await forwarded(roomId, 3000);
  result.back.server = fw2;
  if (fw2.phase !== 'p2p' || fw2.after !== fw2.before) {
    throw new Error(`back to two, the SFU still forwards: ${JSON.stringify(fw2)}`);
  }

  // 4. A recording holds the room on the SFU.
  const post = async (path, body) => {
    const r = await fetch(`http://${addr}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body) });
    const v = await r.json().catch(() => null);
    if (!r.ok) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(v)}`);
    return v;
  };
  const rec = await post(`/api/rooms/${roomId}/recordings`, { peerId: ids.alice });
  for (const name of ['alice', 'bob']) {
    await must(pages[name], `${name} back on the SFU for the recording`, () => window.ferrosfu.p2p.state() === 'idle', null, 15000);
  }
  await allDecode(pages, decodeLimitMs);
  await sleep(returnAfterS * 1000 + 1000); // longer than the hysteresis: still on the SFU
  const held = await room(roomId);
  const stops = await pages.alice.evaluate(() => window.ferrosfu.p2p.log().filter((e) => e.what === 'stop'));
  result.recording = { id: rec.id, status: rec.status, phase: held.p2p.phase, stop: stops.pop() };
  if (held.p2p.phase !== 'sfu' || result.recording.stop?.reason !== 'recording') {
    throw new Error(`a recording did not hold the room on the SFU: ${JSON.stringify(result.recording)}`);
  }
  await post(`/api/recordings/${rec.id}/stop`, {});
  await directBoth(pages, returnAfterS * 1000 + 30000);
  result.recording.backToP2p = true;
}

await runScript({ name: 'p2p', main, logs, artifacts, browsers, children });
