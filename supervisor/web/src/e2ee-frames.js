// Frame encryption of the demo app's end-to-end encrypted mode (README "End-to-end
// encryption"), shared by the RTCRtpScriptTransform worker (e2ee-worker.js) and the
// main-thread fallback (encodedInsertableStreams).
//
// A frame becomes `clear | AES-GCM(rest, aad = clear) | iv (12 bytes) | keyId (1 byte)`. Video
// keeps its first bytes in clear — VP8's payload header: 10 bytes of a keyframe, 3 of a delta
// frame (the keyframe flag and dimensions the SFU and the receiver's depacketizer read), as
// Jitsi and LiveKit do — so keyframe detection, simulcast and layer switching keep working;
// audio is encrypted whole. A frame that cannot be encrypted is dropped, never sent in clear; a
// frame that does not decrypt (no key, a wrong key, not encrypted) is dropped and counted.

const IV_BYTES = 12;
const TRAILER = IV_BYTES + 1;
const TAG_BYTES = 16;

export function clearBytes(kind, frame) {
  if (kind !== 'video') return 0;
  return frame.type === 'key' ? 10 : 3;
}

export class FrameCrypto {
  constructor() {
    this.sendKey = null; // { key: CryptoKey, keyId }
    this.recvKeys = new Map(); // peerId -> Map(keyId -> CryptoKey)
    this.stats = { encrypted: 0, decrypted: 0, failed: 0, noKey: 0, dropped: 0 };
    this.byPeer = {}; // peerId -> { audio: n, video: n } decrypted
  }

  setSendKey(key, keyId) {
    this.sendKey = { key, keyId };
  }

  setRecvKey(peerId, keyId, key) {
    if (!this.recvKeys.has(peerId)) this.recvKeys.set(peerId, new Map());
    const keys = this.recvKeys.get(peerId);
    keys.set(keyId, key);
    // Two keys per sender at most: the one in use and the one it rotates to.
    while (keys.size > 2) keys.delete(keys.keys().next().value);
  }

  dropPeer(peerId) {
    this.recvKeys.delete(peerId);
  }

  async encrypt(frame, kind, controller) {
    const data = new Uint8Array(frame.data);
    if (!this.sendKey || data.length === 0) {
      this.stats.dropped += 1;
      return;
    }
    const n = Math.min(clearBytes(kind, frame), data.length);
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    try {
      const ct = new Uint8Array(await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv, additionalData: data.subarray(0, n) }, this.sendKey.key, data.subarray(n)));
      const out = new Uint8Array(n + ct.length + TRAILER);
      out.set(data.subarray(0, n));
      out.set(ct, n);
      out.set(iv, n + ct.length);
      out[out.length - 1] = this.sendKey.keyId;
      frame.data = out.buffer;
      this.stats.encrypted += 1;
      controller.enqueue(frame);
    } catch {
      this.stats.dropped += 1;
    }
  }

  async decrypt(frame, kind, peerId, controller) {
    const data = new Uint8Array(frame.data);
    const n = clearBytes(kind, frame);
    if (data.length < n + TAG_BYTES + TRAILER) {
      this.stats.failed += 1;
      return;
    }
    const key = this.recvKeys.get(peerId)?.get(data[data.length - 1]);
    if (!key) {
      this.stats.noKey += 1;
      return;
    }
    const iv = data.subarray(data.length - TRAILER, data.length - 1);
    try {
      const pt = new Uint8Array(await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv, additionalData: data.subarray(0, n) }, key, data.subarray(n, data.length - TRAILER)));
      const out = new Uint8Array(n + pt.length);
      out.set(data.subarray(0, n));
      out.set(pt, n);
      frame.data = out.buffer;
      this.stats.decrypted += 1;
      const p = this.byPeer[peerId] || (this.byPeer[peerId] = { audio: 0, video: 0 });
      p[kind] += 1;
      controller.enqueue(frame);
    } catch {
      this.stats.failed += 1;
    }
  }

  // A TransformStream for one sender ({op: 'encrypt', kind}) or receiver ({op: 'decrypt', kind, peerId}).
  stream({ op, kind, peerId }) {
    return new TransformStream({
      transform: (frame, controller) => (op === 'encrypt'
        ? this.encrypt(frame, kind, controller)
        : this.decrypt(frame, kind, peerId, controller)),
    });
  }

  report() {
    return { ...this.stats, byPeer: this.byPeer, sendKeyId: this.sendKey?.keyId ?? null };
  }
}
