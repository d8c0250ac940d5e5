// Test page of tests/browser/layers.mjs: one peer of a mediasoup-demo style room (protoo signaling,
// mediasoup-client), bundled by esbuild at the start of each run. The same code talks to ferrosfu
// and to the mediasoup 3.27.1 reference server (reference-server.mjs).
//
// URL parameters:
//   ws      protoo URL without query (ws://127.0.0.1:PORT/); roomId and peerId are appended
//   roomId, peerId, name
//   role    pub  — publishes the camera (1280×720) as VP8 simulcast (3 encodings) or one VP9 SVC
//                  encoding, and the microphone (the driver gives this browser a loud WAV)
//           sub  — publishes nothing; consumes, shows the video, samples its inbound-rtp stats
//                  every 100 ms and measures preferred-layer switches
//           peer — publishes its (silent) microphone, consumes, pauses the video it is offered
//                  (pauseConsumer) to spare the CPU and records activeSpeaker notifications
//   codec   vp8 | vp9        svc   scalabilityMode of the VP9 encoding (default L3T3)
//   fps     camera frame rate (default 15)
//   dropExt header extension URIs (substrings, comma-separated) removed from the router's
//           capabilities before device.load, so they are never negotiated (an experiment switch)
//
// Driver hooks: window.t (see `t` below).

import { Device } from 'mediasoup-client';
import protooClient from 'protoo-client';

const q = new URLSearchParams(location.search);
const role = q.get('role');
const now = () => performance.now();

const t = {
  role,
  state: 'idle',
  error: null,
  consumeErrors: [], // newConsumer offers this page could not consume (it rejected them)
  deviations: [], // what the server sent unlike mediasoup (worked around, reported as failures)
  joinedAt: null,
  events: [], // every server notification / request: {t, method, data}
  requests: {}, // method -> {ok, ms, error} of the plumbing requests
  producers: {},
  consumers: {}, // kind -> {id, producerId, peerId, type, paused}
  samples: [], // sub: {t, w, h, fd, lost, recv, fz, fzd, bytes, rtt, ...} every 100 ms
  recvTransportId: null,
  frames: [], // sub: width changes of presented frames (requestVideoFrameCallback) {t, w, h}
  join: () => join(),
  leave: () => { if (protoo) protoo.close(); t.state = 'closed'; },
  request: (method, data) => timedRequest(method, data),
  switchLayer: (spatial, lo, hi, timeoutMs) => switchLayer(spatial, lo, hi, timeoutMs),
  waitWidth: (lo, hi, since, timeoutMs) => waitWidth(lo, hi, since, timeoutMs),
  stall: (from, to) => stall(from, to),
  sendStats: () => sendStats(),
  closeProducer: (kind) => closeProducer(kind),
};
window.t = t;

let protoo;
let device;
let sendTransport;
let recvTransport;
let videoConsumer;
const video = document.getElementById('v');

function log(method, data) {
  t.events.push({ t: now(), method, data });
}

async function timedRequest(method, data) {
  const t0 = now();
  try {
    const r = await protoo.request(method, data);
    t.requests[method] = { ok: true, ms: Math.round(now() - t0) };
    return r;
  } catch (e) {
    t.requests[method] = { ok: false, ms: Math.round(now() - t0), error: String(e && e.message || e) };
    throw e;
  }
}

async function join() {
  const url = `${q.get('ws')}?roomId=${encodeURIComponent(q.get('roomId'))}&peerId=${encodeURIComponent(q.get('peerId'))}`;
  protoo = new protooClient.Peer(new protooClient.WebSocketTransport(url, { retry: { retries: 2 } }));
  protoo.on('request', onRequest);
  protoo.on('notification', ({ method, data }) => onNotification(method, data));
  protoo.on('close', () => { if (t.state !== 'closed') t.state = 'disconnected'; });
  await new Promise((resolve, reject) => {
    protoo.once('open', resolve);
    protoo.once('failed', () => reject(new Error(`cannot connect to ${url}`)));
  });
  t.state = 'connecting';
  device = new Device();
  const caps = await protoo.request('getRouterRtpCapabilities');
  // dropExt=URI,…: header extensions this page does not negotiate (an experiment switch).
  const drop = (q.get('dropExt') || '').split(',').filter(Boolean);
  caps.headerExtensions = caps.headerExtensions.filter((h) => !drop.some((d) => h.uri.includes(d)));
  await device.load({ routerRtpCapabilities: caps });
  if (role !== 'sub') sendTransport = await transport(true);
  recvTransport = await transport(false);
  t.recvTransportId = recvTransport.id;
  const { peers } = await protoo.request('join', {
    displayName: q.get('name'),
    device: { flag: 'ferrosfu-layers-test', name: 'chromium', version: '1' },
    rtpCapabilities: device.rtpCapabilities,
  });
  t.peers = peers;
  t.joinedAt = now();
  t.state = 'joined';
  if (role === 'pub') await publish(true);
  if (role === 'peer') await publish(false);
  t.state = 'ready';
}

async function transport(producing) {
  const d = await protoo.request('createWebRtcTransport', { forceTcp: false, producing, consuming: !producing });
  const opts = { id: d.id, iceParameters: d.iceParameters, iceCandidates: d.iceCandidates,
    dtlsParameters: d.dtlsParameters, sctpParameters: d.sctpParameters || undefined };
  const tr = producing ? device.createSendTransport(opts) : device.createRecvTransport(opts);
  tr.on('connect', ({ dtlsParameters }, ok, fail) => {
    protoo.request('connectWebRtcTransport', { transportId: tr.id, dtlsParameters }).then(ok).catch(fail);
  });
  if (producing) {
    tr.on('produce', ({ kind, rtpParameters, appData }, ok, fail) => {
      protoo.request('produce', { transportId: tr.id, kind, rtpParameters, appData }).then(ok).catch(fail);
    });
  }
  return tr;
}

async function publish(withVideo) {
  const audio = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
  const fps = Number(q.get('fps') || 15);
  const stream = await navigator.mediaDevices.getUserMedia({
    audio,
    video: withVideo ? { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: fps } } : false,
  });
  const mic = stream.getAudioTracks()[0];
  t.producers.audio = await sendTransport.produce({ track: mic, appData: { source: 'mic' } });
  if (!withVideo) return;
  const cam = stream.getVideoTracks()[0];
  t.camera = cam.getSettings();
  const vp9 = q.get('codec') === 'vp9';
  const codecs = device.rtpCapabilities.codecs.filter((c) => c.mimeType.toLowerCase() === (vp9 ? 'video/vp9' : 'video/vp8'));
  // VP9: profile 0 (what Chrome encodes by default) when the router offers it.
  const codec = codecs.find((c) => !vp9 || String(c.parameters['profile-id'] ?? '0') === '0') || codecs[0];
  if (!codec) throw new Error(`the router offers no ${q.get('codec')}`);
  // mediasoup-demo's WEBCAM_SIMULCAST_ENCODINGS; for VP9 one SVC encoding.
  const encodings = vp9
    ? [{ scalabilityMode: q.get('svc') || 'L3T3' }]
    : [
      { scaleResolutionDownBy: 4, maxBitrate: 500000, scalabilityMode: 'L1T3' },
      { scaleResolutionDownBy: 2, maxBitrate: 1000000, scalabilityMode: 'L1T3' },
      { scaleResolutionDownBy: 1, maxBitrate: 5000000, scalabilityMode: 'L1T3' },
    ];
  t.producers.video = await sendTransport.produce({
    track: cam, codec, encodings, codecOptions: { videoGoogleStartBitrate: 1000 }, appData: { source: 'webcam' },
  });
}

async function onRequest(request, accept, reject) {
  log(request.method, request.data);
  if (request.method !== 'newConsumer') return reject(404, `unknown request ${request.method}`);
  const { peerId, producerId, id, kind, rtpParameters, type, appData } = request.data;
  try {
    // mediasoup always offers a non-empty rtcp.cname (Transport.produce fills an empty one with
    // the transport's first producer's, else a random one); mediasoup-client builds the a=msid
    // stream id from it and Chromium refuses an empty one. Record the deviation, then consume
    // with an explicit streamId so the rest of the test still runs.
    let streamId;
    if (!rtpParameters.rtcp || !rtpParameters.rtcp.cname) {
      t.deviations.push(`newConsumer ${kind}: empty rtpParameters.rtcp.cname (${JSON.stringify(rtpParameters.rtcp)})`);
      streamId = `${peerId}-stream`;
    }
    const c = await recvTransport.consume({ id, producerId, kind, rtpParameters, appData, streamId });
    t.consumers[kind] = { id, producerId, peerId, type, paused: false, at: now() };
    accept();
    if (kind === 'video' && role === 'sub') startSampling(c);
    if (kind === 'video' && role === 'peer') {
      await timedRequest('pauseConsumer', { consumerId: id });
      t.consumers.video.paused = true;
    }
    if (kind === 'audio' && role === 'sub') {
      const a = new Audio();
      a.srcObject = new MediaStream([c.track]);
      a.play().catch(() => {});
    }
  } catch (e) {
    t.consumeErrors.push(`consume ${kind}: ${e.message || e}`);
    reject(500, String(e));
  }
}

function onNotification(method, data) {
  log(method, data);
}

// ---------------------------------------------------------------------------------------------
// Subscriber: what is decoded, every 100 ms, and what is presented, frame by frame.

function startSampling(consumer) {
  videoConsumer = consumer;
  video.srcObject = new MediaStream([consumer.track]);
  video.play().catch(() => {});
  let busy = false;
  setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      let sample = null;
      let pair = null;
      (await consumer.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') {
          sample = { t: now(), w: s.frameWidth || 0, h: s.frameHeight || 0, fd: s.framesDecoded || 0,
            kf: s.keyFramesDecoded || 0, pli: s.pliCount || 0, fir: s.firCount || 0, nack: s.nackCount || 0,
            lost: s.packetsLost || 0, fps: s.framesPerSecond || 0, bytes: s.bytesReceived || 0,
            jbd: s.jitterBufferDelay || 0, jbe: s.jitterBufferEmittedCount || 0, jitter: s.jitter || 0,
            recv: s.packetsReceived || 0, fz: s.freezeCount || 0, fzd: s.totalFreezesDuration || 0 };
        } else if (s.type === 'candidate-pair' && s.nominated) {
          pair = s;
        }
      });
      if (sample) {
        // The transport's round trip and bytes (audio, video, RTCP) of the selected pair.
        if (pair) Object.assign(sample, { rtt: pair.currentRoundTripTime, pairBytes: pair.bytesReceived });
        t.samples.push(sample);
      }
    } finally {
      busy = false;
    }
  }, 100);
  if (video.requestVideoFrameCallback) {
    let last = 0;
    const onFrame = (ts, meta) => {
      if (meta.width !== last) {
        last = meta.width;
        t.frames.push({ t: ts, w: meta.width, h: meta.height });
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const inRange = (w, lo, hi) => w >= lo && w <= hi;

// First sample / presented frame at or after `since` whose width is in [lo, hi].
async function waitWidth(lo, hi, since, timeoutMs) {
  const deadline = now() + timeoutMs;
  for (;;) {
    const s = t.samples.find((x) => x.t >= since && inRange(x.w, lo, hi));
    if (s) {
      // A frame is decoded before it is presented: give the presentation up to 1 s more.
      let f;
      const until = now() + 1000;
      while (!(f = t.frames.find((x) => x.t >= since && inRange(x.w, lo, hi))) && now() < until) await sleep(20);
      return { ok: true, statsMs: Math.round(s.t - since), frameMs: f ? Math.round(f.t - since) : null, width: s.w, height: s.h };
    }
    if (now() > deadline) {
      const last = t.samples[t.samples.length - 1];
      return { ok: false, lastWidth: last ? last.w : null, framesDecoded: last ? last.fd : null };
    }
    await sleep(20);
  }
}

// setConsumerPreferredLayers {spatialLayer}, then how long until that width is decoded / shown
// and until consumerLayersChanged with that spatial layer arrives.
async function switchLayer(spatial, lo, hi, timeoutMs) {
  const consumerId = t.consumers.video.id;
  const t0 = now();
  let request;
  try {
    await protoo.request('setConsumerPreferredLayers', { consumerId, spatialLayer: spatial });
    request = { ok: true, ms: Math.round(now() - t0) };
  } catch (e) {
    request = { ok: false, error: String(e && e.message || e) };
  }
  const width = await waitWidth(lo, hi, t0, timeoutMs);
  // The notification may trail the first decoded frame a little: give it 3 s more.
  const deadline = Math.max(now(), t0 + timeoutMs) + 3000;
  let n;
  while (!(n = layersChanged(consumerId, t0, spatial)) && now() < deadline) await sleep(20);
  return {
    spatial, t0, request, ...width,
    layersChanged: n ? { ms: Math.round(n.t - t0), spatialLayer: n.data.spatialLayer, temporalLayer: n.data.temporalLayer } : null,
  };
}

function layersChanged(consumerId, since, spatial) {
  return t.events.find((e) => e.t >= since && e.method === 'consumerLayersChanged'
    && e.data.consumerId === consumerId && e.data.spatialLayer === spatial);
}

// Longest time framesDecoded did not grow between `from` and `to` (page clock, ms).
function stall(from, to) {
  let max = 0;
  let at = null;
  let lastT = null;
  let lastFd = -1;
  for (const s of t.samples) {
    if (s.t < from || s.t > to) continue;
    if (lastT === null || s.fd > lastFd) {
      lastT = s.t;
      lastFd = s.fd;
    } else if (s.t - lastT > max) {
      max = s.t - lastT;
      at = Math.round(lastT - from);
    }
  }
  return { maxMs: Math.round(max), atMs: at, samples: t.samples.filter((s) => s.t >= from && s.t <= to).length };
}

// Publisher: what the encoder does, per encoding (rid), and the send-side bandwidth estimate.
async function sendStats() {
  const out = { encodings: [], availableOutgoingBitrate: null, camera: t.camera };
  if (!sendTransport) return out;
  (await sendTransport.getStats()).forEach((s) => {
    if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) {
      out.availableOutgoingBitrate = s.availableOutgoingBitrate;
    } else if (s.type === 'outbound-rtp' && s.kind === 'video') {
      out.encodings.push({ rid: s.rid, width: s.frameWidth, height: s.frameHeight, fps: s.framesPerSecond,
        framesEncoded: s.framesEncoded, framesSent: s.framesSent, targetBitrate: s.targetBitrate,
        bytesSent: s.bytesSent, qualityLimitationReason: s.qualityLimitationReason,
        qualityLimitationDurations: s.qualityLimitationDurations, scalabilityMode: s.scalabilityMode,
        encoder: s.encoderImplementation, active: s.active, totalEncodeTime: s.totalEncodeTime,
        retransmittedBytesSent: s.retransmittedBytesSent, nackCount: s.nackCount, pliCount: s.pliCount,
        firCount: s.firCount, keyFramesEncoded: s.keyFramesEncoded });
    }
  });
  out.encodings.sort((a, b) => String(a.rid).localeCompare(String(b.rid)));
  return out;
}

async function closeProducer(kind) {
  const p = t.producers[kind];
  p.close();
  await timedRequest('closeProducer', { producerId: p.id });
}

join().catch((e) => {
  t.error = `join: ${e && e.message || e}`;
  t.state = 'failed';
});
