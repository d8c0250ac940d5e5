// Live captions: the server's `transcript` notifications ({peerId, producerId, text, final,
// startMs, endMs}; see README "Live captions"). A caption line under the speaker's tile shows
// the words as they are recognized (partials in italics, replaced by the next); a final one
// stays a few seconds and goes to the transcript panel beside the chat. Transcription itself is
// started by an operator (`POST /api/rooms/:roomId/transcription`).

import { findTile } from './tiles.js';

const SHOW_FINAL_MS = 6000;
const MAX_LINES = 500;

const timers = new Map();
let panel = null;
let names = () => new Map();
const log = [];

const $ = (id) => document.getElementById(id);

// `nameOf(peerId)` gives a display name for the transcript panel.
export function init(nameOf) {
  names = nameOf;
  panel = $('transcript');
}

function line(tile) {
  let c = tile.querySelector('.caption');
  if (!c) {
    c = document.createElement('div');
    c.className = 'caption';
    c.setAttribute('aria-live', 'polite');
    tile.append(c);
  }
  return c;
}

export function onTranscript(t, myPeerId) {
  const peerId = t.peerId === myPeerId ? 'me' : t.peerId;
  const tile = findTile(peerId);
  if (tile) {
    const c = line(tile);
    c.textContent = t.text;
    c.classList.toggle('partial', !t.final);
    c.hidden = false;
    clearTimeout(timers.get(peerId));
    if (t.final) timers.set(peerId, setTimeout(() => { c.hidden = true; }, SHOW_FINAL_MS));
  }
  if (!t.final) return;
  const entry = { peerId: t.peerId, name: names(t.peerId), text: t.text, startMs: t.startMs, endMs: t.endMs };
  log.push(entry);
  if (log.length > MAX_LINES) log.shift();
  if (panel) {
    panel.hidden = false;
    const li = document.createElement('li');
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = `${entry.name} · ${(entry.startMs / 1000).toFixed(1)} s`;
    const text = document.createElement('span');
    text.textContent = entry.text;
    li.append(who, text);
    const list = panel.querySelector('ul');
    list.append(li);
    while (list.children.length > MAX_LINES) list.firstChild.remove();
    list.scrollTop = list.scrollHeight;
  }
}

// For tests and tools: the final captions so far.
export function transcript() {
  return log.slice();
}
