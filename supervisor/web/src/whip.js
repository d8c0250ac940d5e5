// WHIP publisher and WHEP player pages (whip.html, whep.html), with the WHIP/WHEP clients of
// the `whip-whep` package (medooze, by the WHIP spec's author).
//
//   /app/whip.html?roomId=ROOM[&token=JWT][&fps=N]      camera + microphone → POST /whip/ROOM
//   /app/whep.html?roomId=ROOM[&peer=ID][&token=JWT]    POST /whep/ROOM[?peer=ID] → <video>
//
// Test hooks: window.ferrosfuWhip = { state ('idle', 'connecting', 'connected', 'failed',
// 'stopped'), error, resource (the session URL), stats() (inbound or outbound RTP per kind:
// bytes, packets, framesDecoded/framesEncoded), restart() (ICE restart through PATCH), stop()
// (DELETE), connectionState(), diag(), iceInfo() (local ufrag, selected pair changes),
// remoteUfrag() (the server's current ICE ufrag) }.

import { WHIPClient } from 'whip-whep/whip.js';
import { WHEPClient } from 'whip-whep/whep.js';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const mode = document.body.dataset.mode; // "whip" | "whep"
const room = params.get('roomId') || '';
const token = params.get('token') || undefined;

const hooks = {
  state: 'idle',
  error: null,
  resource: null,
  stats: () => rtpStats(),
  restart: () => client.restart(),
  stop: async () => { await client.stop(); setState('stopped'); },
  connectionState: () => pc.connectionState,
  diag: () => diagnostics(),
  iceInfo: () => iceInfo(),
  remoteUfrag: () => ((pc.remoteDescription && pc.remoteDescription.sdp.match(/a=ice-ufrag:(.*)\r\n/)) || [])[1] || null,
};
window.ferrosfuWhip = hooks;

function setState(s, text) {
  hooks.state = s;
  $('status').textContent = text || s;
}

function fail(e) {
  hooks.error = String(e && e.message || e);
  $('error').textContent = hooks.error;
  $('error').hidden = false;
  setState('failed');
}

const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
// whip-whep 1.2.0's ICE restart joins the answer's candidate lines with Array.join()'s comma,
// which breaks the SDP when the server has more than one candidate (ferrosfu has UDP and TCP):
// undo that before the browser parses it.
const setRemote = pc.setRemoteDescription.bind(pc);
pc.setRemoteDescription = (d) => setRemote(d && d.sdp ? { type: d.type, sdp: d.sdp.replace(/\r\n,a=candidate:/g, '\r\na=candidate:') } : d);
const client = mode === 'whip' ? new WHIPClient() : new WHEPClient();
pc.addEventListener('connectionstatechange', () => {
  if (pc.connectionState === 'connected') setState('connected');
  if (pc.connectionState === 'failed') fail(new Error('the peer connection failed'));
});

async function rtpStats() {
  const out = [];
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' || s.type === 'outbound-rtp') {
      out.push({
        type: s.type,
        kind: s.kind,
        bytes: s.bytesReceived || s.bytesSent || 0,
        packets: s.packetsReceived || s.packetsSent || 0,
        framesDecoded: s.framesDecoded || 0,
        framesEncoded: s.framesEncoded || 0,
      });
    }
  });
  return out;
}

// The ICE transport: local ufrag, how often the selected pair changed (an ICE restart that the
// server answered selects a new pair), and that pair's STUN responses.
async function iceInfo() {
  const stats = await pc.getStats();
  let out = null;
  stats.forEach((s) => {
    if (s.type === 'transport') {
      const pair = s.selectedCandidatePairId && stats.get(s.selectedCandidatePairId);
      out = {
        localUfrag: s.iceLocalUsernameFragment || null,
        pairChanges: s.selectedCandidatePairChanges || 0,
        responsesReceived: pair ? pair.responsesReceived : 0,
        bytesSent: pair ? pair.bytesSent : 0,
        bytesReceived: pair ? pair.bytesReceived : 0,
        local: pair && stats.get(pair.localCandidateId) ? `${stats.get(pair.localCandidateId).protocol}:${stats.get(pair.localCandidateId).port}` : null,
        remote: pair && stats.get(pair.remoteCandidateId) ? `${stats.get(pair.remoteCandidateId).protocol}:${stats.get(pair.remoteCandidateId).port}` : null,
        state: s.iceState || null,
      };
    }
  });
  return out;
}

// What went wrong: ICE/DTLS states, candidate pairs, both descriptions.
async function diagnostics() {
  const pairs = [];
  let transport = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'candidate-pair') pairs.push({ state: s.state, nominated: s.nominated, requestsSent: s.requestsSent, responsesReceived: s.responsesReceived });
    if (s.type === 'transport') transport = { dtlsState: s.dtlsState, iceState: s.iceState, dtlsRole: s.dtlsRole };
  });
  return {
    iceConnectionState: pc.iceConnectionState,
    connectionState: pc.connectionState,
    transport,
    pairs,
    local: pc.localDescription && pc.localDescription.sdp,
    remote: pc.remoteDescription && pc.remoteDescription.sdp,
  };
}

async function start() {
  if (!room) throw new Error('missing ?roomId=');
  setState('connecting');
  const base = `${location.origin}/${mode}/${encodeURIComponent(room)}`;
  if (mode === 'whip') {
    const fps = Number(params.get('fps') || 30);
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true, video: { width: 640, height: 360, frameRate: fps },
    });
    $('video').srcObject = stream;
    for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    await client.publish(pc, base, token);
  } else {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.addEventListener('track', (e) => {
      stream.addTrack(e.track);
      $('video').srcObject = stream;
    });
    const peer = params.get('peer');
    await client.view(pc, peer ? `${base}?peer=${encodeURIComponent(peer)}` : base, token);
  }
  hooks.resource = String(client.resourceURL);
  $('resource').textContent = hooks.resource;
}

$('stop').addEventListener('click', () => hooks.stop().catch(fail));
start().catch(fail);
