// Browser test of ICE restart in the demo app: Alice's Chromium runs in a network namespace of
// its own (veth pair) and talks with Bob through ferrosfu; her namespace then drops all her UDP
// (and ICE-TCP to the media ports, so her transports really go down instead of moving to TCP)
// for 5 s while signaling (TCP to the HTTP port) stays up. The demo app sees its transports go
// `disconnected`/`failed`, asks ferrosfu for new ICE parameters (protoo `restartIce`) and hands
// them to mediasoup-client (`transport.restartIce`); once the block is lifted, media resumes.
//
//   unshare -n sh -c 'ip link set lo up && exec node tests/browser/icerestart.mjs \
//     --supervisor target/debug/ferrosfu --artifacts tests/artifacts/browser/icerestart'
//
// Needs root (ip netns, veth, nft).
//
//   this namespace                                      netns fsi-<pid>
//   ferrosfu: HTTP/WS on 10.215.0.1:PORT, media         Alice's Chromium (10.215.0.2)
//   10.215.0.1:22000-22999; Bob's Chromium              (nftables table `fsice` during the block)
//   fsih<pid> 10.215.0.1/30  ─── veth ───────────────  fsin<pid> 10.215.0.2/30
//
// Pass: before the block both decode the other's video and hear the other; during it Alice's
// transports leave `connected` and the app restarts ICE at least once (hooks.iceRestarts) while
// the firewall drops her packets; within --timeout-ms after it, Alice's and Bob's decoded
// frames and received audio grow again and Alice's transports are `connected`.
//
// Options: --supervisor PATH, --artifacts DIR, --chromium PATH, --timeout-ms N (30000),
// --block-ms N (5000). Prints one JSON line; exit 0 when every check holds, 1 otherwise.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import {
  arg, chromiumArgs, cleanupOnExit, pageWait, runScript, startServer,
} from './harness.mjs';
import { Veth } from './netns.mjs';

const supervisorBin = arg('supervisor');
const artifacts = resolve(arg('artifacts', 'tests/artifacts/browser/icerestart'));
const chromiumBin = arg('chromium', '/usr/bin/chromium');
const timeoutMs = Number(arg('timeout-ms', '30000'));
const blockMs = Number(arg('block-ms', '5000'));
if (!supervisorBin) {
  console.error('usage: icerestart.mjs --supervisor PATH [--artifacts DIR] [--chromium PATH] [--timeout-ms N] [--block-ms N]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const HOST_IP = '10.215.0.1';
const NS_IP = '10.215.0.2';
const RTC_PORTS = '22000-22999';
const logs = [];
const children = [];
const browsers = [];
const log = (l) => logs.push(`[icerestart] ${l}`);
const veth = new Veth({ tag: 'fsi', hostIp: HOST_IP, nsIp: NS_IP, log });
cleanupOnExit(children, () => veth.cleanup());

// Alice's UDP, and her TCP to the media ports, dropped both ways (signaling TCP passes).
function block() {
  const [lo, hi] = RTC_PORTS.split('-');
  return veth.nft(`table inet fsice {
  chain out {
    type filter hook output priority 0; policy accept;
    ip daddr ${HOST_IP} meta l4proto udp counter drop
    ip daddr ${HOST_IP} tcp dport ${lo}-${hi} counter drop
    ip daddr ${HOST_IP} tcp dport 44444-44454 counter drop
  }
  chain in {
    type filter hook input priority 0; policy accept;
    ip saddr ${HOST_IP} meta l4proto udp drop
    ip saddr ${HOST_IP} tcp sport ${lo}-${hi} drop
    ip saddr ${HOST_IP} tcp sport 44444-44454 drop
  }
}
`, join(artifacts, 'block.nft'));
}
const unblock = () => veth.exec('nft', 'delete', 'table', 'inet', 'fsice');

async function launch(inNetns, origin) {
  const b = await chromium.launch({
    executablePath: inNetns ? veth.chromiumWrapper(chromiumBin, artifacts) : chromiumBin,
    headless: true,
    // getUserMedia needs a secure context: the test serves plain HTTP on the veth address.
    args: chromiumArgs('--disable-quic', `--unsafely-treat-insecure-origin-as-secure=${origin}`),
  });
  browsers.push(b);
  return b;
}

async function openApp(browser, url, name) {
  const context = await browser.newContext({ viewport: { width: 960, height: 600 } });
  await context.grantPermissions(['camera', 'microphone']);
  const page = await context.newPage();
  page.on('console', (m) => logs.push(`[${name} console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[${name} pageerror] ${e.message}`));
  await page.goto(url);
  return page;
}

// Video frames decoded and audio bytes received by the page, sampled every 200 ms until both
// are above `base` (null at the deadline).
function growth(page, base, ms) {
  return page.evaluate(async ([b, ms]) => {
    const deadline = performance.now() + ms;
    for (;;) {
      const list = await window.ferrosfu.stats();
      const sum = (kind, key) => list.filter((s) => s.kind === kind).reduce((n, s) => n + (s[key] || 0), 0);
      const s = { frames: sum('video', 'framesDecoded'), audio: sum('audio', 'bytesReceived') };
      if (s.frames > b.frames && s.audio > b.audio) return s;
      if (performance.now() > deadline) return null;
      await new Promise((r) => { setTimeout(r, 200); });
    }
  }, [base, ms]);
}

async function main(result) {
  const failures = result.failures;
  const check = (ok, what) => { if (!ok) failures.push(what); return ok; };
  veth.setup();
  const ws = await startServer({
    target: 'ferrosfu', ip: HOST_IP, supervisorBin, artifacts, logs, children, rtcPorts: RTC_PORTS,
  });
  const addr = ws.replace(/^ws:\/\//, '').replace(/\/$/, '');
  const origin = `http://${addr}`;
  result.links = await veth.linksUp(10000);
  const [bAlice, bBob] = await Promise.all([launch(true, origin), launch(false, origin)]);
  const room = `ice-${Math.random().toString(16).slice(2, 10)}`;
  const app = (name) => `${origin}/app/?roomId=${room}&displayName=${name}&autojoin=1&fps=15&p2p=0`;
  const joined = () => (window.ferrosfu.state === 'joined' && window.ferrosfu.producing() === 2) || window.ferrosfu.state === 'failed';
  const alice = await openApp(bAlice, app('alice'), 'alice');
  if (!check(await pageWait(alice, joined, null, timeoutMs) && await alice.evaluate(() => window.ferrosfu.state === 'joined'),
    'alice did not join and publish')) return;
  const bob = await openApp(bBob, app('bob'), 'bob');
  if (!check(await pageWait(bob, joined, null, timeoutMs) && await bob.evaluate(() => window.ferrosfu.state === 'joined'),
    'bob did not join and publish')) return;
  const pages = { alice, bob };
  const zero = { frames: 0, audio: 0 };
  for (const [name, page] of Object.entries(pages)) {
    result[name] = { before: await growth(page, zero, timeoutMs) };
    if (!check(result[name].before, `${name}: no media before the block`)) return;
  }

  // The block.
  result.firewall = block();
  const blockedAt = Date.now();
  const wentDown = await pageWait(alice, () => window.ferrosfu.iceRestarts.length > 0 || null, null, blockMs + 10000);
  await new Promise((r) => { setTimeout(r, Math.max(0, blockMs - (Date.now() - blockedAt))); });
  result.dropped = veth.counter('fsice', 'out');
  unblock();
  result.blockedMs = Date.now() - blockedAt;
  check(wentDown, `alice restarted no ICE during a ${blockMs} ms block`);
  check(result.dropped > 0, `the firewall dropped ${result.dropped} packets (want > 0)`);

  // Media resumes: growth past what each page had at the end of the block.
  for (const [name, page] of Object.entries(pages)) {
    const atUnblock = await growth(page, zero, 1000);
    const after = await growth(page, atUnblock || zero, timeoutMs);
    result[name].atUnblock = atUnblock;
    result[name].after = after;
    check(after, `${name}: media did not resume within ${timeoutMs} ms after the block`);
  }
  result.alice.iceRestarts = await alice.evaluate(() => window.ferrosfu.iceRestarts);
  result.alice.transports = await alice.evaluate(() => window.ferrosfu.diag()).then((d) => d.transports || d).catch((e) => String(e));
  for (const [name, page] of Object.entries(pages)) await page.screenshot({ path: join(artifacts, `${name}.png`) });
}

await runScript({ name: 'icerestart', main, logs, artifacts, browsers: browsers, children, cleanup: () => veth.cleanup() });
