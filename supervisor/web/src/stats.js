// What the demo app's test hooks report (window.ferrosfu.stats(), sendStats(), diag(), thumb()):
// read from mediasoup-client's consumers and transports and from the tiles.

// Decoded video frames of an RTCRtpReceiver.
export async function framesOf(receiver) {
  let n = 0;
  (await receiver.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') n += r.framesDecoded || 0;
  });
  return n;
}

// A 16×9 grayscale thumbnail (0-255 values) of a video element, or null before its first frame.
export function thumb(video) {
  if (!video || !video.videoWidth) return null;
  const c = document.createElement('canvas');
  c.width = 16;
  c.height = 9;
  const g = c.getContext('2d', { willReadFrequently: true });
  g.drawImage(video, 0, 0, 16, 9);
  const d = g.getImageData(0, 0, 16, 9).data;
  const out = [];
  for (let i = 0; i < d.length; i += 4) out.push(Math.round(0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2]));
  return out;
}

export async function inboundStats(consumers) {
  const out = [];
  for (const { consumer, peerId } of consumers.values()) {
    const report = await consumer.getStats();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        out.push({
          peerId,
          kind: s.kind || consumer.kind,
          bytesReceived: s.bytesReceived || 0,
          packetsReceived: s.packetsReceived || 0,
          framesDecoded: s.framesDecoded || 0,
          frameWidth: s.frameWidth || 0,
          frameHeight: s.frameHeight || 0,
          totalAudioEnergy: s.totalAudioEnergy || 0,
        });
      }
    });
  }
  return out;
}

// What the send transport reports: the browser's bandwidth estimate (availableOutgoingBitrate,
// grown by the server's transport-wide feedback), the bytes on the wire (transportBytesSent: the
// selected candidate pair, headers, audio, RTCP and padding included), the bytes each kind sent
// (payload, retransmissions and RTX padding included), and per video
// encoding (rid) what the encoder makes of it; `producedEncodings`: the camera producer's
// rtpParameters encodings (rid or scalabilityMode), as the server was told.
export async function outboundStats(sendTransport, producers) {
  const out = { availableOutgoingBitrate: 0, transportBytesSent: 0, videoBytesSent: 0, audioBytesSent: 0, video: [],
    producedEncodings: [] };
  if (!sendTransport) return out;
  if (producers.video) {
    out.producedEncodings = producers.video.rtpParameters.encodings.map((e) => e.rid || e.scalabilityMode || String(e.ssrc));
    out.codec = producers.video.rtpParameters.codecs[0]?.mimeType;
  }
  (await sendTransport.getStats()).forEach((s) => {
    if (s.type === 'candidate-pair' && s.nominated) {
      out.availableOutgoingBitrate = s.availableOutgoingBitrate || out.availableOutgoingBitrate;
      out.transportBytesSent = s.bytesSent || 0;
    } else if (s.type === 'outbound-rtp') {
      out[s.kind === 'video' ? 'videoBytesSent' : 'audioBytesSent'] += s.bytesSent || 0;
      if (s.kind === 'video') {
        out.video.push({ rid: s.rid, width: s.frameWidth || 0, height: s.frameHeight || 0, fps: s.framesPerSecond || 0,
          framesEncoded: s.framesEncoded || 0, bytesSent: s.bytesSent || 0,
          retransmittedBytesSent: s.retransmittedBytesSent || 0, active: s.active,
          targetBitrate: s.targetBitrate, scalabilityMode: s.scalabilityMode,
          qualityLimitationReason: s.qualityLimitationReason });
      }
    }
  });
  out.video.sort((a, b) => String(a.rid).localeCompare(String(b.rid)));
  return out;
}

// What a test prints when media does not flow: transport states, consumers, raw inbound stats.
export async function diagnostics({ consumers, sendTransport, recvTransport, events }) {
  const list = [];
  for (const { consumer, peerId } of consumers.values()) {
    const inbound = [];
    (await consumer.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' || s.type === 'candidate-pair' || s.type === 'transport') {
        inbound.push({ type: s.type, state: s.state || s.dtlsState, bytesReceived: s.bytesReceived,
          packetsReceived: s.packetsReceived, framesDecoded: s.framesDecoded, keyFramesDecoded: s.keyFramesDecoded,
          pliCount: s.pliCount, firCount: s.firCount });
      }
    });
    list.push({ peerId, kind: consumer.kind, paused: consumer.paused, track: consumer.track.readyState, inbound });
  }
  return {
    sendTransport: sendTransport?.connectionState,
    recvTransport: recvTransport?.connectionState,
    events: events.map((e) => e.method),
    consumers: list,
  };
}
