// A stock mediasoup 3.27.1 server speaking ferrosfu's protoo protocol (the subset of
// mediasoup-demo's server/lib/Room.js that ferrosfu implements), so browser tests can run the
// same page against both (tests/browser/layers.mjs `--target mediasoup`).
//
//   MEDIASOUP_WORKER_BIN=/work/shared/anchors/mediasoup-worker-3.27.1 \
//     node tests/browser/reference-server.mjs --listen 127.0.0.1:0 [--rtc-ip 127.0.0.1] [--ports 40000-40999]
//     [--log-level debug --log-tags simulcast,svc,rtcp (printed with DEBUG='mediasoup*')]
//
// Prints `listening HOST:PORT mediasoup VERSION worker-pid PID` once ready. Plain ws (no TLS, no
// auth: like ferrosfu --dev) at ws://HOST:PORT/?roomId=ROOM&peerId=PEER, subprotocol "protoo".
// One worker; a room (router + AudioLevelObserver + ActiveSpeakerObserver) per roomId, created by
// its first peer and closed with its last.
//
// Client → server requests: getRouterRtpCapabilities, join {displayName, device, rtpCapabilities}
// → {peers}, createWebRtcTransport {forceTcp, producing, consuming} → {id, iceParameters,
// iceCandidates, dtlsParameters, sctpParameters}, connectWebRtcTransport, restartIce, produce →
// {id}, closeProducer, pauseProducer, resumeProducer, pauseConsumer, resumeConsumer,
// setConsumerPreferredLayers, setConsumerPriority, requestConsumerKeyFrame, changeDisplayName,
// getTransportStats, getProducerStats, getConsumerStats.
// Server → client: request newConsumer (created paused, resumed once accepted, as the demo's
// _createConsumer); notifications newPeer, peerClosed, peerDisplayNameChanged, consumerClosed,
// consumerPaused, consumerResumed, consumerScore, producerScore, consumerLayersChanged
// {consumerId, spatialLayer, temporalLayer}, activeSpeaker, downlinkBwe {desiredBitrate,
// effectiveDesiredBitrate, availableBitrate} (the demo's: the consuming transport's 'bwe' trace).
//
// activeSpeaker is what the demo sends: its AudioLevelObserver (maxEntries 1, threshold -80 dBov,
// interval 800 ms) → `activeSpeaker {peerId, producerId, volume}`, silence → `{peerId: null}`.
// The demo's ActiveSpeakerObserver (audio producers added on produce, as the demo does) only logs
// its dominant speaker; here it is sent as an extra notification `dominantSpeaker {peerId,
// producerId}` that mediasoup-demo clients ignore.
//
// abs-capture-time is NOT offered (getRouterRtpCapabilities drops it; --abs-capture-time keeps it):
// when Chromium 156 negotiates it, mediasoup 3.27.1 takes the capture instant of each simulcast
// stream from that extension (RemoteCaptureTimeEstimator source "abs-capture-time", never back to
// Sender Reports) and its SimulcastProducerStreamManager can then only use the RTP timestamp
// reference layer: setConsumerPreferredLayers and the BWE never change the spatial layer (seen
// with layers.mjs: stuck at 640 or 1280 px). Without it mediasoup uses the Sender Reports and
// switches in 150-300 ms.
//
// Other differences from the demo, on purpose: router codecs are ferrosfu's (opus; VP8; VP9 profile-id
// 0 and 2; H264 42e01f and 4d0032; no x-google-start-bitrate), no WebRtcServer (own ports per
// transport from --ports), no maxIncomingBitrate, no DataChannels, no broadcaster REST API.
// Errors are protoo error responses: 400 bad request, 404 unknown id or method, 409 not joined /
// joined twice, 500 worker failure.
import http from 'node:http';
import * as mediasoup from 'mediasoup';
import protoo from 'protoo-server';

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const [listenHost, listenPort] = arg('listen', '127.0.0.1:0').split(':');
const rtcIp = arg('rtc-ip', '127.0.0.1');
const [minPort, maxPort] = arg('ports', '40000-40999').split('-').map(Number);
const absCaptureTime = process.argv.includes('--abs-capture-time');

const mediaCodecs = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000, parameters: {} },
  { kind: 'video', mimeType: 'video/VP9', clockRate: 90000, parameters: { 'profile-id': 0 } },
  { kind: 'video', mimeType: 'video/VP9', clockRate: 90000, parameters: { 'profile-id': 2 } },
  ...['42e01f', '4d0032'].map((id) => ({
    kind: 'video', mimeType: 'video/H264', clockRate: 90000,
    parameters: { 'packetization-mode': 1, 'profile-level-id': id, 'level-asymmetry-allowed': 1 },
  })),
];

// --log-level debug --log-tags simulcast,rtcp,...: the worker's own logs, shown with DEBUG=mediasoup*.
const worker = await mediasoup.createWorker({
  logLevel: arg('log-level', 'warn'),
  logTags: arg('log-tags', '').split(',').filter(Boolean),
});
worker.on('died', (e) => {
  console.error(`mediasoup worker died: ${e}`);
  process.exit(1);
});

class ProtooError extends Error {
  constructor(code, reason) {
    super(reason);
    this.code = code;
  }
}
const fail = (code, reason) => { throw new ProtooError(code, reason); };

const rooms = new Map(); // roomId -> Promise<Room>

class Room {
  static async create(id) {
    const router = await worker.createRouter({ mediaCodecs });
    const levels = await router.createAudioLevelObserver({ maxEntries: 1, threshold: -80, interval: 800 });
    const speakers = await router.createActiveSpeakerObserver();
    return new Room(id, router, levels, speakers);
  }

  constructor(id, router, levels, speakers) {
    Object.assign(this, { id, router, levels, speakers, protooRoom: new protoo.Room() });
    const tell = (method, data) => this.joined().forEach((p) => p.notify(method, data).catch(() => {}));
    levels.on('volumes', ([{ producer, volume }]) => tell('activeSpeaker', { peerId: producer.appData.peerId, producerId: producer.id, volume }));
    levels.on('silence', () => tell('activeSpeaker', { peerId: null }));
    speakers.on('dominantspeaker', ({ producer }) => tell('dominantSpeaker', { peerId: producer.appData.peerId, producerId: producer.id }));
  }

  joined(except) {
    return this.protooRoom.peers.filter((p) => p.data.joined && p !== except);
  }

  connect(peerId, transport) {
    const old = this.protooRoom.getPeer(peerId);
    if (old) old.close();
    const peer = this.protooRoom.createPeer(peerId, transport);
    Object.assign(peer.data, { joined: false, transports: new Map(), producers: new Map(), consumers: new Map() });
    peer.on('request', (request, accept, reject) => {
      this.handle(peer, request.method, request.data || {})
        .then((data) => accept(data))
        .catch((e) => reject(e.code || (e instanceof TypeError ? 400 : 500), String(e.message || e)));
    });
    peer.on('close', () => {
      if (peer.data.joined) this.joined(peer).forEach((p) => p.notify('peerClosed', { peerId: peer.id }).catch(() => {}));
      for (const t of peer.data.transports.values()) t.close();
      if (this.protooRoom.peers.length === 0) {
        rooms.delete(this.id);
        this.protooRoom.close();
        this.router.close();
      }
    });
  }

  async handle(peer, method, d) {
    const must = (map, id, what) => map.get(id) || fail(404, `${what} "${id}" not found`);
    const joined = () => peer.data.joined || fail(409, 'peer not yet joined');
    const consumer = () => { joined(); return must(peer.data.consumers, d.consumerId, 'consumer'); };
    const producer = () => must(peer.data.producers, d.producerId, 'producer');
    const transport = () => must(peer.data.transports, d.transportId, 'transport');
    switch (method) {
      case 'getRouterRtpCapabilities': {
        const caps = this.router.rtpCapabilities;
        if (absCaptureTime) return caps;
        return { ...caps, headerExtensions: caps.headerExtensions.filter((h) => !h.uri.endsWith('/abs-capture-time')) };
      }
      case 'join': {
        if (peer.data.joined) fail(409, 'peer already joined');
        Object.assign(peer.data, { joined: true, displayName: d.displayName, device: d.device, rtpCapabilities: d.rtpCapabilities });
        const others = this.joined(peer);
        setImmediate(() => {
          for (const other of others) {
            for (const p of other.data.producers.values()) this.createConsumer(peer, other, p);
            other.notify('newPeer', { id: peer.id, displayName: d.displayName, device: d.device }).catch(() => {});
          }
        });
        return { peers: others.map((p) => ({ id: p.id, displayName: p.data.displayName, device: p.data.device })) };
      }
      case 'createWebRtcTransport': {
        const t = await this.router.createWebRtcTransport({
          listenInfos: ['udp', 'tcp'].map((protocol) => ({ protocol, ip: rtcIp, portRange: { min: minPort, max: maxPort } })),
          enableUdp: !d.forceTcp, enableTcp: true, preferUdp: true,
          initialAvailableOutgoingBitrate: 1_000_000,
          appData: { producing: Boolean(d.producing), consuming: Boolean(d.consuming) },
        });
        peer.data.transports.set(t.id, t);
        // mediasoup-demo's downlinkBwe: the consuming transport's send-side estimate, as its
        // 'bwe' trace events come (about once per second and on changes).
        if (d.consuming) {
          await t.enableTraceEvent(['bwe']);
          t.on('trace', (trace) => {
            if (trace.type !== 'bwe' || trace.direction !== 'out') return;
            const { desiredBitrate, effectiveDesiredBitrate, availableBitrate } = trace.info;
            peer.notify('downlinkBwe', { desiredBitrate, effectiveDesiredBitrate, availableBitrate }).catch(() => {});
          });
        }
        return { id: t.id, iceParameters: t.iceParameters, iceCandidates: t.iceCandidates,
          dtlsParameters: t.dtlsParameters, sctpParameters: t.sctpParameters };
      }
      case 'connectWebRtcTransport':
        await transport().connect({ dtlsParameters: d.dtlsParameters });
        return {};
      case 'restartIce':
        return transport().restartIce();
      case 'produce': {
        joined();
        const p = await transport().produce({ kind: d.kind, rtpParameters: d.rtpParameters, appData: { ...d.appData, peerId: peer.id } });
        peer.data.producers.set(p.id, p);
        p.on('score', (score) => peer.notify('producerScore', { producerId: p.id, score }).catch(() => {}));
        p.on('transportclose', () => peer.data.producers.delete(p.id));
        setImmediate(() => {
          for (const other of this.joined(peer)) this.createConsumer(other, peer, p);
        });
        if (p.kind === 'audio') {
          this.levels.addProducer({ producerId: p.id }).catch(() => {});
          this.speakers.addProducer({ producerId: p.id }).catch(() => {});
        }
        return { id: p.id };
      }
      case 'closeProducer': joined(); producer().close(); peer.data.producers.delete(d.producerId); return {};
      case 'pauseProducer': joined(); await producer().pause(); return {};
      case 'resumeProducer': joined(); await producer().resume(); return {};
      case 'pauseConsumer': await consumer().pause(); return {};
      case 'resumeConsumer': await consumer().resume(); return {};
      case 'setConsumerPreferredLayers':
        await consumer().setPreferredLayers({ spatialLayer: d.spatialLayer, temporalLayer: d.temporalLayer });
        return {};
      case 'setConsumerPriority': await consumer().setPriority(d.priority); return {};
      case 'requestConsumerKeyFrame': await consumer().requestKeyFrame(); return {};
      case 'changeDisplayName': {
        joined();
        const oldDisplayName = peer.data.displayName;
        peer.data.displayName = d.displayName;
        this.joined(peer).forEach((p) => p.notify('peerDisplayNameChanged', { peerId: peer.id, displayName: d.displayName, oldDisplayName }).catch(() => {}));
        return {};
      }
      case 'getTransportStats': return transport().getStats();
      case 'getProducerStats': return producer().getStats();
      case 'getConsumerStats': return must(peer.data.consumers, d.consumerId, 'consumer').getStats();
      default:
        return fail(404, `unknown request.method "${method}"`);
    }
  }

  // The demo's _createConsumer: paused, offered with newConsumer, resumed once accepted.
  async createConsumer(peer, owner, producer) {
    const { rtpCapabilities } = peer.data;
    if (!rtpCapabilities || !this.router.canConsume({ producerId: producer.id, rtpCapabilities })) return;
    const transport = [...peer.data.transports.values()].find((t) => t.appData.consuming);
    if (!transport) return;
    let c;
    try {
      c = await transport.consume({ producerId: producer.id, rtpCapabilities, paused: true });
    } catch (e) {
      console.error(`consume failed: ${e}`);
      return;
    }
    const tell = (method, data) => peer.notify(method, data).catch(() => {});
    peer.data.consumers.set(c.id, c);
    c.on('transportclose', () => peer.data.consumers.delete(c.id));
    c.on('producerclose', () => {
      peer.data.consumers.delete(c.id);
      tell('consumerClosed', { consumerId: c.id });
    });
    c.on('producerpause', () => tell('consumerPaused', { consumerId: c.id }));
    c.on('producerresume', () => tell('consumerResumed', { consumerId: c.id }));
    c.on('score', (score) => tell('consumerScore', { consumerId: c.id, score }));
    c.on('layerschange', (l) => tell('consumerLayersChanged', {
      consumerId: c.id, spatialLayer: l ? l.spatialLayer : null, temporalLayer: l ? l.temporalLayer : null,
    }));
    try {
      await peer.request('newConsumer', {
        peerId: owner.id, producerId: producer.id, id: c.id, kind: c.kind, rtpParameters: c.rtpParameters,
        type: c.type, appData: producer.appData, producerPaused: c.producerPaused,
      });
      await c.resume();
      tell('consumerScore', { consumerId: c.id, score: c.score });
    } catch (e) {
      console.error(`newConsumer for ${peer.id} failed: ${e}`);
    }
  }
}

const httpServer = http.createServer((_req, res) => {
  res.writeHead(426, { 'content-type': 'text/plain' });
  res.end('protoo WebSocket only\n');
});
const wss = new protoo.WebSocketServer(httpServer, { maxReceivedFrameSize: 256 * 1024, maxReceivedMessageSize: 256 * 1024 });
wss.on('connectionrequest', (info, accept, reject) => {
  const u = new URL(info.request.url, 'http://x');
  const roomId = u.searchParams.get('roomId');
  const peerId = u.searchParams.get('peerId');
  if (!roomId || !peerId) return reject(400, 'roomId and peerId query parameters are required');
  if (!rooms.has(roomId)) rooms.set(roomId, Room.create(roomId));
  rooms.get(roomId).then((room) => room.connect(peerId, accept()), (e) => reject(500, String(e)));
});
httpServer.listen(Number(listenPort), listenHost, () => {
  const a = httpServer.address();
  console.log(`listening ${a.address}:${a.port} mediasoup ${mediasoup.version} worker-pid ${worker.pid}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    worker.close();
    process.exit(0);
  });
}
