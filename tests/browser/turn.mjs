// Browser interop test of the built-in TURN server: a Chromium page behind a firewall that
// passes nothing but TCP to the signaling port and to TCP 443 reaches ferrosfu only through
// TURN over TLS (turns:), with the demo app at `?iceTransportPolicy=relay`.
//
//   unshare -n sh -c 'ip link set lo up && exec node tests/browser/turn.mjs \
//     --supervisor target/debug/ferrosfu --artifacts tests/artifacts/browser/turn'
//
// Needs root (ip netns, veth, nft, port 443). Run it in a namespace of its own (unshare -n, as
// above and as tests/src/browser.rs does): it then only adds a namespace `fsturn-<pid>` and a
// veth pair, and no packet leaves the machine.
//
//   this namespace (host side)                         netns fst-<pid>
//   ferrosfu: HTTPS/WSS on 10.214.0.1:PORT,            Alice's Chromium (10.214.0.2), with
//   media 10.214.0.1:22000-22999, TURN 10.214.0.1:3478  nftables: out to 10.214.0.1 TCP PORT and
//   (UDP+TCP) and :443 (TLS); Bob's Chromium           TCP 443 only; in: replies only
//   fsth<pid> 10.214.0.1/30  ─── veth ───────────────  fstn<pid> 10.214.0.2/30
//
// The certificate (HTTPS and turns:) is made here by openssl: a throwaway CA and a leaf for
// IP 10.214.0.1 (--turn-public-host), both under --artifacts. Alice's Chromium trusts the CA
// through an NSS database in a HOME of its own ($HOME/.pki/nssdb, certutil): Chromium verifies
// the turns: server's certificate like any TLS server's (measured: with neither that database
// nor --ignore-certificate-errors no relay comes up), and the test runs without that flag, so the
// chain and the IP SAN ferrosfu presents on 443 are checked for real. The pages' own HTTPS is
// let through by playwright (ignoreHTTPSErrors), which does not reach the TURN sockets.
//
// Alice (netns, relay-only) publishes camera and microphone; Bob (host side, default policy)
// joins the same room. Pass: each decodes the other's video (framesDecoded grows) and hears
// the other (audio bytesReceived grows); both of Alice's transports' selected candidate pairs
// have a local candidate of type `relay` with relayProtocol `tls` (RTCPeerConnection getStats;
// the page's peer connections are recorded by an init script); the peer connections were made
// with iceTransportPolicy `relay` and a turns: URL; Alice's firewall dropped packets (her
// TURN/UDP and TCP 3478 attempts: it was in the way); ferrosfu's /metrics counts relayed
// packets (ferrosfu_turn_relayed_packets_total > 0) and refused nothing as malformed.
//
// Options: --supervisor PATH, --artifacts DIR, --chromium PATH, --timeout-ms N (45000: each wait).
// Prints one JSON line; exit 0 when every check holds, 1 otherwise (`failures` says which), 2 on
// bad usage.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import {
  arg, chromiumArgs, cleanupOnExit, pageWait, runScript, startServer,
} from './harness.mjs';
import { Veth } from './netns.mjs';

const supervisorBin = arg('supervisor');
const artifacts = resolve(arg('artifacts', 'tests/artifacts/browser/turn'));
const chromiumBin = arg('chromium', '/usr/bin/chromium');
const timeoutMs = Number(arg('timeout-ms', '45000'));
if (!supervisorBin) {
  console.error('usage: turn.mjs --supervisor PATH [--artifacts DIR] [--chromium PATH] [--timeout-ms N]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const HOST_IP = '10.214.0.1';
const NS_IP = '10.214.0.2';
const TURN_PORT = 3478;
const TURNS_PORT = 443;
const logs = [];
const children = [];
const browsers = [];
const temps = [];
const log = (l) => logs.push(`[turn] ${l}`);
const veth = new Veth({ tag: 'fst', hostIp: HOST_IP, nsIp: NS_IP, log });
const run = (cmd, ...a) => veth.run(cmd, ...a);

// ---------------------------------------------------------------------------------------------
// The namespace, the veth pair and Alice's firewall; removed on every exit path.

// Inside Alice's namespace only: out, TCP to the signaling port and to 443 of the node (and
// loopback); in, the replies; everything else (every UDP, TCP 3478, the media ports) dropped.
function firewall(signalingPort) {
  const rules = `table inet fsturn {
  chain out {
    type filter hook output priority 0; policy drop;
    oif "lo" accept
    ip daddr ${HOST_IP} tcp dport { ${signalingPort}, ${TURNS_PORT} } accept
    counter comment "dropped out"
  }
  chain in {
    type filter hook input priority 0; policy drop;
    iif "lo" accept
    ct state established,related accept
    counter comment "dropped in"
  }
}
`;
  return veth.nft(rules, join(artifacts, 'alice.nft'));
}
// Packets the firewall dropped going out (Alice's attempts at anything but TLS/signaling).
const droppedOut = () => veth.counter('fsturn', 'out');

cleanupOnExit(children, () => veth.cleanup());

// ---------------------------------------------------------------------------------------------
// The certificate: a throwaway CA and a leaf for HOST_IP; an NSS database trusting the CA.

function makeCerts() {
  const d = join(artifacts, 'tls');
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  const p = (f) => join(d, f);
  run('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=ferrosfu turn test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  run('openssl', 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', p('node.key'), '-out', p('node.csr'), '-subj', `/CN=${HOST_IP}`);
  writeFileSync(p('node.ext'), `subjectAltName=IP:${HOST_IP}\nbasicConstraints=critical,CA:FALSE\n`
    + 'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
  run('openssl', 'x509', '-req', '-in', p('node.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'),
    '-CAcreateserial', '-days', '2', '-extfile', p('node.ext'), '-out', p('node.pem'));
  return { cert: p('node.pem'), key: p('node.key'), ca: p('ca.pem') };
}
// A HOME whose $HOME/.pki/nssdb trusts `ca` for TLS servers (what Chromium on Linux reads).
function nssHome(ca) {
  const home = mkdtempSync(join(tmpdir(), 'ferrosfu-turn-home-'));
  temps.push(home);
  const db = join(home, '.pki', 'nssdb');
  mkdirSync(db, { recursive: true });
  run('certutil', '-N', '-d', `sql:${db}`, '--empty-password');
  run('certutil', '-A', '-d', `sql:${db}`, '-n', 'ferrosfu turn test CA', '-t', 'C,,', '-i', ca);
  return home;
}

// ---------------------------------------------------------------------------------------------

// Records every RTCPeerConnection the page makes (mediasoup-client's), with its configuration.
function recordPeerConnections() {
  const Native = window.RTCPeerConnection;
  window.turnTest = { pcs: [] };
  window.RTCPeerConnection = class extends Native {
    constructor(config, ...rest) {
      super(config, ...rest);
      window.turnTest.pcs.push({ pc: this, config: config || {} });
    }
  };
}

// Each peer connection's configuration and selected candidate pair (local and remote candidate).
async function selectedPairs() {
  const out = [];
  for (const { pc, config } of window.turnTest.pcs) {
    if (pc.connectionState === 'closed') continue;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    const cand = (id) => {
      const c = id && stats.get(id);
      return c ? { candidateType: c.candidateType, relayProtocol: c.relayProtocol, protocol: c.protocol,
        address: c.address, port: c.port, url: c.url } : null;
    };
    out.push({
      connectionState: pc.connectionState,
      iceTransportPolicy: config.iceTransportPolicy || 'all',
      iceServers: (config.iceServers || []).flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls])),
      local: pair ? cand(pair.localCandidateId) : null,
      remote: pair ? cand(pair.remoteCandidateId) : null,
      pairState: pair ? pair.state : null,
    });
  }
  return out;
}

// `inAlice`: Chromium runs inside the namespace, through a wrapper playwright takes for the
// browser (ip netns exec keeps the pipe file descriptors playwright drives it by); `home`: a HOME
// whose NSS database trusts the test CA.
async function launch(inAlice, home) {
  let executablePath = chromiumBin;
  if (inAlice) executablePath = veth.chromiumWrapper(chromiumBin, artifacts);
  const b = await chromium.launch({
    executablePath,
    headless: true,
    env: { ...process.env, ...(home ? { HOME: home } : {}) },
    args: chromiumArgs('--disable-quic'),
  });
  browsers.push(b);
  return b;
}

async function openApp(browser, url, name) {
  const context = await browser.newContext({ viewport: { width: 960, height: 600 }, ignoreHTTPSErrors: true });
  await context.grantPermissions(['camera', 'microphone']);
  await context.addInitScript(recordPeerConnections);
  const page = await context.newPage();
  page.on('console', (m) => logs.push(`[${name} console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[${name} pageerror] ${e.message}`));
  await page.goto(url);
  return page;
}

async function main(result) {
  const failures = result.failures;
  const check = (ok, what) => { if (!ok) failures.push(what); return ok; };
  veth.setup();
  const tls = makeCerts();
  const home = nssHome(tls.ca);
  const ws = await startServer({
    target: 'ferrosfu', ip: HOST_IP, supervisorBin, artifacts, logs, children,
    supervisorArgs: ['--tls-cert', tls.cert, '--tls-key', tls.key,
      '--turn-listen', `${HOST_IP}:${TURN_PORT}`, '--turn-tls-listen', `${HOST_IP}:${TURNS_PORT}`,
      '--turn-public-host', HOST_IP],
  });
  const addr = ws.replace(/^ws:\/\//, '').replace(/\/$/, '');
  const signalingPort = Number(addr.split(':').pop());
  result.signaling = addr;
  result.firewall = firewall(signalingPort);

  result.links = await veth.linksUp(10000);
  const [bAlice, bBob] = await Promise.all([launch(true, home), launch(false, null)]);
  const room = `turn-${Math.random().toString(16).slice(2, 10)}`;
  const app = (name, extra) => `https://${addr}/app/?roomId=${room}&displayName=${name}&autojoin=1&fps=15&p2p=0${extra}`;
  const joined = () => (window.ferrosfu.state === 'joined' && window.ferrosfu.producing() === 2) || window.ferrosfu.state === 'failed';
  // Alice publishes first (relay-only), then Bob joins.
  const alice = await openApp(bAlice, app('alice', '&iceTransportPolicy=relay'), 'alice');
  if (!check(await pageWait(alice, joined, null, timeoutMs) && await alice.evaluate(() => window.ferrosfu.state === 'joined'),
    `alice did not join and publish within ${timeoutMs} ms`)) return;
  const bob = await openApp(bBob, app('bob', ''), 'bob');
  if (!check(await pageWait(bob, joined, null, timeoutMs) && await bob.evaluate(() => window.ferrosfu.state === 'joined'),
    `bob did not join and publish within ${timeoutMs} ms`)) return;
  const pages = { alice, bob };

  // Media into each page: a first sample with video decoded and audio received, then one where
  // both have grown (each sampled every 200 ms in the page, up to the deadline).
  for (const [name, page] of Object.entries(pages)) {
    const r = await page.evaluate(async (ms) => {
      const sample = async () => {
        const list = await window.ferrosfu.stats();
        const sum = (kind, key) => list.filter((s) => s.kind === kind).reduce((n, s) => n + (s[key] || 0), 0);
        return { frames: sum('video', 'framesDecoded'), audio: sum('audio', 'bytesReceived') };
      };
      const until = async (ok, deadline) => {
        for (;;) {
          const s = await sample();
          if (ok(s)) return s;
          if (performance.now() > deadline) return null;
          await new Promise((res) => { setTimeout(res, 200); });
        }
      };
      const deadline = performance.now() + ms;
      const first = await until((s) => s.frames > 0 && s.audio > 0, deadline);
      const grown = first && await until((s) => s.frames > first.frames && s.audio > first.audio, deadline);
      return { first, grown };
    }, timeoutMs);
    result[name] = r;
    if (!check(r.first && r.grown, `${name}: no video decoded and audio received growing within ${timeoutMs} ms (${JSON.stringify(r)})`)) {
      result[name].diag = await page.evaluate(() => window.ferrosfu.diag()).catch((e) => String(e));
    }
  }

  // Alice's peer connections: relay-only, given a turns: URL, connected through a TLS relay.
  result.alice = { ...result.alice, pairs: await alice.evaluate(selectedPairs) };
  result.bob = { ...result.bob, pairs: await bob.evaluate(selectedPairs) };
  const pairs = result.alice.pairs;
  check(pairs.length >= 2, `alice has ${pairs.length} peer connections (want the send and the receive transport)`);
  for (const [i, p] of pairs.entries()) {
    check(p.iceTransportPolicy === 'relay', `alice's peer connection ${i}: iceTransportPolicy ${p.iceTransportPolicy}`);
    check(p.iceServers.includes(`turns:${HOST_IP}:${TURNS_PORT}?transport=tcp`),
      `alice's peer connection ${i}: no turns:${HOST_IP}:${TURNS_PORT} in ${JSON.stringify(p.iceServers)}`);
    check(p.local && p.local.candidateType === 'relay' && p.local.relayProtocol === 'tls',
      `alice's peer connection ${i}: selected local candidate ${JSON.stringify(p.local)} (want relay over tls)`);
  }
  // The firewall was in the way: Alice's attempts at TURN over UDP/TCP 3478 were dropped.
  result.droppedByFirewall = droppedOut();
  check(result.droppedByFirewall > 0, `alice's firewall dropped ${result.droppedByFirewall} packets (want > 0: her TURN/UDP and TCP 3478 attempts)`);

  // The server counted relayed packets.
  const metrics = await bob.evaluate(async () => (await fetch('/metrics')).text());
  const turnLines = metrics.split('\n').filter((l) => l.startsWith('ferrosfu_turn_'));
  result.turnMetrics = turnLines;
  const relayed = turnLines.filter((l) => /^ferrosfu_turn_relayed_packets_total(\{[^}]*\})? /.test(l))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  result.relayedPackets = relayed;
  check(relayed > 0, `ferrosfu_turn_relayed_packets_total is ${relayed} (want > 0)`);
  // Nothing the browsers sent was refused as malformed (their Binding requests to the TURN
  // port are answered, not bounced back to the listener).
  result.malformed = turnLines.filter((l) => l.startsWith('ferrosfu_turn_refused_total{reason="malformed"} '))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  check(result.malformed === 0, `ferrosfu_turn_refused_total{reason="malformed"} is ${result.malformed} (want 0)`);
  for (const [name, page] of Object.entries(pages)) await page.screenshot({ path: join(artifacts, `${name}.png`) });
}

await runScript({
  name: 'turn', main, logs, artifacts, browsers, children,
  cleanup: () => {
    veth.cleanup();
    for (const t of temps) rmSync(t, { recursive: true, force: true });
  },
});
