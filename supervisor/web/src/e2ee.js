// The demo app's end-to-end encryption (`?e2ee=1`; README "End-to-end encryption"): media
// frames are encrypted in the browser (e2ee-frames.js, in an RTCRtpScriptTransform worker, or on
// the main thread through encodedInsertableStreams where that is missing) so the SFU forwards
// ciphertext.
//
// Keys: each participant makes an ECDH P-256 key pair and publishes the public half
// (`e2eeKey {publicKey}`; the server relays it to the others and to later joiners:
// `e2eeKey {peerId, publicKey}`). For each other participant both sides derive the same
// wrapping key (ECDH → HKDF-SHA-256, salt = the room id) which the server never sees; each
// participant's own frame key (AES-GCM 256, random) goes to each other one wrapped under it
// (`e2eeSenderKey {peerId, keyId, wrapped, iv}`). When a participant leaves, everyone rotates to
// a new frame key (keyId + 1), sent to those who remain; the leaver cannot read what follows.

import { FrameCrypto } from './e2ee-frames.js';

const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const utf8 = (s) => new TextEncoder().encode(s);
// How long receivers get to install a rotated key before frames use it.
const ROTATE_DELAY_MS = 1000;

export class E2ee {
  // request(method, data): a protoo request; roomId: the HKDF salt; workerUrl: e2ee-worker.js;
  // legacy: use encodedInsertableStreams even where RTCRtpScriptTransform exists.
  constructor({ request, roomId, workerUrl, legacy = false }) {
    this.request = request;
    this.roomId = roomId;
    this.scriptTransform = !legacy && typeof RTCRtpScriptTransform === 'function';
    this.worker = this.scriptTransform ? new Worker(workerUrl) : null;
    this.local = null; // FrameCrypto on the main thread (fallback), set by init()
    this.wrapping = new Map(); // peerId -> Promise<CryptoKey>
    this.pending = new Map(); // peerId -> [e2eeSenderKey data] before its public key came
    this.keyId = 0;
    this.peers = new Set();
    this.reports = [];
  }

  // The PeerConnection settings the fallback needs (mediasoup-client `additionalSettings`).
  get pcSettings() {
    return this.scriptTransform ? {} : { encodedInsertableStreams: true };
  }

  async init() {
    if (!this.scriptTransform) this.local = new FrameCrypto();
    this.ecdh = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
    this.publicKey = b64(await crypto.subtle.exportKey('raw', this.ecdh.publicKey));
    await this.newSendKey();
    this.useSendKey();
  }

  post(msg) {
    if (this.worker) this.worker.postMessage(msg);
    else if (msg.type === 'sendKey') this.local.setSendKey(msg.key, msg.keyId);
    else if (msg.type === 'recvKey') this.local.setRecvKey(msg.peerId, msg.keyId, msg.key);
    else if (msg.type === 'dropPeer') this.local.dropPeer(msg.peerId);
  }

  async newSendKey() {
    this.sendKey = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);
    this.sendRaw = await crypto.subtle.exportKey('raw', this.sendKey);
  }

  useSendKey() {
    this.post({ type: 'sendKey', key: this.sendKey, keyId: this.keyId });
  }

  // After join: our public key to the room.
  publish() {
    return this.request('e2eeKey', { publicKey: this.publicKey });
  }

  // `e2eeKey {peerId, publicKey}`: derive the wrapping key, send our frame key to that peer.
  async onKey({ peerId, publicKey }) {
    const wrapping = (async () => {
      const pub = await crypto.subtle.importKey('raw', unb64(publicKey), { name: 'ECDH', namedCurve: 'P-256' }, false, []);
      const secret = await crypto.subtle.deriveBits({ name: 'ECDH', public: pub }, this.ecdh.privateKey, 256);
      const hkdf = await crypto.subtle.importKey('raw', secret, 'HKDF', false, ['deriveKey']);
      return crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: utf8(this.roomId), info: utf8('ferrosfu-e2ee') },
        hkdf, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
    })();
    this.wrapping.set(peerId, wrapping);
    this.peers.add(peerId);
    await this.sendKeyTo(peerId, this.keyId);
    for (const d of this.pending.get(peerId) || []) await this.onSenderKey(d);
    this.pending.delete(peerId);
  }

  async sendKeyTo(peerId, keyId) {
    const wrapping = await this.wrapping.get(peerId);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const wrapped = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, wrapping, this.sendRaw);
    await this.request('e2eeSenderKey', { peerId, keyId, wrapped: b64(wrapped), iv: b64(iv) });
  }

  // `e2eeSenderKey {peerId, keyId, wrapped, iv}`: a participant's frame key, for its frames.
  async onSenderKey(d) {
    const wrapping = this.wrapping.get(d.peerId);
    if (!wrapping) {
      if (!this.pending.has(d.peerId)) this.pending.set(d.peerId, []);
      this.pending.get(d.peerId).push(d);
      return;
    }
    const raw = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: unb64(d.iv) }, await wrapping, unb64(d.wrapped));
    const key = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt']);
    this.post({ type: 'recvKey', peerId: d.peerId, keyId: d.keyId, key });
  }

  // A participant left (whether or not it had our key): forget it, and rotate our frame key for
  // those who remain.
  async peerLeft(peerId) {
    this.peers.delete(peerId);
    this.wrapping.delete(peerId);
    this.pending.delete(peerId);
    this.post({ type: 'dropPeer', peerId });
    await this.newSendKey();
    this.keyId = (this.keyId + 1) % 256;
    const keyId = this.keyId;
    await Promise.all(Array.from(this.peers, (p) => this.sendKeyTo(p, keyId).catch(() => {})));
    setTimeout(() => { if (this.keyId === keyId) this.useSendKey(); }, ROTATE_DELAY_MS);
  }

  // mediasoup-client's onRtpSender / onRtpReceiver: the transform goes on before any frame.
  attach(senderOrReceiver, options) {
    if (this.scriptTransform) {
      senderOrReceiver.transform = new RTCRtpScriptTransform(this.worker, options);
      return;
    }
    const { readable, writable } = senderOrReceiver.createEncodedStreams();
    readable.pipeThrough(this.local.stream(options)).pipeTo(writable).catch(() => {});
  }

  // What the transforms counted: {encrypted, decrypted, failed, noKey, dropped, byPeer, sendKeyId,
  // keyId, api}.
  report() {
    if (!this.worker) return Promise.resolve({ ...this.local.report(), keyId: this.keyId, api: 'encodedInsertableStreams' });
    return new Promise((resolve) => {
      const on = ({ data }) => {
        if (data.type !== 'report') return;
        this.worker.removeEventListener('message', on);
        resolve({ ...data.report, keyId: this.keyId, api: 'RTCRtpScriptTransform' });
      };
      this.worker.addEventListener('message', on);
      this.worker.postMessage({ type: 'report' });
    });
  }
}
