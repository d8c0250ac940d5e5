// Browser end-to-end test of data channels in the demo app (supervisor/web/src/chat.js, real
// mediasoup-client): Alice and Bob join a room and chat — each must see the other's message
// within 1 s (timed from the send in Node to the message in the other page, both polled every
// 20 ms); a message over 4 KiB sent past the app's own check is refused by the server
// (`chatMessageRejected`, code too_long) and reaches nobody; a burst over the rate limit is
// partly refused (rate_limited). Carol joins later and must get `chatHistory` with the earlier
// messages (names, order). Alice shares a 5 MB random file: Bob and Carol must assemble it with
// the same SHA-256 (checked in their pages, and here against Alice's).
//
// Runs inside a loopback-only network namespace:
//   unshare -n sh -c 'ip link set lo up; exec node tests/browser/chat.mjs --supervisor PATH --artifacts DIR'
// Prints one JSON line with the result; exit 0 on success, 1 on failure.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { pageWait, startSupervisor as start } from './harness.mjs';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const supervisorBin = arg('supervisor');
const artifacts = arg('artifacts', 'tests/artifacts/browser/chat');
const chromiumBin = arg('chromium', '/usr/bin/chromium');
const fileBytes = Number(arg('file-bytes', String(5 * 1024 * 1024)));
if (!supervisorBin) {
  console.error('usage: chat.mjs --supervisor PATH [--artifacts DIR] [--chromium PATH]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const logs = [];
const children = [];
let browser;

async function must(page, what, fn, argv, ms) {
  const v = await pageWait(page, fn, argv, ms);
  if (!v) throw new Error(`timed out (${ms} ms) waiting for ${what}`);
  return v;
}

async function joinRoom(context, addr, room, name) {
  const page = await context.newPage();
  page.on('console', (m) => logs.push(`[${name} console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[${name} pageerror] ${e.message}`));
  // 5 fps: three camera encoders share two cores with the data.
  await page.goto(`http://${addr}/app/?roomId=${room}&displayName=${name}&autojoin=1&fps=5&simulcast=0&p2p=0`);
  await must(page, `${name} joined with open data channels`,
    () => window.ferrosfu.state === 'joined' && window.ferrosfu.chat.ready(), null, 30000);
  return page;
}

// Sends `text` from `from`; the time until `to` has it (ms, measured here).
async function chatLatency(from, to, text) {
  const t0 = Date.now();
  await from.evaluate((t) => window.ferrosfu.chat.send(t), text);
  await must(to, `"${text}" at the other page`,
    (t) => window.ferrosfu.chat.messages().some((m) => !m.mine && m.text === t), text, 10000);
  return Date.now() - t0;
}

async function main() {
  const addr = await start({ supervisorBin, artifacts, logs, children });
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
  const room = `chat-${Math.random().toString(16).slice(2, 10)}`;
  const alice = await joinRoom(context, addr, room, 'alice');
  const bob = await joinRoom(context, addr, room, 'bob');
  // Each has the other's chat and file channels.
  for (const [name, page] of [['alice', alice], ['bob', bob]]) {
    await must(page, `${name}'s data consumers open`,
      () => window.ferrosfu.chat.dataConsumers().filter((c) => c.readyState === 'open').length >= 2, null, 15000);
  }
  const out = { latencyMs: {} };
  out.latencyMs.aliceToBob = await chatLatency(alice, bob, 'hello from alice');
  out.latencyMs.bobToAlice = await chatLatency(bob, alice, 'hi alice, bob here');
  // The server refuses a message over 4 KiB: Alice is told, Bob never sees it.
  const long = 'x'.repeat(5000);
  await alice.evaluate((t) => window.ferrosfu.chat.sendRaw(t), long);
  out.tooLong = await must(alice, 'chatMessageRejected too_long',
    () => window.ferrosfu.events.find((e) => e.method === 'chatMessageRejected' && e.data.code === 'too_long')?.data,
    null, 5000);
  // A burst of 30 at once: the rate limit (10/s, burst 10) refuses some of them.
  await bob.evaluate(() => { for (let i = 0; i < 30; i++) window.ferrosfu.chat.sendRaw(`burst ${i}`); });
  out.rateLimited = await must(bob, 'chatMessageRejected rate_limited',
    () => window.ferrosfu.events.filter((e) => e.method === 'chatMessageRejected' && e.data.code === 'rate_limited').length,
    null, 5000);
  await alice.evaluate(() => window.ferrosfu.chat.messages().length); // settle
  out.burstAtAlice = await alice.evaluate(() => window.ferrosfu.chat.messages().filter((m) => m.text.startsWith('burst ')).length);
  out.longAtBob = await bob.evaluate((n) => window.ferrosfu.chat.messages().some((m) => m.text.length === n), long.length);
  // Carol joins late: the history has the earlier messages, with names, in order.
  const carol = await joinRoom(context, addr, room, 'carol');
  const history = await must(carol, 'chatHistory',
    () => window.ferrosfu.events.find((e) => e.method === 'chatHistory')?.data, null, 10000);
  out.history = history.messages.slice(0, 2).map((m) => ({ displayName: m.displayName, text: m.text, sentAt: m.sentAt }));
  out.historyLength = history.messages.length;
  await must(carol, "carol's data consumers open",
    () => window.ferrosfu.chat.dataConsumers().filter((c) => c.readyState === 'open').length >= 4, null, 15000);
  for (const page of [alice, bob]) {
    await must(page, 'data consumers of carol',
      () => window.ferrosfu.chat.dataConsumers().filter((c) => c.readyState === 'open').length >= 4, null, 15000);
  }
  // A 5 MB file from Alice to Bob and Carol.
  const t0 = Date.now();
  const sent = await alice.evaluate(async (n) => {
    const bytes = new Uint8Array(n);
    for (let at = 0; at < n; at += 65536) crypto.getRandomValues(bytes.subarray(at, Math.min(n, at + 65536)));
    return window.ferrosfu.chat.sendBytes('random.bin', bytes);
  }, fileBytes);
  out.file = { sent, received: {} };
  for (const [name, page] of [['bob', bob], ['carol', carol]]) {
    const f = await must(page, `${name} has the file`,
      (id) => window.ferrosfu.chat.files().find((x) => x.fileId === id), sent.fileId, 120000);
    out.file.received[name] = { ok: f.ok, sha256: f.sha256, size: f.size, ms: Date.now() - t0 };
  }
  out.file.mbitPerS = +((fileBytes * 8) / 1e6 / ((Date.now() - t0) / 1000)).toFixed(2);
  for (const [name, page] of [['alice', alice], ['bob', bob], ['carol', carol]]) {
    await page.screenshot({ path: join(artifacts, `chat-${name}.png`) });
  }
  const failures = [];
  const check = (ok, what) => { if (!ok) failures.push(what); };
  check(out.latencyMs.aliceToBob <= 1000 && out.latencyMs.bobToAlice <= 1000, `chat latency over 1 s: ${JSON.stringify(out.latencyMs)}`);
  check(!out.longAtBob, 'the refused long message reached bob');
  check(out.burstAtAlice > 0 && out.burstAtAlice < 30, `burst at alice: ${out.burstAtAlice} of 30`);
  check(out.history[0]?.displayName === 'alice' && out.history[0]?.text === 'hello from alice'
    && out.history[1]?.displayName === 'bob' && out.history[1]?.text === 'hi alice, bob here', `history: ${JSON.stringify(out.history)}`);
  for (const [name, r] of Object.entries(out.file.received)) {
    check(r.ok && r.sha256 === sent.sha256 && r.size === fileBytes, `${name}'s file: ${JSON.stringify(r)}`);
  }
  out.failures = failures;
  out.ok = failures.length === 0;
  return out;
}

let code = 0;
try {
  const out = await main();
  code = out.ok ? 0 : 1;
  console.log(JSON.stringify(out));
  if (!out.ok) console.error(logs.slice(-200).join('\n'));
} catch (e) {
  code = 1;
  console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) }));
  console.error(logs.slice(-200).join('\n'));
} finally {
  if (browser) await browser.close().catch(() => {});
  for (const c of children) c.kill('SIGKILL');
}
process.exit(code);
