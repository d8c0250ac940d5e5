// The tile grid of the demo app: one tile per peer (video, name, audio elements) with what the
// server reports about it — the active speaker (outline), the consumer's score (bars), the
// layers forwarded (consumerLayersChanged, "S2 T2"), the decoded resolution (the video
// element's videoWidth × videoHeight, refreshed every second and on `resize`) — and a
// Low / Med / High picker for simulcast and SVC consumers (setConsumerPreferredLayers; keys
// 1 2 3 on a focused tile). The grid fits every tile into the window (up to 9 without
// scrolling on a laptop screen): see layout().

const $ = (id) => document.getElementById(id);

const QUALITY_NAMES = { 1: ['Auto'], 2: ['Low', 'High'], 3: ['Low', 'Med', 'High'] };
const BARS = 5;
const GAP_PX = 10; // .tiles gap in app.css
const MIN_TILE_PX = 160;

// peerId -> { video: {consumerId, type, spatialLayers, preferred, onPick} | null }
const state = new Map();
let speaking = null;

function tileId(peerId) {
  return `tile-${peerId}`;
}

export function findTile(peerId) {
  return document.getElementById(tileId(peerId));
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

// The tile of a peer ('me' for the local one), created on first use; its name is set each time.
export function tile(peerId, name, isMe) {
  let t = findTile(peerId);
  if (!t) {
    t = el('div', isMe ? 'tile me' : 'tile');
    t.id = tileId(peerId);
    t.dataset.peerId = peerId;
    const v = document.createElement('video');
    v.autoplay = true;
    v.playsInline = true;
    v.muted = true; // audio plays through its own element
    v.srcObject = new MediaStream();
    v.addEventListener('resize', () => showResolution(t));

    const info = el('div', 'info');
    const quality = el('span', 'quality');
    quality.setAttribute('role', 'img');
    quality.setAttribute('aria-label', 'no score yet');
    for (let i = 0; i < BARS; i++) quality.append(el('i'));
    info.append(quality, el('span', 'layers'), el('span', 'res'));

    const label = el('div', 'label');
    label.append(el('span', 'name'), el('span', 'badge'));

    const picker = el('div', 'picker');
    picker.setAttribute('role', 'group');
    picker.setAttribute('aria-label', 'Receive quality');
    picker.hidden = true;

    t.append(v, info, label, picker);
    if (isMe) $('tiles').prepend(t);
    else $('tiles').append(t);
    if (!isMe) {
      t.tabIndex = 0;
      t.addEventListener('keydown', (e) => onKey(peerId, e));
    }
    state.set(peerId, { video: null });
    if (speaking === peerId) t.classList.add('speaking');
  }
  t.querySelector('.name').textContent = isMe ? `${name} (you)` : name;
  return t;
}

export function removeTile(peerId) {
  const t = findTile(peerId);
  if (t) {
    t.querySelectorAll('audio').forEach((a) => { a.srcObject = null; });
    t.remove();
  }
  state.delete(peerId);
}

export function clearTiles() {
  $('tiles').replaceChildren();
  state.clear();
  speaking = null;
}

// ---------------------------------------------------------------------------------------------
// What the server says about a tile

// The peer speaking now (activeSpeaker), or null: one tile outlined at a time.
export function setSpeaker(peerId) {
  speaking = peerId;
  document.querySelectorAll('.tile.speaking').forEach((t) => {
    if (t.dataset.peerId !== peerId) t.classList.remove('speaking');
  });
  if (peerId) {
    const t = findTile(peerId);
    if (t) t.classList.add('speaking');
  }
}

// A score of 0-10 as 5 bars, coloured by band (good ≥ 7, fair ≥ 4, poor below).
export function setScore(peerId, score, detail) {
  const t = findTile(peerId);
  if (!t) return;
  const q = t.querySelector('.quality');
  const lit = Math.round((Math.max(0, Math.min(10, score)) * BARS) / 10);
  q.querySelectorAll('i').forEach((b, i) => b.classList.toggle('on', i < lit));
  q.dataset.band = score >= 7 ? 'good' : score >= 4 ? 'fair' : 'poor';
  q.dataset.score = String(score);
  q.title = `score ${score}/10${detail ? ` (${detail})` : ''}`;
  q.setAttribute('aria-label', q.title);
}

// The layers a simulcast/SVC consumer forwards (null/null: none), or a label of the tile's own.
export function setLayers(peerId, spatial, temporal) {
  const t = findTile(peerId);
  if (!t) return;
  const l = t.querySelector('.layers');
  if (spatial === null || spatial === undefined) {
    l.textContent = 'no layer';
    l.title = 'the server forwards no layer of this video';
  } else {
    l.textContent = `S${spatial} T${temporal ?? '-'}`;
    l.title = `spatial layer ${spatial}, temporal layer ${temporal ?? 'all'}`;
  }
}

export function setInfo(peerId, text, title) {
  const t = findTile(peerId);
  if (!t) return;
  const l = t.querySelector('.layers');
  l.textContent = text;
  l.title = title || '';
}

// The server paused this peer's video for our downlink's sake (the tile dims, says why).
export function setStarved(peerId, starved) {
  const t = findTile(peerId);
  if (!t) return;
  t.classList.toggle('starved', starved);
  t.querySelector('.badge').textContent = starved ? 'low bandwidth' : '';
}

export function setBadge(peerId, text) {
  const t = findTile(peerId);
  if (t) t.querySelector('.badge').textContent = text;
}

// The spatial layers of a consumer's rtpParameters ("L3T3" → 3; mediasoup gives simulcast and
// SVC consumers one encoding carrying the producer's scalabilityMode).
export function spatialLayersOf(rtpParameters) {
  const mode = rtpParameters?.encodings?.[0]?.scalabilityMode || '';
  const m = /^L(\d+)T(\d+)/.exec(mode);
  return m ? Number(m[1]) : 1;
}

// A peer's video consumer: simulcast / SVC ones with more than one spatial layer get the picker;
// onPick(spatialLayer) sends the preference and resolves when the server accepted it.
export function setVideoConsumer(peerId, consumer) {
  const s = state.get(peerId);
  const t = findTile(peerId);
  if (!s || !t) return;
  s.video = consumer;
  const picker = t.querySelector('.picker');
  picker.replaceChildren();
  const n = consumer ? Math.min(consumer.spatialLayers, 3) : 0;
  const layered = consumer && (consumer.type === 'simulcast' || consumer.type === 'svc') && n > 1;
  picker.hidden = !layered;
  t.querySelector('.layers').textContent = '';
  if (!layered) return;
  // The server's default preference is the highest layer.
  consumer.preferred = n - 1;
  QUALITY_NAMES[n].forEach((label, spatial) => {
    const b = el('button', 'q', label);
    b.type = 'button';
    b.dataset.spatial = String(spatial);
    b.title = `receive spatial layer ${spatial} (key ${spatial + 1})`;
    b.addEventListener('click', () => pick(peerId, spatial).catch(() => {}));
    picker.append(b);
  });
  showPreferred(t, consumer.preferred);
}

function showPreferred(t, spatial) {
  t.querySelectorAll('.picker button').forEach((b) => {
    b.setAttribute('aria-pressed', String(Number(b.dataset.spatial) === spatial));
  });
}

async function pick(peerId, spatial) {
  const s = state.get(peerId);
  const t = findTile(peerId);
  if (!s || !s.video || !t) return;
  const c = s.video;
  const before = c.preferred;
  c.preferred = spatial;
  showPreferred(t, spatial);
  t.classList.add('pending');
  try {
    await c.onPick(spatial);
  } catch (e) {
    if (s.video === c) {
      c.preferred = before;
      showPreferred(t, before);
    }
    throw e;
  } finally {
    t.classList.remove('pending');
  }
}

function onKey(peerId, e) {
  const s = state.get(peerId);
  if (!s || !s.video || e.altKey || e.ctrlKey || e.metaKey) return;
  const spatial = Number(e.key) - 1;
  const n = findTile(peerId)?.querySelectorAll('.picker button').length || 0;
  if (Number.isInteger(spatial) && spatial >= 0 && spatial < n) {
    e.preventDefault();
    pick(peerId, spatial).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Media elements

export function setVideoTrack(peerId, stream) {
  const t = findTile(peerId);
  if (!t) return;
  const v = t.querySelector('video');
  v.srcObject = stream;
  v.play().catch(() => {});
  showResolution(t);
}

export function addAudioTrack(peerId, track) {
  const t = findTile(peerId);
  if (!t) return;
  const a = document.createElement('audio');
  a.autoplay = true;
  a.dataset.trackId = track.id;
  a.srcObject = new MediaStream([track]);
  t.append(a);
  a.play().catch(() => {});
}

export function removeTrack(peerId, track) {
  const t = findTile(peerId);
  if (!t) return;
  if (track.kind === 'video') {
    t.querySelector('video').srcObject = new MediaStream();
    setVideoConsumer(peerId, null);
    showResolution(t);
  } else {
    t.querySelectorAll(`audio[data-track-id="${track.id}"]`).forEach((a) => a.remove());
  }
}

function showResolution(t) {
  const v = t.querySelector('video');
  const r = t.querySelector('.res');
  const text = v && v.videoWidth ? `${v.videoWidth}×${v.videoHeight}` : '';
  if (r.textContent !== text) r.textContent = text;
}

setInterval(() => document.querySelectorAll('.tile').forEach(showResolution), 1000);

// ---------------------------------------------------------------------------------------------
// Layout: as many columns as a near-square grid needs (2 tiles → 2, 5-9 → 3, 10-16 → 4), each
// tile as large as both the window's width and its height allow at 16:9; the CSS grid
// (auto-fill) takes fewer columns when the window is too narrow for the minimum tile width.

function layout() {
  const grid = $('tiles');
  if (!grid || grid.offsetParent === null) return;
  const n = Math.max(1, grid.children.length);
  const width = grid.parentElement.clientWidth;
  const top = grid.getBoundingClientRect().top + window.scrollY;
  const height = Math.max(window.innerHeight - top - 16, 200);
  const cols = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  const byWidth = (width - (cols - 1) * GAP_PX) / cols;
  const byHeight = ((height - (rows - 1) * GAP_PX) / rows) * (16 / 9);
  const tileW = Math.max(MIN_TILE_PX, Math.floor(Math.min(byWidth, byHeight)));
  grid.style.setProperty('--tile-min', `${tileW}px`);
  grid.style.maxWidth = `${cols * tileW + (cols - 1) * GAP_PX}px`;
  grid.dataset.count = String(grid.children.length);
}

export function startLayout() {
  const grid = $('tiles');
  new MutationObserver(layout).observe(grid, { childList: true });
  new ResizeObserver(layout).observe(grid.parentElement);
  window.addEventListener('resize', layout);
  layout();
}

// ---------------------------------------------------------------------------------------------
// What a test reads

export function describeTiles() {
  return Array.from(document.querySelectorAll('.tile'), (t) => {
    const v = t.querySelector('video');
    const q = t.querySelector('.quality');
    const pressed = t.querySelector('.picker button[aria-pressed="true"]');
    return {
      peerId: t.dataset.peerId,
      name: t.querySelector('.name').textContent,
      speaking: t.classList.contains('speaking'),
      score: q.dataset.score === undefined ? null : Number(q.dataset.score),
      bars: q.querySelectorAll('i.on').length,
      layers: t.querySelector('.layers').textContent,
      resolution: t.querySelector('.res').textContent,
      videoWidth: v.videoWidth,
      videoHeight: v.videoHeight,
      picker: Array.from(t.querySelectorAll('.picker button'), (b) => b.textContent),
      preferred: pressed ? pressed.textContent : null,
      box: (({ width, height }) => ({ width: Math.round(width), height: Math.round(height) }))(t.getBoundingClientRect()),
    };
  });
}

// Resolves when the video of a peer's tile has a width in [lo, hi] (its `resize` event), or at
// the deadline: {ok, ms (since the call), at (performance.now()), width, height, widths: [[at,
// width], …] the sizes it went through}.
export function waitVideoWidth(peerId, lo, hi, timeoutMs) {
  const t = findTile(peerId);
  if (!t) return Promise.resolve({ ok: false, error: `no tile for ${peerId}` });
  const v = t.querySelector('video');
  const t0 = performance.now();
  const widths = [];
  return new Promise((resolve) => {
    const done = (ok) => {
      v.removeEventListener('resize', check);
      clearTimeout(timer);
      const at = performance.now();
      resolve({ ok, ms: Math.round(at - t0), at, width: v.videoWidth, height: v.videoHeight, widths });
    };
    const check = () => {
      widths.push([performance.now(), v.videoWidth]);
      if (v.videoWidth >= lo && v.videoWidth <= hi) done(true);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    v.addEventListener('resize', check);
    check();
  });
}
