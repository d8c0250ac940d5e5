// The RTCRtpScriptTransform worker of the demo app's end-to-end encryption (e2ee-frames.js does
// the crypto). Messages from the page: {type: 'sendKey', key, keyId}, {type: 'recvKey', peerId,
// keyId, key} (CryptoKeys), {type: 'dropPeer', peerId}, {type: 'report'} (answered with
// {type: 'report', report}).

import { FrameCrypto } from './e2ee-frames.js';

const fc = new FrameCrypto();

self.onrtctransform = (event) => {
  const t = event.transformer;
  t.readable.pipeThrough(fc.stream(t.options)).pipeTo(t.writable).catch(() => {});
};

self.onmessage = ({ data }) => {
  switch (data.type) {
    case 'sendKey':
      fc.setSendKey(data.key, data.keyId);
      break;
    case 'recvKey':
      fc.setRecvKey(data.peerId, data.keyId, data.key);
      break;
    case 'dropPeer':
      fc.dropPeer(data.peerId);
      break;
    case 'report':
      self.postMessage({ type: 'report', report: fc.report() });
      break;
    default:
      break;
  }
};
