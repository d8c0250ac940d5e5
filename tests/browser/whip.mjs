// Browser interop test of WHIP ingest and WHEP playback: a Chromium page publishes camera and
// microphone with a real WHIP client (the `whip-whep` package's WHIPClient, in the demo app's
// /app/whip.html), a protoo peer (the demo app, mediasoup-client) receives it, and WHEP players
// (/app/whep.html, WHEPClient) play the WHIP publisher and the protoo peer.
//
//   unshare -n sh -c 'ip link set lo up && exec node tests/browser/whip.mjs \
//     --supervisor target/debug/ferrosfu --artifacts tests/artifacts/browser/whip'
//
// Steps and checks, in order (every wait has its own deadline, --timeout-ms):
//  1. The WHIP page connects (its peer connection `connected`; the resource URL is
//     /whip/ROOM/<32 hex>).
//  2. Bob (demo app) joins the room, sees the WHIP peer (device "WHIP") and decodes its video
//     and receives its audio (both growing).
//  3. A WHEP player for `?peer=<the WHIP peer>` and one for `?peer=<Bob>` each decode video and
//     receive audio (growing).
//  4. ICE restart of the WHIP session (WHIPClient.restart(): PATCH with new credentials,
//     If-Match: *): answered 200 with new credentials (the page's remote ufrag changes), the
//     page stays connected, and Bob's frames of the WHIP peer keep growing afterwards.
//  5. WHIPClient.stop() (DELETE): Bob hears the WHIP peer leave, and the resource answers 404
//     afterwards.
//
// Options: --supervisor PATH, --artifacts DIR, --chromium PATH, --timeout-ms N (30000).
// Prints one JSON line; exit 0 when every check holds, 1 otherwise (`failures` says which).

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import {
  arg, chromiumArgs, cleanupOnExit, pageWait, runScript, startServer,
} from './harness.mjs';

const supervisorBin = arg('supervisor');
const artifacts = resolve(arg('artifacts', 'tests/artifacts/browser/whip'));
const chromiumBin = arg('chromium', '/usr/bin/chromium');
const timeoutMs = Number(arg('timeout-ms', '30000'));
if (!supervisorBin) {
  console.error('usage: whip.mjs --supervisor PATH [--artifacts DIR] [--chromium PATH] [--timeout-ms N]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const logs = [];
const children = [];
let browser = null;
cleanupOnExit(children, () => {});

async function open(url, name) {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  await context.grantPermissions(['camera', 'microphone']);
  const page = await context.newPage();
  page.on('console', (m) => logs.push(`[${name} console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[${name} pageerror] ${e.message}`));
  await page.goto(url);
  return page;
}

// Samples `stats` (evaluated in the page: {frames, audio}) every 200 ms until frames and audio
// are > 0, then until both grew: {first, grown} (null where the deadline passed).
async function growing(page, stats, ms) {
  return page.evaluate(async ([src, ms]) => {
    const sample = new Function(`return (${src})()`); // eslint-disable-line no-new-func
    const until = async (ok, deadline) => {
      for (;;) {
        const s = await sample();
        if (ok(s)) return s;
        if (performance.now() > deadline) return null;
        await new Promise((r) => { setTimeout(r, 200); });
      }
    };
    const deadline = performance.now() + ms;
    const first = await until((s) => s.frames > 0 && s.audio > 0, deadline);
    const grown = first && await until((s) => s.frames > first.frames && s.audio > first.audio, deadline);
    return { first, grown };
  }, [stats.toString(), ms]);
}

// A WHIP/WHEP page's inbound RTP: video frames decoded, audio bytes.
const whepStats = async () => {
  const list = await window.ferrosfuWhip.stats();
  const sum = (kind, key) => list.filter((s) => s.type === 'inbound-rtp' && s.kind === kind).reduce((n, s) => n + s[key], 0);
  return { frames: sum('video', 'framesDecoded'), audio: sum('audio', 'bytes') };
};

async function main(result) {
  const failures = result.failures;
  const check = (ok, what) => { if (!ok) failures.push(what); return ok; };
  const ws = await startServer({ target: 'ferrosfu', supervisorBin, artifacts, logs, children });
  const addr = ws.replace(/^ws:\/\//, '').replace(/\/$/, '');
  browser = await chromium.launch({
    executablePath: chromiumBin,
    headless: true,
    args: chromiumArgs('--allow-loopback-in-peer-connection'),
  });
  const room = `whip-${Math.random().toString(16).slice(2, 10)}`;
  const base = `http://${addr}/app`;

  // 1. The WHIP publisher.
  const pub = await open(`${base}/whip.html?roomId=${room}&fps=15`, 'whip');
  const state = await pageWait(pub, () => ['connected', 'failed'].includes(window.ferrosfuWhip.state)
    && window.ferrosfuWhip.state, null, timeoutMs);
  result.whip = await pub.evaluate(() => ({ state: window.ferrosfuWhip.state, error: window.ferrosfuWhip.error,
    resource: window.ferrosfuWhip.resource }));
  if (!check(state === 'connected', `the WHIP page did not connect: ${JSON.stringify(result.whip)}`)) {
    result.whip.diag = await pub.evaluate(() => window.ferrosfuWhip.diag());
    return;
  }
  check(new RegExp(`/whip/${room}/[0-9a-f]{32}$`).test(result.whip.resource), `resource URL ${result.whip.resource}`);

  // 2. Bob, a protoo peer, receives the WHIP publisher.
  const bob = await open(`${base}/?roomId=${room}&displayName=bob&autojoin=1&fps=15`, 'bob');
  const joined = await pageWait(bob, () => (window.ferrosfu.state === 'joined' && window.ferrosfu.producing() === 2
    && Object.values(window.ferrosfu.peers).find((p) => p.device && p.device.name === 'WHIP')) || null, null, timeoutMs);
  if (!check(joined, 'bob did not join, publish and see a peer with device "WHIP"')) return;
  const whipPeer = joined.id;
  const bobPeer = await bob.evaluate(() => window.ferrosfu.peerId);
  result.whipPeer = whipPeer;
  const bobStats = `async () => {
    const list = (await window.ferrosfu.stats()).filter((s) => s.peerId === ${JSON.stringify(whipPeer)});
    const sum = (kind, key) => list.filter((s) => s.kind === kind).reduce((n, s) => n + (s[key] || 0), 0);
    return { frames: sum('video', 'framesDecoded'), audio: sum('audio', 'bytesReceived') };
  }`;
  result.bob = await growing(bob, bobStats, timeoutMs);
  check(result.bob.first && result.bob.grown, `bob: the WHIP peer's video/audio did not arrive growing: ${JSON.stringify(result.bob)}`);

  // 3. WHEP players: the WHIP publisher, and Bob.
  const players = {};
  for (const [name, peer] of [['playWhip', whipPeer], ['playBob', bobPeer]]) {
    const page = await open(`${base}/whep.html?roomId=${room}&peer=${encodeURIComponent(peer)}`, name);
    players[name] = page;
    const s = await pageWait(page, () => ['connected', 'failed'].includes(window.ferrosfuWhip.state)
      && window.ferrosfuWhip.state, null, timeoutMs);
    const r = { state: s, error: await page.evaluate(() => window.ferrosfuWhip.error) };
    if (check(s === 'connected', `${name}: the WHEP page did not connect: ${JSON.stringify(r)}`)) {
      Object.assign(r, await growing(page, whepStats, timeoutMs));
      check(r.first && r.grown, `${name}: no video decoded and audio received growing: ${JSON.stringify(r)}`);
      r.resource = await page.evaluate(() => window.ferrosfuWhip.resource);
      check(new RegExp(`/whep/${room}/[0-9a-f]{32}$`).test(r.resource), `${name}: resource URL ${r.resource}`);
    }
    result[name] = r;
  }

  // 4. ICE restart of the WHIP session: the browser's new credentials go to ferrosfu (PATCH,
  // If-Match: *), ferrosfu's new ones come back (200, application/trickle-ice-sdpfrag) and go
  // into the page's remote description; the page stays connected and Bob's media keeps growing.
  // (Whether Chromium has moved to the new pair yet is recorded, not required: ferrosfu answers
  // the old credentials until the new ones are used, so media does not wait for it.)
  const before = await pub.evaluate(() => window.ferrosfuWhip.iceInfo());
  const ufragBefore = await pub.evaluate(() => window.ferrosfuWhip.remoteUfrag());
  const restart = await pub.evaluate(() => window.ferrosfuWhip.restart().then(() => 'ok', (e) => String(e)));
  const ufragAfter = await pub.evaluate(() => window.ferrosfuWhip.remoteUfrag());
  result.restart = { restart, before, ufragBefore, ufragAfter };
  check(restart === 'ok', `WHIP ICE restart failed: ${restart}`);
  check(ufragBefore && ufragAfter && ufragBefore !== ufragAfter, `the WHIP page's remote ICE ufrag did not change (${ufragBefore} → ${ufragAfter})`);
  check(await pageWait(pub, () => window.ferrosfuWhip.connectionState() === 'connected', null, timeoutMs),
    'the WHIP page is not connected after the ICE restart');
  result.afterRestart = await growing(bob, bobStats, timeoutMs);
  result.restart.later = await pub.evaluate(() => window.ferrosfuWhip.iceInfo());
  check(result.afterRestart.grown, `bob: the WHIP peer's media did not keep growing after the ICE restart: ${JSON.stringify(result.afterRestart)}`);
  check(logs.some((l) => l.includes('ICE restart')), 'the supervisor logged no "ICE restart"');

  // 5. DELETE: the publisher leaves.
  await pub.evaluate(() => window.ferrosfuWhip.stop());
  const left = await pageWait(bob, (id) => !window.ferrosfu.peers[id], whipPeer, timeoutMs);
  check(left, 'bob still sees the WHIP peer after DELETE');
  const gone = await bob.evaluate(async (url) => (await fetch(url, { method: 'DELETE' })).status, result.whip.resource);
  check(gone === 404, `DELETE of the deleted WHIP resource answered ${gone} (want 404)`);
  for (const [name, page] of Object.entries({ pub, bob, ...players })) await page.screenshot({ path: join(artifacts, `${name}.png`) });
}

await runScript({ name: 'whip', main, logs, artifacts, browsers: browser ? [browser] : [], children });
