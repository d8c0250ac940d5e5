// ferrosfu demo app: joins a room over protoo (the mediasoup-demo protocol), publishes the camera
// and microphone, and shows every other peer as a named video tile. Built by scripts/build-web
// (esbuild) into supervisor/web/dist; served by the supervisor at /app/.
//
// URL parameters: roomId, displayName, autojoin=1 (join at load), token (JWT for the server).
// Test hooks: window.ferrosfu = { state, peers, events, leave(), producing(), stats(), sendStats(),
// diag() }.

import { Device } from 'mediasoup-client';
import protooClient from 'protoo-client';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const hooks = {
  state: 'idle',
  peers: {},
  events: [],
  leave: () => leave(),
  producing: () => Object.keys(producers).length,
  stats: () => inboundStats(),
  sendStats: () => outboundStats(),
  diag: () => diagnostics(),
};
window.ferrosfu = hooks;

let protoo = null;
let device = null;
let sendTransport = null;
let recvTransport = null;
const producers = {}; // kind -> Producer
const consumers = new Map(); // consumerId -> { consumer, peerId }
let localStream = null;
let wantJoin = false;

function setState(s, text) {
  hooks.state = s;
  $('status').textContent = text || s;
}

function showError(msg) {
  const e = $('error');
  e.textContent = msg;
  e.hidden = !msg;
}

function randomId() {
  const a = new Uint8Array(6);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

// ---------------------------------------------------------------------------------------------
// Tiles

function tile(peerId, name, isMe) {
  let t = document.getElementById(`tile-${peerId}`);
  if (!t) {
    t = document.createElement('div');
    t.id = `tile-${peerId}`;
    t.className = isMe ? 'tile me' : 'tile';
    const v = document.createElement('video');
    v.autoplay = true;
    v.playsInline = true;
    v.muted = true; // audio plays through its own element
    v.srcObject = new MediaStream();
    const n = document.createElement('span');
    n.className = 'name';
    const b = document.createElement('span');
    b.className = 'badge';
    t.append(v, n, b);
    if (isMe) $('tiles').prepend(t);
    else $('tiles').append(t);
  }
  t.querySelector('.name').textContent = isMe ? `${name} (you)` : name;
  return t;
}

function removeTile(peerId) {
  const t = document.getElementById(`tile-${peerId}`);
  if (t) {
    t.querySelectorAll('audio').forEach((a) => { a.srcObject = null; });
    t.remove();
  }
}

function attachTrack(peerId, track) {
  const peer = hooks.peers[peerId];
  const t = tile(peerId, peer ? peer.displayName : peerId, false);
  if (track.kind === 'video') {
    const v = t.querySelector('video');
    const ms = new MediaStream([track]);
    v.srcObject = ms;
    v.play().catch(() => {});
  } else {
    const a = document.createElement('audio');
    a.autoplay = true;
    a.dataset.trackId = track.id;
    a.srcObject = new MediaStream([track]);
    t.append(a);
    a.play().catch(() => {});
  }
}

function detachTrack(peerId, track) {
  const t = document.getElementById(`tile-${peerId}`);
  if (!t) return;
  if (track.kind === 'video') {
    t.querySelector('video').srcObject = new MediaStream();
  } else {
    t.querySelectorAll(`audio[data-track-id="${track.id}"]`).forEach((a) => a.remove());
  }
}

// ---------------------------------------------------------------------------------------------
// Joining

async function join(roomId, displayName) {
  showError('');
  wantJoin = true;
  setState('joining', `connecting to ${roomId}…`);
  const peerId = randomId();
  let url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/?roomId=${encodeURIComponent(roomId)}&peerId=${peerId}`;
  if (params.get('token')) url += `&token=${encodeURIComponent(params.get('token'))}`;
  const transport = new protooClient.WebSocketTransport(url, {
    retry: { retries: 10, factor: 2, minTimeout: 500, maxTimeout: 4000 },
  });
  protoo = new protooClient.Peer(transport);
  $('join-form').hidden = true;
  $('call').hidden = false;
  $('room-label').textContent = `Room ${roomId}`;

  protoo.on('open', () => {
    // First connection, or a reconnection after the server dropped us (e.g. a worker died).
    setupCall(displayName).catch((e) => {
      console.error('join failed', e);
      showError(`join failed: ${e.message || e}`);
    });
  });
  protoo.on('disconnected', () => {
    setState('joining', 'reconnecting…');
    teardownMedia(false);
  });
  protoo.on('failed', () => setState('joining', 'cannot reach the server, retrying…'));
  protoo.on('close', () => {
    if (hooks.state !== 'closed') {
      teardownMedia(true);
      setState('closed', 'disconnected');
      if (wantJoin) showError('the server closed the connection');
    }
  });
  protoo.on('request', onServerRequest);
  protoo.on('notification', onNotification);
}

async function setupCall(displayName) {
  const routerRtpCapabilities = await protoo.request('getRouterRtpCapabilities');
  device = new Device();
  await device.load({ routerRtpCapabilities });

  const s = await protoo.request('createWebRtcTransport', {
    forceTcp: params.get('forceTcp') === '1',
    producing: true,
    consuming: false,
    sctpCapabilities: undefined,
  });
  sendTransport = device.createSendTransport({
    id: s.id,
    iceParameters: s.iceParameters,
    iceCandidates: s.iceCandidates,
    dtlsParameters: s.dtlsParameters,
    sctpParameters: s.sctpParameters || undefined,
  });
  sendTransport.on('connect', ({ dtlsParameters }, ok, fail) => {
    protoo.request('connectWebRtcTransport', { transportId: sendTransport.id, dtlsParameters })
      .then(ok).catch(fail);
  });
  sendTransport.on('produce', ({ kind, rtpParameters, appData }, ok, fail) => {
    protoo.request('produce', { transportId: sendTransport.id, kind, rtpParameters, appData })
      .then(({ id }) => ok({ id })).catch(fail);
  });

  const r = await protoo.request('createWebRtcTransport', {
    forceTcp: params.get('forceTcp') === '1',
    producing: false,
    consuming: true,
    sctpCapabilities: undefined,
  });
  recvTransport = device.createRecvTransport({
    id: r.id,
    iceParameters: r.iceParameters,
    iceCandidates: r.iceCandidates,
    dtlsParameters: r.dtlsParameters,
    sctpParameters: r.sctpParameters || undefined,
  });
  recvTransport.on('connect', ({ dtlsParameters }, ok, fail) => {
    protoo.request('connectWebRtcTransport', { transportId: recvTransport.id, dtlsParameters })
      .then(ok).catch(fail);
  });

  const { peers } = await protoo.request('join', {
    displayName,
    device: { flag: 'ferrosfu-demo', name: navigator.userAgentData?.brands?.[0]?.brand || 'browser', version: '1' },
    rtpCapabilities: device.rtpCapabilities,
    sctpCapabilities: undefined,
  });
  setState('joined', `in the room as ${displayName}`);
  for (const p of peers) addPeer(p);

  // Publish camera and microphone.
  try {
    localStream = localStream || await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: { ideal: 640 }, height: { ideal: 360 } },
    });
  } catch (e) {
    showError(`no camera/microphone: ${e.message || e} (you can still watch)`);
    return;
  }
  const me = tile('me', displayName, true);
  me.querySelector('video').srcObject = localStream;
  for (const track of localStream.getTracks()) {
    if (!device.canProduce(track.kind)) continue;
    producers[track.kind] = await sendTransport.produce({
      track,
      appData: { source: track.kind === 'audio' ? 'mic' : 'webcam' },
      stopTracks: false,
    });
  }
  updateButtons();
}

function addPeer(p) {
  hooks.peers[p.id] = { id: p.id, displayName: p.displayName, device: p.device };
  tile(p.id, p.displayName || p.id, false);
}

async function onServerRequest(request, accept, reject) {
  hooks.events.push({ method: request.method, data: request.data });
  if (request.method !== 'newConsumer') {
    reject(404, `unknown request ${request.method}`);
    return;
  }
  if (!recvTransport) {
    reject(409, 'no receive transport');
    return;
  }
  const { peerId, producerId, id, kind, rtpParameters, appData } = request.data;
  try {
    const consumer = await recvTransport.consume({ id, producerId, kind, rtpParameters, appData });
    consumers.set(consumer.id, { consumer, peerId });
    consumer.on('transportclose', () => consumers.delete(consumer.id));
    attachTrack(peerId, consumer.track);
    accept();
  } catch (e) {
    console.error('newConsumer failed', e);
    reject(500, String(e));
  }
}

function onNotification({ method, data }) {
  hooks.events.push({ method, data });
  switch (method) {
    case 'newPeer':
      addPeer(data);
      break;
    case 'peerClosed':
      delete hooks.peers[data.peerId];
      for (const [cid, c] of consumers) {
        if (c.peerId === data.peerId) {
          c.consumer.close();
          consumers.delete(cid);
        }
      }
      removeTile(data.peerId);
      break;
    case 'peerDisplayNameChanged': {
      const p = hooks.peers[data.peerId];
      if (p) p.displayName = data.displayName;
      tile(data.peerId, data.displayName, false);
      break;
    }
    case 'consumerClosed': {
      const c = consumers.get(data.consumerId);
      if (c) {
        detachTrack(c.peerId, c.consumer.track);
        c.consumer.close();
        consumers.delete(data.consumerId);
      }
      break;
    }
    case 'consumerPaused':
    case 'consumerResumed': {
      const c = consumers.get(data.consumerId);
      if (c) {
        const t = document.getElementById(`tile-${c.peerId}`);
        if (t && c.consumer.kind === 'audio') {
          t.querySelector('.badge').textContent = method === 'consumerPaused' ? 'muted' : '';
        }
      }
      break;
    }
    default:
      // consumerScore, producerScore, activeSpeaker, …: nothing to show yet.
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// Controls

function updateButtons() {
  const mic = producers.audio;
  const cam = producers.video;
  $('mic').textContent = mic && mic.paused ? 'Unmute mic' : 'Mute mic';
  $('mic').classList.toggle('off', Boolean(mic && mic.paused));
  $('mic').disabled = !mic;
  $('cam').textContent = cam && cam.paused ? 'Start camera' : 'Stop camera';
  $('cam').classList.toggle('off', Boolean(cam && cam.paused));
  $('cam').disabled = !cam;
}

async function toggle(kind) {
  const p = producers[kind];
  if (!p) return;
  if (p.paused) {
    p.resume();
    await protoo.request('resumeProducer', { producerId: p.id });
  } else {
    p.pause();
    await protoo.request('pauseProducer', { producerId: p.id });
  }
  if (kind === 'video') {
    const me = document.getElementById('tile-me');
    if (me) me.querySelector('video').style.visibility = p.paused ? 'hidden' : 'visible';
  }
  updateButtons();
}

function teardownMedia(stopLocal) {
  for (const { consumer } of consumers.values()) consumer.close();
  consumers.clear();
  for (const k of Object.keys(producers)) {
    producers[k].close();
    delete producers[k];
  }
  if (sendTransport) sendTransport.close();
  if (recvTransport) recvTransport.close();
  sendTransport = null;
  recvTransport = null;
  for (const id of Object.keys(hooks.peers)) removeTile(id);
  hooks.peers = {};
  if (stopLocal && localStream) {
    localStream.getTracks().forEach((t) => t.stop());
    localStream = null;
    removeTile('me');
  }
}

function leave() {
  wantJoin = false;
  setState('closed', 'left the room');
  if (protoo) protoo.close();
  protoo = null;
  teardownMedia(true);
  $('tiles').replaceChildren();
  $('call').hidden = true;
  $('join-form').hidden = false;
}

async function inboundStats() {
  const out = [];
  for (const { consumer, peerId } of consumers.values()) {
    const report = await consumer.getStats();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        out.push({
          peerId,
          kind: s.kind || consumer.kind,
          bytesReceived: s.bytesReceived || 0,
          packetsReceived: s.packetsReceived || 0,
          framesDecoded: s.framesDecoded || 0,
        });
      }
    });
  }
  return out;
}

// What the send transport reports: the browser's bandwidth estimate (availableOutgoingBitrate,
// grown by the server's transport-wide feedback) and the bytes each kind sent.
async function outboundStats() {
  const out = { availableOutgoingBitrate: 0, videoBytesSent: 0, audioBytesSent: 0 };
  if (!sendTransport) return out;
  (await sendTransport.getStats()).forEach((s) => {
    if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) {
      out.availableOutgoingBitrate = s.availableOutgoingBitrate;
    } else if (s.type === 'outbound-rtp') {
      out[s.kind === 'video' ? 'videoBytesSent' : 'audioBytesSent'] += s.bytesSent || 0;
    }
  });
  return out;
}

// What a test prints when media does not flow: transport states, consumers, raw inbound stats.
async function diagnostics() {
  const list = [];
  for (const { consumer, peerId } of consumers.values()) {
    const inbound = [];
    (await consumer.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' || s.type === 'candidate-pair' || s.type === 'transport') {
        inbound.push({ type: s.type, state: s.state || s.dtlsState, bytesReceived: s.bytesReceived,
          packetsReceived: s.packetsReceived, framesDecoded: s.framesDecoded, keyFramesDecoded: s.keyFramesDecoded,
          pliCount: s.pliCount, firCount: s.firCount });
      }
    });
    list.push({ peerId, kind: consumer.kind, paused: consumer.paused, track: consumer.track.readyState, inbound });
  }
  return {
    sendTransport: sendTransport?.connectionState,
    recvTransport: recvTransport?.connectionState,
    events: hooks.events.map((e) => e.method),
    consumers: list,
  };
}

// ---------------------------------------------------------------------------------------------

$('room').value = params.get('roomId') || '';
$('name').value = params.get('displayName') || '';
$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  join($('room').value.trim(), $('name').value.trim());
});
$('mic').addEventListener('click', () => toggle('audio').catch((e) => showError(String(e))));
$('cam').addEventListener('click', () => toggle('video').catch((e) => showError(String(e))));
$('leave').addEventListener('click', leave);
if (params.get('autojoin') === '1' && $('room').value && $('name').value) {
  join($('room').value, $('name').value);
}
