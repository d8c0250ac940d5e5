// Two-party calls peer to peer, as the server runs them (README "Two-party calls").
//
// On `p2pStart {peerId, polite, iceServers}` an RTCPeerConnection to that peer carries clones of
// our camera and microphone tracks; its SDP and ICE go through the server (`p2pSignal` requests
// both ways, "perfect negotiation": the impolite side offers, the polite one yields on a
// collision). Once the peer's media plays over it (a decoded video frame, or audio when it sends
// no video) we tell the server (`p2pConnected`) and stop sending to the SFU (`onDirect`: the app
// pauses its producers). On `p2pStop {peerId, reason}` we send to the SFU again at once (`onSfu`),
// hear the SFU's audio, keep showing the direct video until the SFU's video of that peer decodes
// (`sfuDecoding`, 5 s at most), and only then close the direct connection (make before break).

const POLL_MS = 50;
const SWITCH_LIMIT_MS = 5000;

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

export class P2p {
  // request(method, data): a protoo request; localStream(): our camera/mic stream or null;
  // show(peerId, track) / unshow(peerId, track): the app shows a direct track in the peer's tile
  // or gives the tile back to the SFU; onDirect() / onSfu(): pause / resume our SFU producers;
  // sfuDecoding(peerId): resolves once the SFU's video of the peer decodes new frames (or at
  // once when the peer sends no video); muted(kind): whether the user muted that kind.
  constructor({ request, localStream, show, unshow, onDirect, onSfu, sfuDecoding, muted }) {
    Object.assign(this, { request, localStream, show, unshow, onDirect, onSfu, sfuDecoding, muted });
    this.s = null; // the call: { peerId, polite, pc, clones, tracks, ... }
    this.state = 'idle'; // idle | connecting | direct | leaving
    this.log = []; // {t, what, ...} for the tests
  }

  note(what, extra = {}) {
    this.log.push({ t: performance.now(), what, ...extra });
    if (this.log.length > 500) this.log.shift();
  }

  // The peer whose tile shows direct video now, if any.
  showing(peerId) {
    return Boolean(this.s && this.s.peerId === peerId && this.s.tracks.some((t) => t.kind === 'video'));
  }

  start({ peerId, polite, iceServers }) {
    this.close();
    const pc = new RTCPeerConnection({ iceServers: iceServers || [] });
    const s = { peerId, polite, pc, clones: [], tracks: [], makingOffer: false, ignoreOffer: false,
      addedLocal: false, direct: false, startedAt: performance.now() };
    this.s = s;
    this.state = 'connecting';
    this.note('start', { peerId, polite });
    pc.onicecandidate = ({ candidate }) => this.send(s, { candidate: candidate ? candidate.toJSON() : null });
    pc.onnegotiationneeded = async () => {
      try {
        s.makingOffer = true;
        await pc.setLocalDescription();
        this.send(s, { description: pc.localDescription.toJSON() });
      } catch (e) {
        console.warn('p2p: offer failed', e);
      } finally {
        s.makingOffer = false;
      }
    };
    pc.ontrack = ({ track }) => {
      if (this.s !== s) return;
      s.tracks.push(track);
      if (this.state !== 'leaving') this.show(peerId, track);
    };
    pc.onconnectionstatechange = () => this.note('connection', { state: pc.connectionState });
    // The impolite side offers at once; the polite one adds its tracks to the offer's answer.
    if (!polite) this.addLocal(s);
    this.watch(s);
  }

  // Clones of our tracks on the connection (the SFU producers keep the originals: pausing them
  // must not silence the direct call).
  addLocal(s) {
    const stream = this.localStream();
    if (s.addedLocal || !stream) return;
    s.addedLocal = true;
    for (const track of stream.getTracks()) {
      const c = track.clone();
      c.enabled = !this.muted(track.kind);
      s.clones.push(c);
      s.pc.addTrack(c, stream);
    }
  }

  // Our camera or microphone became available (it was not at p2pStart), or was muted/unmuted.
  localChanged() {
    const s = this.s;
    if (!s) return;
    if (!s.addedLocal && (!s.polite || s.pc.remoteDescription)) this.addLocal(s);
    for (const c of s.clones) c.enabled = !this.muted(c.kind);
  }

  send(s, data) {
    if (this.s !== s) return;
    this.request('p2pSignal', { peerId: s.peerId, ...data })
      .catch((e) => console.warn(`p2p: p2pSignal refused: ${e.message || e}`));
  }

  // The server relays the peer's `p2pSignal` ({peerId, description} or {peerId, candidate}).
  async signal({ peerId, description, candidate }) {
    const s = this.s;
    if (!s || s.peerId !== peerId) throw new Error(`no direct call with ${peerId}`);
    const { pc } = s;
    if (description) {
      const collision = description.type === 'offer' && (s.makingOffer || pc.signalingState !== 'stable');
      s.ignoreOffer = !s.polite && collision;
      if (s.ignoreOffer) return;
      await pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        this.addLocal(s);
        await pc.setLocalDescription();
        this.send(s, { description: pc.localDescription.toJSON() });
      }
    } else if (candidate !== undefined) {
      try {
        await pc.addIceCandidate(candidate || undefined);
      } catch (e) {
        if (!s.ignoreOffer) throw e;
      }
    }
  }

  // Once the peer's media plays over the connection: p2pConnected, and our SFU producers pause.
  async watch(s) {
    while (this.s === s && !s.direct) {
      await sleep(POLL_MS * 2);
      if (this.s !== s || s.pc.connectionState !== 'connected') continue;
      const { video, audio } = await this.inbound(s);
      const wantsVideo = s.tracks.some((t) => t.kind === 'video');
      if (this.s !== s || !(wantsVideo ? video.framesDecoded > 0 : audio.packetsReceived > 0)) continue;
      s.direct = true;
      s.directAt = performance.now();
      this.state = 'direct';
      this.note('direct', { ms: Math.round(s.directAt - s.startedAt) });
      this.onDirect();
      this.request('p2pConnected').catch((e) => console.warn(`p2p: p2pConnected: ${e.message || e}`));
    }
  }

  // Back to the SFU (`p2pStop`): see the file's text.
  async stop({ peerId, reason }) {
    const s = this.s;
    if (!s || s.peerId !== peerId) return;
    this.state = 'leaving';
    this.note('stop', { reason });
    this.onSfu();
    for (const t of s.tracks.filter((x) => x.kind === 'audio')) this.unshow(peerId, t);
    if (reason !== 'peerLeft' && this.showing(peerId)) {
      await Promise.race([this.sfuDecoding(peerId), sleep(SWITCH_LIMIT_MS)]);
    }
    if (this.s === s) this.close();
  }

  close() {
    const s = this.s;
    if (!s) return;
    this.s = null;
    this.state = 'idle';
    this.note('closed', { peerId: s.peerId });
    s.pc.close();
    for (const c of s.clones) c.stop();
    for (const t of s.tracks) this.unshow(s.peerId, t);
  }

  // What the connection receives: {video: {framesDecoded, bytesReceived}, audio: {...}}.
  async inbound(s = this.s) {
    const out = { video: { framesDecoded: 0, bytesReceived: 0 }, audio: { packetsReceived: 0, bytesReceived: 0 } };
    if (!s) return out;
    (await s.pc.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      const o = out[r.kind] || {};
      o.bytesReceived = (o.bytesReceived || 0) + (r.bytesReceived || 0);
      o.packetsReceived = (o.packetsReceived || 0) + (r.packetsReceived || 0);
      o.framesDecoded = (o.framesDecoded || 0) + (r.framesDecoded || 0);
    });
    return out;
  }

  // The selected candidate pair: {local: {address, port, candidateType}, remote: {…}, bytesReceived}.
  async selectedPair() {
    const s = this.s;
    if (!s) return null;
    const stats = await s.pc.getStats();
    let pair = null;
    stats.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
    });
    if (!pair) return null;
    const c = (id) => {
      const x = stats.get(id) || {};
      return { address: x.address, port: x.port, candidateType: x.candidateType, protocol: x.protocol };
    };
    return { local: c(pair.localCandidateId), remote: c(pair.remoteCandidateId), bytesReceived: pair.bytesReceived,
      bytesSent: pair.bytesSent, state: pair.state };
  }
}
