// Chat and file sharing over data channels (mediasoup-client DataProducers/DataConsumers).
//
// Chat: this peer produces data with label `chat` (text messages, UTF-8, ≤ 4 KiB); the server
// validates, stores and relays each message to the other peers, which get one DataConsumer per
// sender (`newDataConsumer`, label `chat`, its peerId) as in mediasoup-demo. After join the
// server sends `chatHistory` {messages: [{id, peerId, displayName, sentAt, text}]} (the last
// 100); a refused message comes back as `chatMessageRejected` {code, reason}.
//
// Files: `shareFile` {name, size, mime, sha256, chunks} asks the server (it checks the size
// limit) and answers {fileId}; the others get `fileShared` {fileId, peerId, displayName, name,
// size, mime, sha256, chunks}. The bytes go on this peer's `file` DataProducer in chunks of
// CHUNK bytes, each a binary message: fileId (16 bytes, the UUID's) | seq (u32 BE) |
// total (u32 BE) | data. Receivers acknowledge progress on their own `file` channel with a
// text message {"type":"ack","fileId","received"} every ACK_EVERY chunks and at the end; the
// sender keeps at most WINDOW bytes unacknowledged by the slowest receiver, so the server's
// send buffer toward a slow receiver never overflows. A receiver checks the SHA-256 of the
// whole file before it offers it for download.

export const CHUNK = 16 * 1024;
const WINDOW = 12 * CHUNK; // under the server's 256 KiB SCTP send buffer per consumer transport
const ACK_EVERY = 4;
const HEADER = 24;

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
const uuidBytes = (id) => Uint8Array.from(id.replace(/-/g, '').match(/../g).map((h) => parseInt(h, 16)));
const uuidOf = (bytes) => {
  const h = hex(bytes);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

export async function sha256Hex(data) {
  return hex(await crypto.subtle.digest('SHA-256', data));
}

export class Chat {
  // ui: { list, input, form, fileInput, progress } elements (any may be null in tests);
  // names(peerId) → display name; onError(text).
  constructor({ protoo, ui, names, onError, hooks }) {
    this.protoo = protoo;
    this.ui = ui;
    this.names = names;
    this.onError = onError;
    this.hooks = hooks;
    this.chatProducer = null;
    this.fileProducer = null;
    this.consumers = new Map(); // dataConsumerId -> { dataConsumer, peerId, label }
    this.messages = []; // {id?, peerId, displayName, sentAt, text, mine}
    this.incoming = new Map(); // fileId -> { meta, chunks: [], received, bytes }
    this.files = []; // received: { fileId, name, size, sha256, ok, url, peerId }
    this.outgoing = null; // { fileId, acked: Map(peerId -> chunks), waiters }
    if (ui?.form) {
      ui.form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const text = ui.input.value;
        if (!text.trim()) return;
        this.send(text).then(() => { ui.input.value = ''; }).catch((e) => onError(String(e.message || e)));
      });
    }
    if (ui?.fileInput) {
      ui.fileInput.addEventListener('change', () => {
        const f = ui.fileInput.files[0];
        if (f) this.sendFile(f).catch((e) => onError(`file: ${e.message || e}`));
        ui.fileInput.value = '';
      });
    }
  }

  // The data producers, on the send transport (created with sctpCapabilities).
  async start(sendTransport) {
    sendTransport.on('producedata', ({ sctpStreamParameters, label, protocol, appData }, ok, fail) => {
      this.protoo.request('produceData', { transportId: sendTransport.id, sctpStreamParameters, label, protocol, appData })
        .then(({ id }) => ok({ id })).catch(fail);
    });
    this.chatProducer = await sendTransport.produceData({ ordered: true, label: 'chat', appData: { info: 'chat' } });
    this.fileProducer = await sendTransport.produceData({ ordered: true, label: 'file', appData: { info: 'file' } });
    // Lets the sender wait on its own buffer (the browser's side of back-pressure).
    this.fileProducer.bufferedAmountLowThreshold = WINDOW;
  }

  async send(text) {
    if (!this.chatProducer || this.chatProducer.readyState !== 'open') throw new Error('chat is not connected');
    if (new TextEncoder().encode(text).length > 4096) throw new Error('a message is limited to 4 KiB');
    this.chatProducer.send(text);
    this.add({ peerId: this.hooks.peerId, displayName: 'me', sentAt: new Date().toISOString(), text, mine: true });
  }

  // newDataConsumer from the server.
  async consume(recvTransport, data) {
    const { peerId, dataProducerId, id, sctpStreamParameters, label, protocol, appData } = data;
    const dataConsumer = await recvTransport.consumeData({ id, dataProducerId, sctpStreamParameters, label, protocol, appData });
    this.consumers.set(dataConsumer.id, { dataConsumer, peerId, label });
    dataConsumer.on('transportclose', () => this.consumers.delete(dataConsumer.id));
    dataConsumer.on('message', (msg) => {
      if (label === 'chat') {
        const text = typeof msg === 'string' ? msg : new TextDecoder().decode(msg);
        this.add({ peerId, displayName: this.names(peerId), sentAt: new Date().toISOString(), text });
      } else if (label === 'file') {
        this.onFileMessage(peerId, msg);
      }
    });
  }

  closed(dataConsumerId) {
    const c = this.consumers.get(dataConsumerId);
    if (c) {
      c.dataConsumer.close();
      this.consumers.delete(dataConsumerId);
    }
  }

  history(messages) {
    for (const m of messages) this.add({ ...m, history: true });
  }

  add(m) {
    this.messages.push(m);
    if (this.messages.length > 1000) this.messages.splice(0, this.messages.length - 1000);
    const list = this.ui?.list;
    if (!list) return;
    const li = document.createElement('li');
    if (m.mine) li.className = 'mine';
    const time = new Date(m.sentAt);
    const head = document.createElement('span');
    head.className = 'who';
    head.textContent = `${m.mine ? 'me' : m.displayName || m.peerId} ${Number.isNaN(time.getTime()) ? '' : time.toLocaleTimeString()}`;
    const body = document.createElement('span');
    body.className = 'text';
    body.textContent = m.text;
    li.append(head, body);
    list.append(li);
    list.scrollTop = list.scrollHeight;
  }

  // ---- files: sending ----------------------------------------------------------------------

  async sendFile(file) {
    if (!this.fileProducer || this.fileProducer.readyState !== 'open') throw new Error('file channel not connected');
    const data = new Uint8Array(await file.arrayBuffer());
    const total = Math.max(1, Math.ceil(data.length / CHUNK));
    const sha256 = await sha256Hex(data);
    const { fileId, receivers } = await this.protoo.request('shareFile', {
      name: file.name || 'file', size: data.length, mime: file.type || 'application/octet-stream', sha256, chunks: total,
    });
    const id = uuidBytes(fileId);
    const acked = new Map((receivers || []).map((p) => [p, 0]));
    this.outgoing = { fileId, acked, wake: null };
    const slowest = () => (acked.size ? Math.min(...acked.values()) : total);
    for (let seq = 0; seq < total; seq++) {
      // Window against the slowest receiver, and the browser's own buffer.
      while ((seq - slowest()) * CHUNK >= WINDOW || this.fileProducer.bufferedAmount > WINDOW) {
        await new Promise((resolve) => {
          this.outgoing.wake = resolve;
          setTimeout(resolve, 200);
        });
        if (this.fileProducer.readyState !== 'open') throw new Error('file channel closed');
      }
      const part = data.subarray(seq * CHUNK, Math.min(data.length, (seq + 1) * CHUNK));
      const msg = new Uint8Array(HEADER + part.length);
      msg.set(id, 0);
      const v = new DataView(msg.buffer);
      v.setUint32(16, seq);
      v.setUint32(20, total);
      msg.set(part, HEADER);
      this.fileProducer.send(msg);
      this.progress(`sending ${file.name || 'file'}: ${Math.round(((seq + 1) * 100) / total)} %`);
    }
    this.progress(`sent ${file.name || 'file'} (${data.length} bytes)`);
    return { fileId, sha256, size: data.length };
  }

  progress(text) {
    if (this.ui?.progress) this.ui.progress.textContent = text;
  }

  // ---- files: receiving --------------------------------------------------------------------

  // fileShared notification.
  announce(meta) {
    if (meta.peerId === this.hooks.peerId) return;
    this.incoming.set(meta.fileId, { meta, chunks: new Array(meta.chunks), received: 0, bytes: 0 });
    this.progress(`receiving ${meta.name} from ${meta.displayName || meta.peerId}`);
  }

  onFileMessage(peerId, msg) {
    if (typeof msg === 'string') {
      let ack;
      try { ack = JSON.parse(msg); } catch { return; }
      const o = this.outgoing;
      if (ack?.type === 'ack' && o && ack.fileId === o.fileId && o.acked.has(peerId)) {
        o.acked.set(peerId, Math.max(o.acked.get(peerId), Number(ack.received) || 0));
        if (o.wake) o.wake();
      }
      return;
    }
    const buf = new Uint8Array(msg);
    if (buf.length < HEADER) return;
    const fileId = uuidOf(buf.subarray(0, 16));
    const f = this.incoming.get(fileId);
    if (!f || f.meta.peerId !== peerId) return; // not announced by the server for this sender
    const v = new DataView(buf.buffer, buf.byteOffset);
    const seq = v.getUint32(16);
    const total = v.getUint32(20);
    if (total !== f.meta.chunks || seq >= total || f.chunks[seq]) return;
    const part = buf.slice(HEADER);
    if (f.bytes + part.length > f.meta.size) return;
    f.chunks[seq] = part;
    f.received += 1;
    f.bytes += part.length;
    if (f.received % ACK_EVERY === 0 || f.received === total) {
      this.fileProducer?.send(JSON.stringify({ type: 'ack', fileId, received: f.received }));
    }
    this.progress(`receiving ${f.meta.name}: ${Math.round((f.received * 100) / total)} %`);
    if (f.received === total) this.complete(fileId, f);
  }

  async complete(fileId, f) {
    this.incoming.delete(fileId);
    const data = new Uint8Array(f.bytes);
    let at = 0;
    for (const c of f.chunks) {
      data.set(c, at);
      at += c.length;
    }
    const sha256 = await sha256Hex(data);
    const ok = sha256 === f.meta.sha256 && data.length === f.meta.size;
    const url = ok ? URL.createObjectURL(new Blob([data], { type: f.meta.mime })) : null;
    const entry = { fileId, name: f.meta.name, size: data.length, sha256, ok, url, peerId: f.meta.peerId };
    this.files.push(entry);
    this.progress(ok ? `received ${f.meta.name}` : `${f.meta.name}: checksum mismatch, discarded`);
    const list = this.ui?.list;
    if (!list) return;
    const li = document.createElement('li');
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = `${f.meta.displayName || f.meta.peerId} shared a file`;
    li.append(who);
    if (ok) {
      const a = document.createElement('a');
      a.href = url;
      a.download = f.meta.name;
      a.textContent = `${f.meta.name} (${Math.ceil(data.length / 1024)} KiB)`;
      li.append(a);
    } else {
      const s = document.createElement('span');
      s.textContent = `${f.meta.name}: checksum mismatch`;
      li.append(s);
    }
    list.append(li);
  }

  // peerClosed: a receiver that left is no longer waited for.
  peerLeft(peerId) {
    if (this.outgoing?.acked.delete(peerId) && this.outgoing.wake) this.outgoing.wake();
  }
}
