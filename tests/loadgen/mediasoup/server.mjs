// The stock mediasoup worker as a load-generator target (ferrosfu-loadgen `--target mediasoup`).
//
//   MEDIASOUP_WORKER_BIN=/work/shared/anchors/mediasoup-worker-3.27.1 \
//     node server.mjs --listen 127.0.0.1:0 --rtc-ip 127.0.0.1 --worker-core 1 [--ports 30000-39999]
//
// One worker (pinned with `taskset -a` to --worker-core), one router (Opus + VP8), and a tiny
// HTTP/JSON API on --listen: `POST /rpc {"method": M, "data": {...}}` answers `{"ok": true,
// "data": ...}` or `{"ok": false, "error": "..."}`. Prints `listening HOST:PORT worker-pid PID`
// once ready. Methods (the shapes are mediasoup's own, as a mediasoup-client app would see them):
//
//   info                  -> {version, workerPid, rtpCapabilities, transport: {options}}
//   createWebRtcTransport -> {id, iceParameters, iceCandidates, dtlsParameters}
//   connectWebRtcTransport {transportId, dtlsParameters}      (dtlsParameters.role is the client's)
//   produce               {transportId, kind, rtpParameters} -> {id}
//   consume               {transportId, producerId, rtpCapabilities} -> {id, producerId, kind,
//                          rtpParameters}   (created resumed: media flows at once)
//   closeTransport        {transportId}            (its consumers close with it)
//   closeAll              every transport (the end of a run; the router stays)
//   resourceUsage         -> the worker's getrusage
//
// Transports are configured as ferrosfu's protoo server configures its own (supervisor
// signaling/room.rs new_webrtc_transport): one UDP and one TCP listen info per transport (own
// ports, no WebRtcServer), UDP preferred, ICE consent timeout 30 s, initial outgoing bitrate
// 1 Mbit/s. The generator tells peers apart by the server's address, which per-transport ports
// keep unique.
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import * as mediasoup from 'mediasoup';

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const [listenHost, listenPort] = arg('listen', '127.0.0.1:0').split(':');
const rtcIp = arg('rtc-ip', '127.0.0.1');
const workerCore = arg('worker-core', undefined);
const [minPort, maxPort] = arg('ports', '30000-39999').split('-').map(Number);

const worker = await mediasoup.createWorker({ logLevel: 'warn' });
worker.on('died', (e) => {
  console.error(`mediasoup worker died: ${e}`);
  process.exit(1);
});
if (workerCore !== undefined) {
  // Every thread of the worker on the core under test (the generator owns the others).
  execFileSync('taskset', ['-a', '-p', '-c', workerCore, String(worker.pid)], { stdio: 'ignore' });
}
const router = await worker.createRouter({
  mediaCodecs: [
    { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
    { kind: 'video', mimeType: 'video/VP8', clockRate: 90000, parameters: {} },
  ],
});

const transportOptions = {
  listenInfos: [
    { protocol: 'udp', ip: rtcIp, portRange: { min: minPort, max: maxPort } },
    { protocol: 'tcp', ip: rtcIp, portRange: { min: minPort, max: maxPort } },
  ],
  enableUdp: true,
  enableTcp: true,
  preferUdp: true,
  iceConsentTimeout: 30,
  initialAvailableOutgoingBitrate: 1_000_000,
};

const transports = new Map();

function transport(id) {
  const t = transports.get(id);
  if (!t) throw new Error(`no transport ${id}`);
  return t;
}

const methods = {
  info: async () => ({
    version: mediasoup.version,
    workerPid: worker.pid,
    rtpCapabilities: router.rtpCapabilities,
    transport: transportOptions,
  }),
  createWebRtcTransport: async () => {
    const t = await router.createWebRtcTransport(transportOptions);
    transports.set(t.id, t);
    return {
      id: t.id,
      iceParameters: t.iceParameters,
      iceCandidates: t.iceCandidates,
      dtlsParameters: t.dtlsParameters,
    };
  },
  connectWebRtcTransport: async ({ transportId, dtlsParameters }) => {
    await transport(transportId).connect({ dtlsParameters });
    return {};
  },
  produce: async ({ transportId, kind, rtpParameters }) => {
    const p = await transport(transportId).produce({ kind, rtpParameters });
    return { id: p.id };
  },
  consume: async ({ transportId, producerId, rtpCapabilities }) => {
    if (!router.canConsume({ producerId, rtpCapabilities })) {
      throw new Error(`cannot consume ${producerId} with these capabilities`);
    }
    const c = await transport(transportId).consume({ producerId, rtpCapabilities, paused: false });
    return { id: c.id, producerId, kind: c.kind, rtpParameters: c.rtpParameters };
  },
  closeTransport: async ({ transportId }) => {
    transport(transportId).close();
    transports.delete(transportId);
    return {};
  },
  closeAll: async () => {
    for (const t of transports.values()) t.close();
    transports.clear();
    return {};
  },
  resourceUsage: async () => worker.getResourceUsage(),
};

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', async () => {
    let reply;
    try {
      if (req.method !== 'POST' || req.url !== '/rpc') throw new Error('POST /rpc only');
      const { method, data } = JSON.parse(body);
      const f = methods[method];
      if (!f) throw new Error(`unknown method ${method}`);
      reply = { ok: true, data: await f(data ?? {}) };
    } catch (e) {
      reply = { ok: false, error: String(e?.message ?? e) };
    }
    const out = JSON.stringify(reply);
    res.writeHead(reply.ok ? 200 : 400, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(out),
    });
    res.end(out);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(listenPort), listenHost, () => {
  const a = server.address();
  console.log(`listening ${a.address}:${a.port} worker-pid ${worker.pid} mediasoup ${mediasoup.version}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    worker.close();
    server.close();
    process.exit(0);
  });
}
