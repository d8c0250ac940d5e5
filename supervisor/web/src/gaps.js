// How smoothly each remote peer's video plays across a switch between the SFU and a direct
// call: every 50 ms the decoded-frame count of the video its tile shows (`source(peerId)`: a
// {key, framesDecoded()} for the RTCRtpReceiver shown now, or null) is read; the longest time
// without a new frame is kept per peer since the last reset(). A test hook
// (window.ferrosfu.gaps); nothing runs until start().

const SAMPLE_MS = 50;

export class FrameGaps {
  constructor(source) {
    this.source = source;
    this.peers = new Map(); // peerId -> { counts: Map(key -> frames), lastFrameAt, maxGapMs, samples }
    this.timer = null;
  }

  start(peerIds) {
    this.reset(peerIds);
    if (this.timer) return;
    const tick = async () => {
      await Promise.all(Array.from(this.peers.keys(), (p) => this.sample(p)));
      if (this.timer) this.timer = setTimeout(tick, SAMPLE_MS);
    };
    this.timer = setTimeout(tick, SAMPLE_MS);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  reset(peerIds) {
    const now = performance.now();
    this.peers = new Map(peerIds.map((p) => [p, { counts: new Map(), lastFrameAt: now, maxGapMs: 0, samples: 0, sources: [] }]));
  }

  async sample(peerId) {
    const g = this.peers.get(peerId);
    const src = this.source(peerId);
    const now = performance.now();
    if (!g) return;
    g.samples += 1;
    if (src) {
      const frames = await src.framesDecoded().catch(() => null);
      const seen = g.counts.get(src.key);
      if (frames !== null) {
        if (seen !== undefined && frames > seen) g.lastFrameAt = now;
        g.counts.set(src.key, frames);
        if (g.sources[g.sources.length - 1] !== src.key) g.sources.push(src.key);
      }
    }
    g.maxGapMs = Math.max(g.maxGapMs, now - g.lastFrameAt);
  }

  // {peerId: {maxGapMs, samples, sources}} since the last reset.
  report() {
    return Object.fromEntries(Array.from(this.peers, ([p, g]) => [p, {
      maxGapMs: Math.round(g.maxGapMs), samples: g.samples, sources: g.sources }]));
  }
}
