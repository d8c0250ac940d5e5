// ferrosfu demo app: joins a room over protoo (the mediasoup-demo protocol), publishes the camera
// (VP8 simulcast, 3 encodings, as mediasoup-demo) and microphone, and shows every other peer as a
// named video tile (tiles.js: speaker outline, score bars, layers, resolution, quality picker).
// Built by scripts/build-web (esbuild) into supervisor/web/dist; served by the supervisor at /app/.
//
// URL parameters: roomId, displayName, autojoin=1 (join at load), token (JWT for the server),
// forceTcp=1, simulcast=0 (one encoding), codec=vp8|vp9|h264 (vp9: one SVC encoding, svc=MODE,
// default L3T3_KEY), fps=N (camera frame rate; default: the camera's), dynacast=0 (keep every
// simulcast encoding on even when the server says no one needs it), iceTransportPolicy=relay
// (only TURN-relayed candidates; the TURN servers are those the server hands out), p2p=0 (do
// not offer to take two-party calls peer to peer: p2p.js; the server decides when), e2ee=1 (end-to-
// end encrypted media: e2ee.js; the room is flagged, the server cannot record it; e2eeLegacy=1
// encrypts through encodedInsertableStreams instead of RTCRtpScriptTransform).
// Test hooks: window.ferrosfu = { state, joinedAt (Date.now() of the join answer), peerId, peers, events, iceRestarts, deviations, leave(), producing(),
// stats(), sendStats(), producerStats(), request(method, data), diag(), tiles(), consumers(),
// p2p ({state(), log(), selectedPair(), inbound()}: the direct call), gaps (gaps.js: start(peerIds),
// report(), stop()),
// waitVideoWidth(peerId, lo, hi, ms), downlink (the last downlinkBwe), dynacast ({enabled,
// needed, active}: what the server asked for and which encodings are on), chat (chat.js:
// ready(), send(text), sendRaw(text), messages(), dataConsumers(), sendBytes(name, Uint8Array)
// → {fileId, sha256, size}, files()) }.

import { Device } from 'mediasoup-client';
import protooClient from 'protoo-client';
import * as tiles from './tiles.js';
import { Chat } from './chat.js';
import { FrameGaps } from './gaps.js';
import { E2ee } from './e2ee.js';
import { P2p } from './p2p.js';
import * as captions from './captions.js';
import { diagnostics, framesOf, inboundStats, outboundStats, thumb } from './stats.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const hooks = {
  state: 'idle',
  peerId: null,
  peers: {},
  events: [],
  iceRestarts: [],
  deviations: [], // what the server sent unlike mediasoup (the app copes; a test reports them)
  leave: () => leave(),
  producing: () => Object.keys(producers).length,
  stats: () => inboundStats(consumers),
  sendStats: () => outboundStats(sendTransport, producers),
  // What the server measures of our camera (getProducerStats); any other request.
  producerStats: () => (producers.video && protoo
    ? protoo.request('getProducerStats', { producerId: producers.video.id }) : Promise.resolve(null)),
  request: (method, data) => protoo.request(method, data),
  diag: () => diagnostics({ consumers, sendTransport, recvTransport, events: hooks.events }),
  // A 16×9 grayscale thumbnail of a tile's video ('me': our camera).
  thumb: (peerId) => thumb(tiles.findTile(peerId)?.querySelector('video')),
  tiles: () => tiles.describeTiles(),
  consumers: () => Array.from(consumers.values(), ({ consumer, peerId, type }) => ({
    id: consumer.id, peerId, kind: consumer.kind, type, paused: consumer.paused })),
  waitVideoWidth: (peerId, lo, hi, ms) => tiles.waitVideoWidth(peerId, lo, hi, ms),
  downlink: null,
  // Live captions: the final ones received so far ({peerId, name, text, startMs, endMs}).
  transcript: () => captions.transcript(),
  e2ee: { enabled: params.get('e2ee') === '1', report: () => Promise.resolve(null) },
  dynacast: { enabled: params.get('dynacast') !== '0', needed: null, active: null },
  chat: {
    ready: () => Boolean(chat?.chatProducer?.readyState === 'open' && chat?.fileProducer?.readyState === 'open'),
    dataConsumers: () => (chat ? Array.from(chat.consumers.values(), ({ dataConsumer, peerId, label }) => ({
      id: dataConsumer.id, peerId, label, readyState: dataConsumer.readyState })) : []),
    // Bypasses the app's own 4 KiB check (tests of the server's refusal).
    sendRaw: (text) => chat.chatProducer.send(text),
    send: (text) => chat.send(text),
    messages: () => chat?.messages || [],
    sendBytes: (name, bytes) => chat.sendFile(new File([bytes], name)),
    files: () => chat?.files || [],
  },
};
window.ferrosfu = hooks;
const MAX_EVENTS = 5000;

let protoo = null;
let device = null;
let sendTransport = null;
let recvTransport = null;
const producers = {}; // kind -> Producer
const consumers = new Map(); // consumerId -> { consumer, peerId, type }
let localStream = null;
let wantJoin = false;
let chat = null;
const userPaused = { audio: false, video: false }; // the Mute / Stop camera buttons
let direct = false; // a direct call carries our media: the SFU producers pause
const e2eeOn = params.get('e2ee') === '1';
let e2ee = null; // E2ee while joined with e2ee=1

// ---------------------------------------------------------------------------------------------
// Two-party calls peer to peer (p2p.js): the direct call's tracks take the peer's tile; the SFU's
// come back when it ends.

const wantsP2p = params.get('p2p') !== '0';

// The SFU consumer of `peerId`'s `kind`, if any.
function sfuConsumer(peerId, kind) {
  return Array.from(consumers.values()).find((c) => c.peerId === peerId && c.consumer.kind === kind && !c.consumer.closed);
}

const p2p = new P2p({
  request: (method, data) => protoo.request(method, data),
  localStream: () => localStream,
  muted: (kind) => userPaused[kind],
  show: (peerId, track) => {
    if (track.kind === 'video') tiles.setVideoTrack(peerId, new MediaStream([track]));
    else tiles.addAudioTrack(peerId, track);
    tiles.setBadge(peerId, 'direct');
  },
  unshow: (peerId, track) => {
    if (track.kind === 'audio') {
      tiles.removeTrack(peerId, track);
      return;
    }
    const c = sfuConsumer(peerId, 'video');
    tiles.setVideoTrack(peerId, new MediaStream(c ? [c.consumer.track] : []));
    tiles.setBadge(peerId, '');
  },
  onDirect: () => { direct = true; applyProducers(); },
  onSfu: () => { direct = false; applyProducers(); },
  // New frames of the SFU's video of the peer (polled; none to wait for without one).
  sfuDecoding: async (peerId) => {
    let first = null;
    for (;;) {
      const c = sfuConsumer(peerId, 'video');
      if (c) {
        const n = await framesOf(c.consumer.rtpReceiver).catch(() => null);
        if (first === null) first = n;
        else if (n > first) return;
      }
      await new Promise((r) => { setTimeout(r, 50); });
    }
  },
});
hooks.p2p = {
  state: () => p2p.state,
  log: () => p2p.log,
  peerId: () => p2p.s?.peerId || null,
  selectedPair: () => p2p.selectedPair(),
  inbound: () => p2p.inbound(),
};
// The video a tile shows: the direct call's, else the SFU consumer's.
hooks.gaps = new FrameGaps((peerId) => {
  const t = p2p.showing(peerId) && p2p.s.pc.getReceivers().find((r) => r.track.kind === 'video');
  if (t) return { key: `p2p:${t.track.id}`, framesDecoded: () => framesOf(t) };
  const c = sfuConsumer(peerId, 'video');
  return c ? { key: `sfu:${c.consumer.id}`, framesDecoded: () => framesOf(c.consumer.rtpReceiver) } : null;
});

// Our SFU producers run unless the user paused them or a direct call carries the media.
function applyProducers() {
  for (const [kind, p] of Object.entries(producers)) {
    const pause = userPaused[kind] || direct;
    if (pause === p.paused) continue;
    if (pause) p.pause();
    else p.resume();
    protoo?.request(pause ? 'pauseProducer' : 'resumeProducer', { producerId: p.id }).catch(() => {});
  }
  updateButtons();
}

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
// Publishing: what the camera is sent as (URL parameters simulcast, codec, svc, fps)

// mediasoup-demo's WEBCAM_SIMULCAST_ENCODINGS.
const SIMULCAST_ENCODINGS = [
  { scaleResolutionDownBy: 4, maxBitrate: 500000, scalabilityMode: 'L1T3' },
  { scaleResolutionDownBy: 2, maxBitrate: 1000000, scalabilityMode: 'L1T3' },
  { scaleResolutionDownBy: 1, maxBitrate: 5000000, scalabilityMode: 'L1T3' },
];

// {codec, encodings, codecOptions, label} for sendTransport.produce of the camera.
function videoSendOptions() {
  const name = (params.get('codec') || 'vp8').toLowerCase();
  const simulcast = params.get('simulcast') !== '0';
  const candidates = device.rtpCapabilities.codecs.filter((c) => c.mimeType.toLowerCase() === `video/${name}`);
  // VP9: profile 0 (what browsers encode by default) when the router offers it.
  const codec = candidates.find((c) => name !== 'vp9' || String(c.parameters?.['profile-id'] ?? '0') === '0')
    || candidates[0];
  if (!codec) {
    showError(`the server offers no ${name}: sending its default codec`);
    return { label: simulcast ? 'simulcast ×3' : 'single', encodings: simulcast ? SIMULCAST_ENCODINGS : undefined,
      codecOptions: { videoGoogleStartBitrate: 1000 } };
  }
  const mime = codec.mimeType.replace(/^video\//i, '').toUpperCase();
  let encodings;
  let label = `${mime} single`;
  if (simulcast && name === 'vp9') {
    const mode = params.get('svc') || 'L3T3_KEY';
    encodings = [{ scalabilityMode: mode }];
    label = `${mime} SVC ${mode}`;
  } else if (simulcast) {
    encodings = SIMULCAST_ENCODINGS.map((e) => ({ ...e }));
    label = `${mime} simulcast ×${encodings.length}`;
  }
  return { codec, encodings, codecOptions: { videoGoogleStartBitrate: 1000 }, label };
}

function cameraConstraints() {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 } };
  const fps = Number(params.get('fps'));
  if (fps > 0) video.frameRate = { ideal: fps };
  return video;
}

// ---------------------------------------------------------------------------------------------
// Tiles (tiles.js draws them)

function tile(peerId, name, isMe) {
  return tiles.tile(peerId, name, isMe);
}

function attachTrack(peerId, track) {
  const peer = hooks.peers[peerId];
  tile(peerId, peer ? peer.displayName : peerId, false);
  if (track.kind === 'video') {
    // A direct call shows its own video until it ends (p2p.js gives the tile back).
    if (!p2p.showing(peerId)) tiles.setVideoTrack(peerId, new MediaStream([track]));
  } else tiles.addAudioTrack(peerId, track);
}

// ---------------------------------------------------------------------------------------------
// Joining

async function join(roomId, displayName) {
  showError('');
  wantJoin = true;
  setState('joining', `connecting to ${roomId}…`);
  const peerId = randomId();
  hooks.peerId = peerId;
  let url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/?roomId=${encodeURIComponent(roomId)}&peerId=${peerId}`;
  if (params.get('token')) url += `&token=${encodeURIComponent(params.get('token'))}`;
  if (e2eeOn) url += '&e2ee=1';
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

// The TURN servers the server handed out with the transport, and `iceTransportPolicy=relay` from
// the page URL (only relayed candidates: what a client behind a firewall that passes nothing but
// TLS would get).
function iceOptions(transport) {
  const options = {};
  if (Array.isArray(transport.iceServers) && transport.iceServers.length) options.iceServers = transport.iceServers;
  if (params.get('iceTransportPolicy') === 'relay') options.iceTransportPolicy = 'relay';
  return options;
}

// ICE restart: when a transport's connection goes `disconnected` or `failed` (network change,
// UDP blocked, NAT rebinding), fresh TURN credentials (`getIceServers`, when the server hands
// out TURN) and new ICE parameters from the server (`restartIce`) go to mediasoup-client
// (`updateIceServers`, `restartIce`); retried every 2 s while the transport stays down. Each
// restart is recorded in hooks.iceRestarts ({transport: 'send'|'recv', t}).
function watchIce(transport, name) {
  let timer = null;
  const down = () => ['disconnected', 'failed'].includes(transport.connectionState);
  const restart = async () => {
    timer = null;
    if (!protoo || transport.closed || !down()) return;
    try {
      if (transport.appData.turn) {
        const { iceServers } = await protoo.request('getIceServers');
        await transport.updateIceServers({ iceServers });
      }
      const iceParameters = await protoo.request('restartIce', { transportId: transport.id });
      await transport.restartIce({ iceParameters });
      hooks.iceRestarts.push({ transport: name, t: performance.now() });
    } catch (e) {
      console.warn(`restartIce (${name}): ${e.message || e}`);
    }
    if (!transport.closed && down()) timer = setTimeout(restart, 2000);
  };
  transport.on('connectionstatechange', (state) => {
    if (['disconnected', 'failed'].includes(state) && !timer) timer = setTimeout(restart, 0);
  });
}

async function setupCall(displayName) {
  const routerRtpCapabilities = await protoo.request('getRouterRtpCapabilities');
  device = new Device();
  await device.load({ routerRtpCapabilities });
  if (e2eeOn) {
    e2ee = new E2ee({ request: (m, d) => protoo.request(m, d), roomId: $('room').value.trim(), workerUrl: 'e2ee-worker.js',
      legacy: params.get('e2eeLegacy') === '1' });
    hooks.e2ee.report = () => e2ee.report();
    await e2ee.init();
  }
  const additionalSettings = e2ee ? e2ee.pcSettings : undefined;

  const s = await protoo.request('createWebRtcTransport', {
    forceTcp: params.get('forceTcp') === '1',
    producing: true,
    consuming: false,
    sctpCapabilities: device.sctpCapabilities,
  });
  sendTransport = device.createSendTransport({
    id: s.id,
    iceParameters: s.iceParameters,
    iceCandidates: s.iceCandidates,
    dtlsParameters: s.dtlsParameters,
    sctpParameters: s.sctpParameters || undefined,
    ...iceOptions(s),
    additionalSettings,
    appData: { turn: Boolean(s.iceServers && s.iceServers.length) },
  });
  watchIce(sendTransport, 'send');
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
    sctpCapabilities: device.sctpCapabilities,
  });
  recvTransport = device.createRecvTransport({
    id: r.id,
    iceParameters: r.iceParameters,
    iceCandidates: r.iceCandidates,
    dtlsParameters: r.dtlsParameters,
    sctpParameters: r.sctpParameters || undefined,
    ...iceOptions(r),
    additionalSettings,
    appData: { turn: Boolean(r.iceServers && r.iceServers.length) },
  });
  watchIce(recvTransport, 'recv');
  recvTransport.on('connect', ({ dtlsParameters }, ok, fail) => {
    protoo.request('connectWebRtcTransport', { transportId: recvTransport.id, dtlsParameters })
      .then(ok).catch(fail);
  });

  chat = new Chat({
    protoo,
    ui: { list: $('chat-list'), input: $('chat-input'), form: $('chat-form'), fileInput: $('chat-file'), progress: $('chat-progress') },
    names: (peerId) => hooks.peers[peerId]?.displayName || peerId,
    onError: showError,
    hooks,
  });
  // Camera and microphone first: a direct call may start as we join.
  try {
    localStream = localStream || await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: cameraConstraints(),
    });
  } catch (e) {
    showError(`no camera/microphone: ${e.message || e} (you can still watch)`);
  }
  const { peers } = await protoo.request('join', {
    displayName,
    device: { flag: 'ferrosfu-demo', name: navigator.userAgentData?.brands?.[0]?.brand || 'browser', version: '1',
      p2p: wantsP2p, e2ee: e2eeOn },
    rtpCapabilities: device.rtpCapabilities,
    sctpCapabilities: device.sctpCapabilities,
  });
  if (e2ee) await e2ee.publish();
  hooks.joinedAt = Date.now();
  setState('joined', `in the room as ${displayName}`);
  for (const p of peers) addPeer(p);
  if (s.sctpParameters) {
    chat.start(sendTransport).catch((e) => showError(`chat: ${e.message || e}`));
  }

  // Publish camera and microphone (paused at once while a direct call carries them).
  if (!localStream) return;
  p2p.localChanged();
  const me = tile('me', displayName, true);
  captions.init((peerId) => (peerId === hooks.peerId ? `${displayName} (you)`
    : hooks.peers[peerId]?.displayName || peerId));
  me.querySelector('video').srcObject = localStream;
  for (const track of localStream.getTracks()) {
    if (!device.canProduce(track.kind)) continue;
    if (track.kind === 'audio') {
      producers.audio = await sendTransport.produce({ track, appData: { source: 'mic' }, stopTracks: false,
        disableTrackOnPause: false, onRtpSender: encryptor('audio') });
      continue;
    }
    const { label, ...options } = videoSendOptions();
    producers.video = await sendTransport.produce({ track, ...options, appData: { source: 'webcam' }, stopTracks: false,
      disableTrackOnPause: false, onRtpSender: encryptor('video') });
    const { width, height } = track.getSettings();
    tiles.setInfo('me', label, `sending ${width}×${height} as ${label}`);
  }
  applyProducers();
}

// End-to-end encryption: the transforms go on each sender and receiver before its first frame.
function encryptor(kind) {
  return e2ee ? (sender) => e2ee.attach(sender, { op: 'encrypt', kind }) : undefined;
}

function addPeer(p) {
  hooks.peers[p.id] = { id: p.id, displayName: p.displayName, device: p.device };
  tile(p.id, p.displayName || p.id, false);
}

async function onServerRequest(request, accept, reject) {
  logEvent(request.method, request.data);
  if (request.method === 'p2pSignal') {
    p2p.signal(request.data).then(() => accept()).catch((e) => reject(409, String(e.message || e)));
    return;
  }
  if (request.method === 'newDataConsumer') {
    if (!recvTransport || !chat) {
      reject(409, 'no receive transport');
      return;
    }
    chat.consume(recvTransport, request.data).then(() => accept()).catch((e) => reject(500, String(e)));
    return;
  }
  if (request.method !== 'newConsumer') {
    reject(404, `unknown request ${request.method}`);
    return;
  }
  if (!recvTransport) {
    reject(409, 'no receive transport');
    return;
  }
  const { peerId, producerId, id, kind, rtpParameters, appData } = request.data;
  const type = request.data.type || 'simple';
  if (!rtpParameters?.rtcp?.cname) {
    hooks.deviations.push(`newConsumer ${kind}: empty rtpParameters.rtcp.cname`);
  }
  try {
    // One stream id per peer, as mediasoup-demo: its audio and video are played in sync.
    const consumer = await recvTransport.consume({
      id, producerId, kind, rtpParameters, appData, streamId: `${peerId}-mic-webcam`,
      onRtpReceiver: e2ee ? (receiver) => e2ee.attach(receiver, { op: 'decrypt', kind, peerId }) : undefined,
    });
    consumers.set(consumer.id, { consumer, peerId, type });
    consumer.on('transportclose', () => consumers.delete(consumer.id));
    attachTrack(peerId, consumer.track);
    if (kind === 'video') {
      tiles.setVideoConsumer(peerId, {
        consumerId: consumer.id,
        type,
        spatialLayers: tiles.spatialLayersOf(rtpParameters),
        onPick: (spatialLayer) => protoo.request('setConsumerPreferredLayers', { consumerId: consumer.id, spatialLayer })
          .catch((e) => {
            showError(`setConsumerPreferredLayers: ${e.message || e}`);
            throw e;
          }),
      });
    }
    accept();
  } catch (e) {
    console.error('newConsumer failed', e);
    reject(500, String(e));
  }
}

function logEvent(method, data) {
  hooks.events.push({ method, data, t: performance.now() });
  if (hooks.events.length > MAX_EVENTS) hooks.events.splice(0, hooks.events.length - MAX_EVENTS);
}

function onNotification({ method, data }) {
  logEvent(method, data);
  switch (method) {
    case 'newPeer':
      addPeer(data);
      break;
    case 'p2pStart':
      p2p.start(data);
      break;
    case 'p2pStop':
      p2p.stop(data);
      break;
    case 'e2eeKey':
      e2ee?.onKey(data).catch((e) => console.warn('e2ee: key', e));
      break;
    case 'e2eeSenderKey':
      e2ee?.onSenderKey(data).catch((e) => console.warn('e2ee: sender key', e));
      break;
    case 'dataConsumerClosed':
      chat?.closed(data.dataConsumerId);
      break;
    case 'chatHistory':
      chat?.history(data.messages || []);
      break;
    case 'chatMessageRejected':
      showError(`chat: ${data.reason}`);
      break;
    case 'fileShared':
      chat?.announce(data);
      break;
    case 'peerClosed':
      chat?.peerLeft(data.peerId);
      e2ee?.peerLeft(data.peerId).catch((e) => console.warn('e2ee: rotation', e));
      delete hooks.peers[data.peerId];
      for (const [cid, c] of consumers) {
        if (c.peerId === data.peerId) {
          c.consumer.close();
          consumers.delete(cid);
        }
      }
      tiles.removeTile(data.peerId);
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
        tiles.removeTrack(c.peerId, c.consumer.track);
        c.consumer.close();
        consumers.delete(data.consumerId);
      }
      break;
    }
    case 'consumerPaused':
    case 'consumerResumed': {
      const c = consumers.get(data.consumerId);
      if (c && c.consumer.kind === 'audio') {
        tiles.setBadge(c.peerId, method === 'consumerPaused' ? 'muted' : '');
      } else if (c && data.reason === 'bwe') {
        // The server's bandwidth allocator stopped this video: our downlink cannot carry it.
        tiles.setStarved(c.peerId, method === 'consumerPaused');
      }
      break;
    }
    case 'downlinkBwe':
      // {desiredBitrate, effectiveDesiredBitrate, availableBitrate}: the server's estimate of
      // our downlink and what it sends us of what we would take.
      hooks.downlink = data;
      showDownlink(data);
      break;
    case 'producerLayersNeeded':
      if (producers.video && data.producerId === producers.video.id) {
        applyLayersNeeded(data.spatialLayers || []);
      }
      break;
    case 'consumerScore': {
      // The video's score when the peer sends video, else the audio's.
      const c = consumers.get(data.consumerId);
      if (!c || !data.score) break;
      const hasVideo = Array.from(consumers.values()).some((o) => o.peerId === c.peerId && o.consumer.kind === 'video');
      if (c.consumer.kind === 'video' || !hasVideo) {
        tiles.setScore(c.peerId, data.score.score,
          `${c.consumer.kind}; sender ${data.score.producerScore}${data.score.producerScores?.length > 1
            ? ` [${data.score.producerScores.join(' ')}]` : ''}`);
      }
      break;
    }
    case 'consumerLayersChanged': {
      const c = consumers.get(data.consumerId);
      if (c) tiles.setLayers(c.peerId, data.spatialLayer, data.temporalLayer);
      break;
    }
    case 'producerScore': {
      // Our camera as the server receives it: the best encoding's score on our own tile.
      if (!producers.video || data.producerId !== producers.video.id || !data.score?.length) break;
      const scores = data.score.map((s) => s.score);
      tiles.setScore('me', Math.max(...scores), `received by the server [${scores.join(' ')}]`);
      break;
    }
    case 'transcript':
      captions.onTranscript(data, hooks.peerId);
      break;
    case 'activeSpeaker':
      // {peerId, producerId, volume}; peerId null when nobody speaks.
      tiles.setSpeaker(data.peerId === hooks.peerId ? 'me' : data.peerId || null);
      break;
    default:
      break;
  }
}

const kbps = (bps) => `${Math.round((bps || 0) / 1000)} kbit/s`;

function showDownlink({ availableBitrate, desiredBitrate, effectiveDesiredBitrate }) {
  const e = $('downlink');
  e.textContent = `downlink ${kbps(availableBitrate)}`;
  e.title = `estimate of the server → you path ${kbps(availableBitrate)}; receiving `
    + `${kbps(effectiveDesiredBitrate)} of the ${kbps(desiredBitrate)} the best layers would take`;
  e.classList.toggle('starved', effectiveDesiredBitrate < desiredBitrate);
}

// Dynacast: the server says which spatial layers of our camera anyone receives; the others are
// not encoded (the lowest always is, so a newcomer gets a first frame at once).
async function applyLayersNeeded(needed) {
  hooks.dynacast.needed = needed;
  const sender = producers.video?.rtpSender;
  if (!hooks.dynacast.enabled || !sender) return;
  const p = sender.getParameters();
  if (!p.encodings || p.encodings.length < 2) return; // SVC or one encoding: nothing to stop
  let changed = false;
  p.encodings.forEach((e, i) => {
    const active = i === 0 || needed.includes(i);
    if (e.active !== active) {
      e.active = active;
      changed = true;
    }
  });
  if (changed) {
    try {
      await sender.setParameters(p);
    } catch (e) {
      console.warn('dynacast: setParameters failed', e);
    }
  }
  hooks.dynacast.active = sender.getParameters().encodings.map((e) => e.active);
}

// ---------------------------------------------------------------------------------------------
// Controls

function updateButtons() {
  const mic = producers.audio;
  const cam = producers.video;
  $('mic').textContent = userPaused.audio ? 'Unmute mic' : 'Mute mic';
  $('mic').classList.toggle('off', userPaused.audio);
  $('mic').disabled = !mic;
  $('cam').textContent = userPaused.video ? 'Start camera' : 'Stop camera';
  $('cam').classList.toggle('off', userPaused.video);
  $('cam').disabled = !cam;
}

async function toggle(kind) {
  if (!producers[kind]) return;
  userPaused[kind] = !userPaused[kind];
  applyProducers();
  p2p.localChanged();
  if (kind === 'video') {
    const me = document.getElementById('tile-me');
    if (me) me.querySelector('video').style.visibility = userPaused.video ? 'hidden' : 'visible';
  }
}

function teardownMedia(stopLocal) {
  p2p.close();
  e2ee?.worker?.terminate();
  e2ee = null;
  direct = false;
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
  for (const id of Object.keys(hooks.peers)) tiles.removeTile(id);
  hooks.peers = {};
  tiles.setSpeaker(null);
  if (stopLocal && localStream) {
    localStream.getTracks().forEach((t) => t.stop());
    localStream = null;
    tiles.removeTile('me');
  }
}

function leave() {
  wantJoin = false;
  setState('closed', 'left the room');
  if (protoo) protoo.close();
  protoo = null;
  teardownMedia(true);
  tiles.clearTiles();
  $('call').hidden = true;
  $('join-form').hidden = false;
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
tiles.startLayout();
if (params.get('autojoin') === '1' && $('room').value && $('name').value) {
  join($('room').value, $('name').value);
}
