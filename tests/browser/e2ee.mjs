// End-to-end encrypted meetings in the demo app (`?e2ee=1`: supervisor/web/src/e2ee.js) against
// the real supervisor, every page on the SFU (`p2p=0`):
//
// 1. Alice and Bob (E2EE) decode each other's video (its thumbnail at the receiver matches the
//    sender's own preview) and hear each other's audio (decoded audio energy grows), every frame
//    through their decryptors (counted in the transforms); the server flags the room `e2ee` and
//    refuses to record it (409).
// 2. Simulcast layers still switch on encrypted video: Bob asks Alice's consumer for spatial
//    layer 0 (decoded width ≤ 400 px), then 2 (wider than 400 px).
// 3. Carol joins without E2EE: the SFU forwards her Alice's frames (bytes arrive) but she gets no
//    valid picture: no decoded frame, or a thumbnail far from Alice's own preview.
// 4. Carol leaves: Alice and Bob rotate their frame keys (keyId 1) and still decode each other.
// 5. Dave joins with E2EE through encodedInsertableStreams on the main thread (`e2eeLegacy=1`,
//    the fallback of browsers without RTCRtpScriptTransform): he and Alice decode each other.
//
// Runs inside a loopback-only network namespace (tests/tests/browser_e2ee.rs):
//   unshare -n sh -c 'ip link set lo up; exec node tests/browser/e2ee.mjs --supervisor PATH --artifacts DIR'
// Prints one JSON line with the result; exit 0 on success, 1 on failure.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { arg, chromiumArgs, openApp, pagePoll, runScript, startSupervisor } from './harness.mjs';

const supervisorBin = arg('supervisor');
const artifacts = arg('artifacts', 'tests/artifacts/browser/e2ee');
const chromiumBin = arg('chromium', '/usr/bin/chromium');
const switchMs = Number(arg('switch-ms', '30000'));
if (!supervisorBin) {
  console.error('usage: e2ee.mjs --supervisor PATH [--artifacts DIR] [--chromium PATH]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const logs = [];
const children = [];
const browsers = [];
const ADMIN = '127.0.0.1:39402';

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

// The page's E2EE report and diagnostics, for a failure.
const diag = async () => ({ e2ee: await window.ferrosfu.e2ee.report(), diag: await window.ferrosfu.diag() });
const must = (page, what, fn, argv, ms) => pagePoll(page, what, fn, argv, ms, diag);

const open = (context, addr, roomId, name, e2ee, extra = '') => openApp({
  context, addr, roomId, name, logs, diag, query: `&fps=15&p2p=0${e2ee ? '&e2ee=1' : ''}${extra}`,
  ready: () => window.ferrosfu.state === 'joined' && window.ferrosfu.producing() === 2,
});

// What `page` receives of `peerId` over `ms`: video frames decoded, video bytes, audio energy.
async function receiving(page, peerId, ms = 1500) {
  const sum = (s, kind, key) => s.filter((x) => x.peerId === peerId && x.kind === kind).reduce((n, x) => n + x[key], 0);
  const a = await page.evaluate(() => window.ferrosfu.stats());
  await sleep(ms);
  const b = await page.evaluate(() => window.ferrosfu.stats());
  return {
    frames: sum(b, 'video', 'framesDecoded') - sum(a, 'video', 'framesDecoded'),
    framesTotal: sum(b, 'video', 'framesDecoded'),
    videoBytes: sum(b, 'video', 'bytesReceived') - sum(a, 'video', 'bytesReceived'),
    audioEnergy: sum(b, 'audio', 'totalAudioEnergy') - sum(a, 'audio', 'totalAudioEnergy'),
    audioBytes: sum(b, 'audio', 'bytesReceived') - sum(a, 'audio', 'bytesReceived'),
  };
}

// Mean absolute difference (0-255) between the receiver's picture of the sender and the
// sender's own preview (null when the receiver shows no picture).
async function pictureDiff(sender, receiver, senderId) {
  const mine = await sender.evaluate(() => window.ferrosfu.thumb('me'));
  const theirs = await receiver.evaluate((id) => window.ferrosfu.thumb(id), senderId);
  if (!mine || !theirs) return null;
  return Math.round(mine.reduce((n, v, i) => n + Math.abs(v - theirs[i]), 0) / mine.length);
}

async function main(result) {
  const roomId = `e2ee-${Math.random().toString(16).slice(2, 10)}`;
  const addr = await startSupervisor({
    supervisorBin, artifacts, logs, children, workerCores: '0', supervisorArgs: ['--admin-listen', ADMIN],
  });
  const browser = await chromium.launch({
    executablePath: chromiumBin, headless: true, args: chromiumArgs('--allow-loopback-in-peer-connection', '--disable-quic'),
  });
  browsers.push(browser);
  const context = await browser.newContext({ viewport: { width: 960, height: 600 } });
  await context.grantPermissions(['camera', 'microphone']);

  // 1. Two E2EE pages.
  const alice = await open(context, addr, roomId, 'alice', true);
  const bob = await open(context, addr, roomId, 'bob', true);
  const ids = { alice: await alice.evaluate(() => window.ferrosfu.peerId), bob: await bob.evaluate(() => window.ferrosfu.peerId) };
  for (const [name, page, other] of [['alice', alice, ids.bob], ['bob', bob, ids.alice]]) {
    await must(page, `${name} decrypting the other's audio and video`, async (id) => {
      const r = await window.ferrosfu.e2ee.report();
      return r && r.byPeer[id] && r.byPeer[id].video > 30 && r.byPeer[id].audio > 30 && r;
    }, other, 30000);
    const rx = await receiving(page, other);
    if (!(rx.frames > 0 && rx.audioEnergy > 0)) throw new Error(`${name} does not decode the other: ${JSON.stringify(rx)}`);
    result[name] = { receiving: rx, e2ee: await page.evaluate(() => window.ferrosfu.e2ee.report()),
      scriptTransform: await page.evaluate(() => typeof RTCRtpScriptTransform === 'function') };
  }
  result.bob.pictureDiff = await pictureDiff(alice, bob, ids.alice);
  await bob.screenshot({ path: join(artifacts, 'bob-e2ee.png') });
  const room = await (await fetch(`http://${ADMIN}/api/rooms/${roomId}`)).json();
  if (room.e2ee !== true) throw new Error(`the server does not flag the room: ${JSON.stringify(room.e2ee)}`);
  const rec = await fetch(`http://${addr}/api/rooms/${roomId}/recordings`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ peerId: ids.alice }) });
  result.recording = { status: rec.status, body: await rec.json().catch(() => null) };
  if (rec.status !== 409) throw new Error(`a recording of the E2EE room answered ${rec.status}`);

  // 2. Layer switching on encrypted simulcast video.
  const consumer = (await bob.evaluate(() => window.ferrosfu.consumers())).find((c) => c.peerId === ids.alice && c.kind === 'video');
  result.layers = { type: consumer.type };
  for (const [spatial, lo, hi] of [[0, 1, 400], [2, 401, 1e5]]) {
    await bob.evaluate(([id, s]) => window.ferrosfu.request('setConsumerPreferredLayers', { consumerId: id, spatialLayer: s }), [consumer.id, spatial]);
    const w = await bob.evaluate(([p, l, h, ms]) => window.ferrosfu.waitVideoWidth(p, l, h, ms), [ids.alice, lo, hi, switchMs]);
    result.layers[`spatial${spatial}`] = { ok: w.ok, ms: w.ms, width: w.width };
    if (!w.ok) throw new Error(`encrypted video did not switch to spatial layer ${spatial}: ${JSON.stringify(w)}`);
  }

  // 3. Carol, without E2EE, gets ciphertext.
  const carol = await open(context, addr, roomId, 'carol', false);
  await sleep(3000);
  const rx = await receiving(carol, ids.alice, 2000);
  const diffCarol = await pictureDiff(alice, carol, ids.alice);
  const diffBob = await pictureDiff(alice, bob, ids.alice);
  result.carol = { receiving: rx, pictureDiff: diffCarol, bobPictureDiff: diffBob };
  await carol.screenshot({ path: join(artifacts, 'carol-no-e2ee.png') });
  if (!(rx.videoBytes > 0)) throw new Error(`the SFU forwards Carol nothing of Alice: ${JSON.stringify(rx)}`);
  const valid = rx.framesTotal > 0 && diffCarol !== null && diffCarol <= Math.max(30, 3 * (diffBob ?? 0));
  if (valid) throw new Error(`Carol (no E2EE) decodes Alice's picture: ${JSON.stringify(result.carol)}`);

  // 4. Carol leaves: new frame keys; Alice and Bob still decode each other.
  await carol.evaluate(() => window.ferrosfu.leave());
  await carol.close();
  for (const [name, page, other] of [['alice', alice, ids.bob], ['bob', bob, ids.alice]]) {
    await must(page, `${name} rotated its key`, () => window.ferrosfu.e2ee.report().then((r) => r.keyId === 1 && r.sendKeyId === 1), null, 15000);
    await sleep(500);
    const after = await receiving(page, other);
    if (!(after.frames > 0 && after.audioEnergy > 0)) throw new Error(`${name} stopped decoding after the rotation: ${JSON.stringify(after)}`);
    result[name].afterRotation = after;
  }

  // 5. The main-thread fallback interoperates.
  const dave = await open(context, addr, roomId, 'dave', true, '&e2eeLegacy=1');
  ids.dave = await dave.evaluate(() => window.ferrosfu.peerId);
  for (const [name, page, other] of [['dave', dave, ids.alice], ['alice', alice, ids.dave]]) {
    await must(page, `${name} decrypting ${other}`, async (id) => {
      const r = await window.ferrosfu.e2ee.report();
      return r && r.byPeer[id] && r.byPeer[id].video > 10 && r.byPeer[id].audio > 10 && r;
    }, other, 30000);
    const rx = await receiving(page, other);
    if (!(rx.frames > 0 && rx.audioEnergy > 0)) throw new Error(`${name} does not decode ${other}: ${JSON.stringify(rx)}`);
  }
  result.dave = { e2ee: await dave.evaluate(() => window.ferrosfu.e2ee.report()), pictureDiff: await pictureDiff(alice, dave, ids.alice) };
  if (result.dave.e2ee.api !== 'encodedInsertableStreams') throw new Error(`dave used ${result.dave.e2ee.api}`);
}

await runScript({ name: 'e2ee', main, logs, artifacts, browsers, children });
