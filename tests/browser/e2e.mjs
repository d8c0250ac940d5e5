// Browser end-to-end test of the demo app: two headless Chromium pages (fake camera and
// microphone) join the same room through the real supervisor; each must decode the other's
// video and receive its audio; then one leaves and the other must get `peerClosed`.
//
// Runs inside a loopback-only network namespace (Chromium then gathers 127.0.0.1 candidates):
//   unshare -n sh -c 'ip link set lo up; exec node tests/browser/e2e.mjs --supervisor PATH --artifacts DIR'
// Prints one JSON line with the result; exit 0 on success, 1 on failure.

import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const supervisorBin = arg('supervisor');
const artifacts = arg('artifacts', 'tests/artifacts/browser');
const chromiumBin = arg('chromium', '/usr/bin/chromium');
const timeoutMs = Number(arg('timeout-ms', '45000'));
if (!supervisorBin) {
  console.error('usage: e2e.mjs --supervisor PATH [--artifacts DIR] [--chromium PATH]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const logs = [];
let server;
let browser;

function startSupervisor() {
  return new Promise((resolve, reject) => {
    server = spawn(supervisorBin, [
      '--dev', '--http-listen', '127.0.0.1:0', '--log-format', 'json', '--log-level', 'info',
      '--worker-cores', '0', '--rtc-ports', '42000-42999', '--rtc-listen-ip', '127.0.0.1',
      // The store and recordings of this run stay with its artifacts, out of the source tree.
      '--database-url', `sqlite://${artifacts}/ferrosfu.db`, '--recordings-dir', `${artifacts}/recordings`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => reject(new Error('supervisor did not log "http listening"')), 30000);
    server.on('exit', (code) => reject(new Error(`supervisor exited (${code})`)));
    readline.createInterface({ input: server.stderr }).on('line', (l) => logs.push(l));
    readline.createInterface({ input: server.stdout }).on('line', (l) => {
      logs.push(l);
      try {
        const v = JSON.parse(l);
        if (v.message === 'http listening') {
          clearTimeout(timer);
          resolve(v.addr);
        }
      } catch { /* not JSON */ }
    });
  });
}

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

async function main() {
  const addr = await startSupervisor();
  browser = await chromium.launch({
    executablePath: chromiumBin,
    headless: true, // playwright gives every launch a fresh temporary profile
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
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
    await page.goto(`http://${addr}/app/?roomId=${room}&displayName=${name}&autojoin=1`);
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
  // The publishers' bandwidth estimate grows past the browser's 300 kbps start only with the
  // server's transport-wide congestion feedback.
  // Chrome grows it step by step from the feedback: wait for it (up to 20 s) rather than sample
  // once at a moment that depends on how busy the machine is; the Rust side checks the value.
  for (const [name, page] of Object.entries(pages)) {
    let last;
    try {
      await waitFor(`${name}'s bandwidth estimate past 700 kbps`, async () => {
        last = await page.evaluate(() => window.ferrosfu.sendStats());
        return { ok: (last.availableOutgoingBitrate || 0) > 700000 };
      }, 20000);
    } catch (e) {
      logs.push(`[${name}] ${e.message}`);
    }
    figures[name].send = last;
  }
  // Both tiles visible with names: screenshots for the record.
  for (const [name, page] of Object.entries(pages)) {
    const names = await page.$$eval('.tile .name', (els) => els.map((e) => e.textContent));
    figures[name].tiles = names;
    await page.screenshot({ path: join(artifacts, `${name}.png`) });
  }
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
  if (server) server.kill('SIGKILL');
}
process.exit(code);
