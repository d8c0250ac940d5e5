// What the Chromium tests against ferrosfu or the stock mediasoup reference server share: starting
// the server under test, serving the test page (page/layers-page.js, bundled by esbuild), and the
// fake microphones' WAV files.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));

// Starts the server under test on `ip` (ferrosfu: the supervisor at `supervisorBin` with workers
// on `workerCores` and `supervisorArgs` more, its database and recordings under `artifacts`; mediasoup: reference-server.mjs with the worker at
// `workerBin`, plus `referenceArgs`). Its output lines go to `logs`, the process to `children`.
// `logLevel`: ferrosfu's --log-level (default $FERROSFU_LOG_LEVEL, else info).
// Resolves with its protoo URL once it listens (30 s at most).
export function startServer({
  target, ip = '127.0.0.1', supervisorBin, workerBin, artifacts, db = 'ferrosfu.db', referenceArgs = [],
  workerCores = '0', rtcPorts = '22000-22999', supervisorArgs = [], logs, children,
  logLevel = process.env.FERROSFU_LOG_LEVEL || 'info',
}) {
  const [cmd, args, env, ready] = target === 'ferrosfu'
    ? [supervisorBin, [
      '--dev', '--http-listen', `${ip}:0`, '--log-format', 'json', '--log-level', logLevel,
      '--worker-cores', workerCores, '--rtc-ports', rtcPorts, '--rtc-listen-ip', ip,
      '--database-url', `sqlite://${artifacts}/${db}`, '--recordings-dir', `${artifacts}/recordings`,
      ...supervisorArgs,
    ], process.env, (l) => {
      try {
        const v = JSON.parse(l);
        return v.message === 'http listening' ? v.addr : null;
      } catch { return null; }
    }]
    : [process.execPath, [join(here, 'reference-server.mjs'), '--listen', `${ip}:0`, '--rtc-ip', ip, ...referenceArgs],
      { ...process.env, MEDIASOUP_WORKER_BIN: workerBin }, (l) => (l.match(/^listening (\S+)/) || [])[1]];
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const timer = setTimeout(() => fail(new Error(`${target} did not start listening within 30 s`)), 30000);
    child.on('exit', (code) => fail(new Error(`${target} exited (${code})`)));
    for (const s of [child.stdout, child.stderr]) {
      readline.createInterface({ input: s }).on('line', (l) => {
        logs.push(`[${target}] ${l}`);
        const addr = ready(l);
        if (addr) {
          clearTimeout(timer);
          ok(`ws://${addr}/`);
        }
      });
    }
  });
}

// Serves the test page (titled `title`) on `ip`: {server, base}.
export async function servePage(title, ip = '127.0.0.1') {
  const built = await esbuild.build({
    entryPoints: [join(here, 'page/layers-page.js')], bundle: true, format: 'iife', platform: 'browser',
    target: 'chrome100', write: false, logLevel: 'warning',
  });
  const js = built.outputFiles[0].text;
  const html = `<!doctype html><meta charset="utf-8"><title>${title}</title>`
    + '<body style="margin:0;background:#222"><video id="v" autoplay playsinline muted style="width:640px;height:360px"></video>'
    + '<script src="/layers-page.js"></script>';
  const server = http.createServer((req, res) => {
    const isJs = req.url.startsWith('/layers-page.js');
    res.writeHead(200, { 'content-type': isJs ? 'text/javascript' : 'text/html' });
    res.end(isJs ? js : html);
  });
  await new Promise((r) => server.listen(0, ip, r));
  return { server, base: `http://${ip}:${server.address().port}/` };
}

// A 10 s, 48 kHz mono 16-bit WAV of `sample(t)` (-1..1) at `path` (Chromium loops it as the fake
// microphone); returns `path`.
export function wav(path, sample) {
  const rate = 48000;
  const n = rate * 10;
  const b = Buffer.alloc(44 + n * 2);
  b.write('RIFF', 0); b.writeUInt32LE(36 + n * 2, 4); b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 2, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34);
  b.write('data', 36); b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(32767 * Math.max(-1, Math.min(1, sample(i / rate)))), 44 + i * 2);
  writeFileSync(path, b);
  return path;
}

// The ferrosfu supervisor under test (startServer's options): resolves with its HTTP address.
export async function startSupervisor(opts) {
  const ws = await startServer({ target: 'ferrosfu', ...opts });
  return ws.replace(/^ws:\/\//, '').replace(/\/$/, '');
}

// Opens the test page in a new context of `browser` as peer `params.name` (role `params.role`;
// every param goes into the page's query, with a fresh peerId) and waits until it is ready;
// its console goes to `logs`. {page, peerId, name}.
export async function openPeer(browser, base, params, logs) {
  const { name, role } = params;
  const context = await browser.newContext({ viewport: { width: 640, height: 360 } });
  await context.grantPermissions(['camera', 'microphone']);
  const page = await context.newPage();
  page.on('console', (m) => logs.push(`[${name} console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[${name} pageerror] ${e.message}`));
  const peerId = `${name}-${Math.random().toString(16).slice(2, 8)}`;
  const q = new URLSearchParams({ ...params, peerId });
  await page.goto(`${base}?${q}`);
  await page.waitForFunction(() => ['ready', 'failed'].includes(window.t && window.t.state), null, { timeout: 30000 });
  const err = await page.evaluate(() => window.t.error);
  if (err) throw new Error(`${name} (${role}): ${err}`);
  return { page, peerId, name };
}

// Opens the demo app (/app/ of the supervisor at `addr`) in a new page of `context` as `name`
// in `roomId` with autojoin and the URL parameters `query` (a string, "&k=v…"); its console goes
// to `logs`. Waits (30 s) until `ready` (evaluated in the page) holds; returns the page.
export async function openApp({ context, addr, roomId, name, query = '', logs, ready, diag }) {
  const page = await context.newPage();
  page.on('console', (m) => logs.push(`[${name} console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[${name} pageerror] ${e.message}`));
  await page.goto(`http://${addr}/app/?roomId=${roomId}&displayName=${name}&autojoin=1${query}`);
  await pagePoll(page, `${name} joined`, ready, null, 30000, diag);
  return page;
}

// Evaluates fn(arg) in the page (it may be async) every 200 ms until it is truthy: its value.
// At the deadline, fails naming `what`, with `diag()` (evaluated in the page) when given.
export async function pagePoll(page, what, fn, arg, ms, diag) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await page.evaluate(fn, arg).catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) {
      const d = diag ? await page.evaluate(diag).catch(() => null) : null;
      throw new Error(`timed out (${ms} ms) waiting for ${what}: ${JSON.stringify(d)}`);
    }
    await new Promise((r) => { setTimeout(r, 200); });
  }
}

// Waits for fn(arg) (evaluated in the page) to be truthy: its value, or null at the deadline.
export async function pageWait(page, fn, arg, ms) {
  try {
    const h = await page.waitForFunction(fn, arg, { timeout: ms, polling: 50 });
    return await h.jsonValue();
  } catch {
    return null;
  }
}

// A script that made network namespaces (or other system state) undoes it on every way out:
// `cleanup` runs at exit; on SIGINT/SIGTERM/SIGHUP the `children` ({ kill }) are killed first
// and the script exits 130.
export function cleanupOnExit(children, cleanup) {
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      for (const c of children) {
        try { c.kill('SIGKILL'); } catch { /* gone */ }
      }
      cleanup();
      process.exit(130);
    });
  }
}

// The value after `--name` on the command line, else `dflt`.
export function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

// Headless Chromium flags every test uses (fake camera and microphone, no background
// throttling, autoplay), plus `extra`.
export function chromiumArgs(...extra) {
  return [
    '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--autoplay-policy=no-user-gesture-required', '--disable-background-timer-throttling',
    '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows',
    ...extra,
  ];
}

// Runs a test script's `main(result)` ({ok, failures}: main pushes to failures), then writes
// the logs to `<artifacts>/<name>.log`, prints the result as one JSON line (and the last log
// lines on failure), closes `browsers`, kills `children`, runs `cleanup` and exits 0 when ok,
// 1 otherwise.
export async function runScript({ name, main, logs, artifacts, browsers, children, cleanup = () => {} }) {
  const result = { ok: false, failures: [] };
  let code = 1;
  try {
    await main(result);
    result.ok = result.failures.length === 0;
    code = result.ok ? 0 : 1;
  } catch (e) {
    result.failures.push(String(e && e.stack || e));
  }
  writeFileSync(join(artifacts, `${name}.log`), `${logs.join('\n')}\n`);
  console.log(JSON.stringify(result));
  if (!result.ok) console.error(logs.filter((l) => !l.includes('"level":"DEBUG"')).slice(-80).join('\n'));
  for (const b of browsers) await b.close().catch(() => {});
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
  cleanup();
  process.exit(code);
}
