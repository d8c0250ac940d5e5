// Browser end-to-end test of live captions in the demo app (supervisor/web/src/captions.js):
// Chromium's fake microphone plays speech made by espeak-ng (--use-file-for-fake-audio-capture,
// looped), Alice and Bob join a room, transcription is started over REST, and Bob's page must
// show Alice's words under her tile and final captions in its transcript panel; the final text
// is scored against the spoken words.
//
// Runs inside a loopback-only network namespace:
//   unshare -n sh -c 'ip link set lo up; exec node tests/browser/captions.mjs --supervisor PATH --artifacts DIR'
// Prints one JSON line with the result; exit 0 on success, 1 on failure.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { arg, chromiumArgs, openApp, pagePoll, runScript, startSupervisor } from './harness.mjs';

const supervisorBin = arg('supervisor');
const artifacts = arg('artifacts', 'tests/artifacts/browser/captions');
const chromiumBin = arg('chromium', '/usr/bin/chromium');
if (!supervisorBin) {
  console.error('usage: captions.mjs --supervisor PATH [--artifacts DIR] [--chromium PATH]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const SPOKEN = 'hello world this is a test of the captions';
const logs = [];
const children = [];
const browsers = [];

// SPOKEN by espeak-ng (en-us+klatt, 160 words/min) as a 48 kHz mono WAV with 1 s of silence
// before and 4 s after (Chromium loops the file).
function speechWav() {
  const raw = join(artifacts, 'speech-raw.wav');
  const wav48 = join(artifacts, 'speech-48k.wav');
  execFileSync('espeak-ng', ['-v', 'en-us+klatt', '-s', '160', '-w', raw, SPOKEN]);
  execFileSync('gst-launch-1.0', ['-q', 'filesrc', `location=${raw}`, '!', 'wavparse', '!', 'audioconvert',
    '!', 'audioresample', '!', 'audio/x-raw,format=S16LE,rate=48000,channels=1', '!', 'wavenc', '!',
    'filesink', `location=${wav48}`]);
  const b = readFileSync(wav48);
  const at = b.indexOf('data');
  const speech = b.subarray(at + 8, at + 8 + b.readUInt32LE(at + 4));
  const silence = (s) => Buffer.alloc(2 * Math.round(48000 * s));
  const data = Buffer.concat([silence(1), speech, silence(4)]);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(36 + data.length, 4); h.write('WAVEfmt ', 8);
  h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22);
  h.writeUInt32LE(48000, 24); h.writeUInt32LE(96000, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34);
  h.write('data', 36); h.writeUInt32LE(data.length, 40);
  const path = join(artifacts, 'speech.wav');
  writeFileSync(path, Buffer.concat([h, data]));
  return path;
}

function accuracy(heard) {
  const words = heard.toLowerCase().split(/\s+/).filter(Boolean);
  let found = 0;
  for (const w of SPOKEN.split(' ')) {
    const i = words.indexOf(w);
    if (i >= 0) { found += 1; words.splice(i, 1); }
  }
  return found / SPOKEN.split(' ').length;
}

async function main(result) {
  const audio = speechWav();
  const addr = await startSupervisor({ supervisorBin, artifacts, logs, children });
  const browser = await chromium.launch({
    executablePath: chromiumBin, headless: true,
    args: chromiumArgs('--allow-loopback-in-peer-connection', '--disable-quic',
      `--use-file-for-fake-audio-capture=${audio}`),
  });
  browsers.push(browser);
  const context = await browser.newContext({ viewport: { width: 960, height: 600 } });
  await context.grantPermissions(['camera', 'microphone']);
  const roomId = `cc-${Math.random().toString(16).slice(2, 10)}`;
  const ready = () => window.ferrosfu.state === 'joined' && window.ferrosfu.producing() >= 2;
  const alice = await openApp({ context, addr, roomId, name: 'alice', query: '&fps=5&simulcast=0&p2p=0', logs, ready });
  const bob = await openApp({ context, addr, roomId, name: 'bob', query: '&fps=5&simulcast=0&p2p=0', logs, ready });
  const aliceId = await alice.evaluate(() => window.ferrosfu.peerId);

  const r = await fetch(`http://${addr}/api/rooms/${roomId}/transcription`, { method: 'POST' });
  result.start = { status: r.status, body: await r.json() };
  if (r.status !== 201) throw new Error(`transcription start: ${r.status} ${JSON.stringify(result.start.body)}`);

  // Alice's words under her tile in Bob's page, as they come.
  result.tileCaption = await pagePoll(bob, 'a caption under alice\'s tile', (id) => {
    const c = document.querySelector(`.tile[data-peer-id="${id}"] .caption`);
    return c && !c.hidden && c.textContent.trim() ? c.textContent : null;
  }, aliceId, 30000);
  // Final captions of Alice in Bob's transcript panel: two, since the tap may have started in
  // the middle of the looped sentence (the first is then a fragment); the best one is scored.
  const finals = await pagePoll(bob, 'two final captions of alice in the transcript', (id) => {
    const f = window.ferrosfu.transcript().filter((t) => t.peerId === id);
    const panel = document.querySelectorAll('#transcript li').length;
    return f.length >= 2 && panel >= 2 ? f.map((t) => ({ text: t.text, name: t.name })) : null;
  }, aliceId, 45000);
  const scored = finals.map((f) => ({ ...f, accuracy: accuracy(f.text) }));
  scored.sort((a, b) => b.accuracy - a.accuracy);
  const final = scored[0];
  result.finals = finals;
  result.final = final;
  result.accuracy = final.accuracy;
  result.transcript = await (await fetch(`http://${addr}/api/rooms/${roomId}/transcript`)).json();
  await bob.screenshot({ path: join(artifacts, 'captions-bob.png') });
  if (final.name !== 'alice') result.failures.push(`transcript names ${final.name}, not alice`);
  if (result.accuracy < 0.5) result.failures.push(`heard "${final.text}" for "${SPOKEN}"`);
  if (!result.transcript.captions?.some((c) => c.peerId === aliceId)) {
    result.failures.push(`no stored caption of alice: ${JSON.stringify(result.transcript)}`);
  }
}

runScript({ name: 'captions', main, logs, artifacts, browsers, children });
