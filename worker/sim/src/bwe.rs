//! Bandwidth-estimation scenarios (issue 13): one simulcast publisher at realistic bit rates
//! ([`SimulcastPublisher::with_bitrates`]) and subscribers whose simulcast consumers negotiated
//! transport-wide-cc, each behind a bottleneck [`Link`] and answering with transport-wide
//! feedback as Chrome does ([`crate::Peer::twcc_ext`]). Then, per subscriber and per time
//! window, what it received: which encoding, at what bit rate, with what loss ([`windows`]).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ferrosfu_fbs::*;
use ferrosfu_worker_core::{RtpHeader, Vp8Descriptor};

use crate::scenario::fb;
use crate::simulcast::{DEFAULT_BITRATES, LAYERS, SimulcastPublisher, subscriber_with};
use crate::{Link, Sim};

/// The transport-wide-cc header extension (draft-holmer-rmcat-transport-wide-cc-extensions-01).
pub const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/// The id the subscribers' consumers give it (Chrome offers 3; any free id works).
pub const TWCC_EXT: u8 = 3;
/// The producer id of the scenario's publisher.
pub const PRODUCER: &str = "cam";

/// One publisher and its subscribers.
#[derive(Debug)]
pub struct BweScenario {
    pub publisher: SimulcastPublisher,
    /// Peer index of each subscriber.
    pub subscribers: Vec<usize>,
    /// Consumer id of each subscriber ("c0", "c1"…).
    pub consumers: Vec<String>,
}

impl BweScenario {
    /// A publisher of [`DEFAULT_BITRATES`] (encodings by SSRC, frame sizes from `seed`) and
    /// `subscribers` subscribers, each behind a copy of `down` (their SFU → peer link), each
    /// preferring the highest layers, consuming with transport-wide-cc and answering with
    /// feedback.
    pub fn new(sim: &mut Sim, subscribers: usize, down: &Link, seed: u64) -> BweScenario {
        let publisher =
            SimulcastPublisher::with_bitrates(sim, PRODUCER, false, DEFAULT_BITRATES, seed);
        let mut s = BweScenario {
            publisher,
            subscribers: Vec::new(),
            consumers: Vec::new(),
        };
        for _ in 0..subscribers {
            s.add_subscriber(sim, down, None);
        }
        s
    }

    /// One more subscriber behind a copy of `down`, preferring `preferred` (`None`: the
    /// highest layers); returns its peer index.
    pub fn add_subscriber(
        &mut self,
        sim: &mut Sim,
        down: &Link,
        preferred: Option<ConsumerLayers>,
    ) -> usize {
        let id = format!("c{}", self.consumers.len());
        let peer = twcc_subscriber(sim, &id, PRODUCER, preferred, down);
        self.subscribers.push(peer);
        self.consumers.push(id);
        peer
    }

    /// One more subscriber behind a copy of `down` whose consumer negotiated neither
    /// transport-wide-cc nor REMB: the SFU has no estimate toward it and forwards the highest
    /// layer whatever the link (for tests of the link and the measurements themselves).
    pub fn add_subscriber_without_bwe(&mut self, sim: &mut Sim, down: &Link) -> usize {
        let id = format!("c{}", self.consumers.len());
        let peer = subscriber_with(sim, &id, PRODUCER, ConsumerType::Simulcast, None, |_| {});
        sim.peers[peer].down = down.clone();
        sim.peers[peer].rr_loss = true;
        self.subscribers.push(peer);
        self.consumers.push(id);
        peer
    }

    /// Publishes for `d` of simulated time (see [`SimulcastPublisher::run_for`]).
    pub fn run_for(&mut self, sim: &mut Sim, d: Duration) {
        self.publisher.run_for(sim, d);
    }

    /// The transport's `availableOutgoingBitrate` toward subscriber `k` (0: not fed yet).
    pub fn available_outgoing_bitrate(&self, sim: &mut Sim, k: usize) -> u32 {
        let tid = sim.peers[self.subscribers[k]].transport_id.clone();
        match sim.request(&tid, RequestBody::TransportGetStats) {
            Ok(ResponseBody::TransportStats(st)) => st.available_outgoing_bitrate,
            other => panic!("transport.getStats: {other:?}"),
        }
    }
}

/// A simulcast consumer `id` of `producer` on a new subscriber peer behind `down`, with
/// transport-wide-cc negotiated (the header extension as [`TWCC_EXT`] and `transport-cc`
/// feedback on VP8), answering with transport-wide feedback and with receiver reports that
/// say its loss ([`crate::Peer::rr_loss`]). Returns the peer.
pub fn twcc_subscriber(
    sim: &mut Sim,
    id: &str,
    producer: &str,
    preferred: Option<ConsumerLayers>,
    down: &Link,
) -> usize {
    let peer = subscriber_with(
        sim,
        id,
        producer,
        ConsumerType::Simulcast,
        preferred,
        with_twcc,
    );
    let p = &mut sim.peers[peer];
    p.down = down.clone();
    p.twcc_ext = Some(TWCC_EXT);
    p.rr_loss = true;
    peer
}

/// Transport-wide-cc negotiated on a consumer: the header extension and `transport-cc`
/// feedback on its first (media) codec.
pub fn with_twcc(o: &mut ConsumeOptions) {
    let p = &mut o.rtp_parameters;
    p.header_extensions
        .retain(|e| e.uri != TWCC_URI && e.id != TWCC_EXT);
    p.header_extensions.push(RtpHeaderExtensionParameters {
        uri: TWCC_URI.into(),
        id: TWCC_EXT,
        encrypt: false,
    });
    if let Some(c) = p.codecs.first_mut()
        && !c.rtcp_feedback.iter().any(|f| f.kind == "transport-cc")
    {
        c.rtcp_feedback.push(fb("transport-cc", ""));
    }
}

/// What a subscriber received in one window of simulated time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RxWindow {
    /// The window, from the simulation's start: `[start, end)`.
    pub start: Duration,
    pub end: Duration,
    /// RTP bytes received (plaintext: header and payload, no SRTP tag; media, RTX,
    /// padding and other SSRCs alike), and that as a bit rate over the window.
    pub bytes: u64,
    pub bitrate_bps: u64,
    /// Media packets (not RTX) received per encoding, read from the identity the publisher
    /// writes after the VP8 descriptor.
    pub packets_per_layer: [u64; LAYERS],
    /// The encoding of most of those packets (`None`: no media packet in the window).
    pub layer: Option<usize>,
    /// RTX packets (retransmissions and padding) and their bytes.
    pub rtx_packets: u64,
    pub rtx_bytes: u64,
    /// Packets on other SSRCs (probation, other consumers) and their bytes.
    pub other_packets: u64,
    pub other_bytes: u64,
    /// Media sequence numbers this window accounts for: those after the highest one received
    /// before the window, up to the highest received in it.
    pub expected: u64,
    /// Of those, how many arrived as originals (any time), and how many arrived at all, as
    /// original or RTX, by the end of the measurement.
    pub received: u64,
    pub repaired: u64,
}

impl RxWindow {
    /// Fraction of the expected packets that did not arrive as originals.
    pub fn loss_before_repair(&self) -> f64 {
        Self::fraction(
            self.expected - self.received.min(self.expected),
            self.expected,
        )
    }

    /// Fraction of the expected packets that did not arrive at all (RTX did not repair them).
    pub fn loss_after_repair(&self) -> f64 {
        Self::fraction(
            self.expected - self.repaired.min(self.expected),
            self.expected,
        )
    }

    fn fraction(n: u64, of: u64) -> f64 {
        if of == 0 { 0.0 } else { n as f64 / of as f64 }
    }
}

/// The windows within `[from, to)` seconds of the run.
pub fn between(ws: &[RxWindow], from: f64, to: f64) -> Vec<&RxWindow> {
    ws.iter()
        .filter(|w| {
            w.start >= Duration::from_secs_f64(from) && w.end <= Duration::from_secs_f64(to)
        })
        .collect()
}

/// From when within `[from, to)` seconds every window is on `layer` (`None`: it is not at the
/// end).
pub fn settled_on(ws: &[RxWindow], layer: usize, from: f64, to: f64) -> Option<Duration> {
    let w = between(ws, from, to);
    match w.iter().rposition(|w| w.layer != Some(layer)) {
        None => w.first().map(|w| w.start),
        Some(i) => w.get(i + 1).map(|w| w.start),
    }
}

/// Media loss (before RTX repair) over windows.
pub fn loss(ws: &[&RxWindow]) -> f64 {
    let expected: u64 = ws.iter().map(|w| w.expected).sum();
    let received: u64 = ws.iter().map(|w| w.received.min(w.expected)).sum();
    (expected - received) as f64 / expected.max(1) as f64
}

/// What kind of packet an [`Arrival`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// On the media SSRC.
    Media,
    /// On its RTX SSRC (a retransmission, or padding when it carries no OSN).
    Rtx,
    /// On another SSRC (probation, another consumer).
    Other,
}

/// One RTP packet a subscriber received, as [`windows`] reads it.
struct Arrival {
    at: Instant,
    bytes: usize,
    kind: Kind,
    /// Extended media sequence number (the OSN for RTX); `None` for padding and others.
    seq: Option<u64>,
    layer: Option<usize>,
}

/// What subscriber `peer` received on its one consumer's stream (see [`windows_of`]).
///
/// Panics when the peer has no consumer with RTX or several.
pub fn windows(sim: &Sim, peer: usize, from: Instant, width: Duration) -> Vec<RxWindow> {
    let media: HashSet<u32> = sim.peers[peer].rtx_of.values().copied().collect();
    assert_eq!(
        media.len(),
        1,
        "one consumer on peer {peer} (else windows_of)"
    );
    let ssrc = media.into_iter().next().expect("one, asserted");
    windows_of(sim, peer, ssrc, from, width)
}

/// What subscriber `peer` received of the stream `ssrc` (and its RTX), in windows of `width`
/// from `from` up to the last whole window before `sim.now`. Packets of other SSRCs count as
/// [`RxWindow::other_bytes`].
pub fn windows_of(
    sim: &Sim,
    peer: usize,
    ssrc: u32,
    from: Instant,
    width: Duration,
) -> Vec<RxWindow> {
    windows_with(sim, peer, ssrc, from, width, vp8_layer)
}

/// The encoding of a simulcast publisher's VP8 payload: the identity byte it writes after the
/// descriptor.
fn vp8_layer(payload: &[u8]) -> Option<usize> {
    Vp8Descriptor::parse(payload)
        .and_then(|d| payload.get(d.len + 1))
        .map(|&l| usize::from(l))
}

/// [`windows_of`] with each media packet's layer read by `layer` from its payload (e.g.
/// [`crate::svc::svc_layer`] for VP9 SVC: the spatial layer).
pub fn windows_with(
    sim: &Sim,
    peer: usize,
    ssrc: u32,
    from: Instant,
    width: Duration,
    layer: fn(&[u8]) -> Option<usize>,
) -> Vec<RxWindow> {
    let arrivals = arrivals(sim, peer, ssrc, layer);
    let originals: HashSet<u64> = arrivals
        .iter()
        .filter(|a| a.kind == Kind::Media)
        .filter_map(|a| a.seq)
        .collect();
    let any: HashSet<u64> = arrivals.iter().filter_map(|a| a.seq).collect();
    // The highest original sequence number received before `from`.
    let mut high = arrivals
        .iter()
        .filter(|a| a.kind == Kind::Media && a.at < from)
        .filter_map(|a| a.seq)
        .max();
    let mut out = Vec::new();
    let mut start = from;
    while start + width <= sim.now {
        let end = start + width;
        let mut w = RxWindow {
            start: start.duration_since(sim.start),
            end: end.duration_since(sim.start),
            ..RxWindow::default()
        };
        let mut top = high;
        for a in arrivals.iter().filter(|a| a.at >= start && a.at < end) {
            w.bytes += a.bytes as u64;
            match a.kind {
                Kind::Rtx => {
                    w.rtx_packets += 1;
                    w.rtx_bytes += a.bytes as u64;
                }
                Kind::Other => {
                    w.other_packets += 1;
                    w.other_bytes += a.bytes as u64;
                }
                Kind::Media => {
                    if let Some(l) = a.layer {
                        w.packets_per_layer[l] += 1;
                    }
                    top = top.max(a.seq);
                }
            }
        }
        w.bitrate_bps = (w.bytes as f64 * 8.0 / width.as_secs_f64()) as u64;
        w.layer = (0..LAYERS)
            .filter(|&l| w.packets_per_layer[l] > 0)
            .max_by_key(|&l| w.packets_per_layer[l]);
        if let Some(top) = top {
            let first = high.map_or(top, |h| h + 1);
            if top >= first {
                w.expected = top - first + 1;
                w.received = (first..=top).filter(|s| originals.contains(s)).count() as u64;
                w.repaired = (first..=top).filter(|s| any.contains(s)).count() as u64;
            }
        }
        high = top;
        out.push(w);
        start = end;
    }
    out
}

/// Every RTP packet `peer` received, decoded for the stream `media`: RTX unwrapped to its
/// OSN, sequence numbers extended, the encoding read from the publisher's identity bytes.
fn arrivals(sim: &Sim, peer: usize, media: u32, layer: fn(&[u8]) -> Option<usize>) -> Vec<Arrival> {
    let p = &sim.peers[peer];
    let mut last: Option<u64> = None;
    p.rx_raw
        .iter()
        .zip(&p.rx_times)
        .filter_map(|(pkt, &at)| {
            let h = RtpHeader::parse(pkt).ok()?;
            let mut a = Arrival {
                at,
                bytes: pkt.len(),
                kind: Kind::Other,
                seq: None,
                layer: None,
            };
            let mut payload = h.payload(pkt);
            let seq = if h.ssrc.0 == media {
                a.kind = Kind::Media;
                h.seq
            } else if p.rtx_of.get(&h.ssrc.0) == Some(&media) {
                a.kind = Kind::Rtx;
                let [hi, lo, rest @ ..] = payload else {
                    // Padding only: no media packet behind it.
                    return Some(a);
                };
                payload = rest;
                u16::from_be_bytes([*hi, *lo])
            } else {
                return Some(a);
            };
            let ext = extend(last, seq);
            last = Some(last.map_or(ext, |l| l.max(ext)));
            a.seq = Some(ext);
            a.layer = layer(payload).filter(|&l| l < LAYERS);
            Some(a)
        })
        .collect()
}

/// `seq` extended to 64 bits, as the closest to `last` (the highest so far).
fn extend(last: Option<u64>, seq: u16) -> u64 {
    let Some(last) = last else {
        return u64::from(seq) + (1 << 16);
    };
    let base = last & !0xffff;
    [base.wrapping_sub(1 << 16), base, base + (1 << 16)]
        .into_iter()
        .map(|b| b.wrapping_add(u64::from(seq)))
        .min_by_key(|c| c.abs_diff(last))
        .expect("three candidates")
}

#[cfg(test)]
mod tests {
    use super::extend;

    #[test]
    fn sequence_numbers_extend_across_wraps_both_ways() {
        let a = extend(None, 65_530);
        let b = extend(Some(a), 3);
        assert_eq!(b - a, 9);
        assert_eq!(extend(Some(b), 65_534), a + 4);
        assert_eq!(extend(Some(b), 4), b + 1);
    }
}

#[cfg(test)]
mod scenario_tests {
    use std::time::Duration;

    use super::*;
    use crate::simulcast::{FRAME, MAX_PAYLOAD};

    #[test]
    fn the_publisher_sends_its_bit_rates_in_simulated_time() {
        let mut sim = Sim::new(3);
        let mut p = SimulcastPublisher::with_bitrates(&mut sim, "cam", false, DEFAULT_BITRATES, 3);
        p.record = true;
        let t0 = sim.now;
        p.run_for(&mut sim, Duration::from_secs(10));
        assert_eq!(sim.now - t0, Duration::from_secs(10));
        // A frame at 0, 30 … 9990 ms.
        assert_eq!(p.frame, 10_000u32.div_ceil(FRAME.as_millis() as u32));
        for (l, &want) in DEFAULT_BITRATES.iter().enumerate() {
            let rate = p.bytes_sent[l] * 8 / 10;
            assert!(
                rate.abs_diff(want) * 100 < want * 5,
                "layer {l}: {rate} bit/s"
            );
            assert_eq!(p.keyframes_sent[l], 1, "no PLI, no keyframe but the first");
        }
        assert!(p.sent.iter().all(|s| s.data.len() + 6 <= MAX_PAYLOAD));
        // Not ticked for 100 ms: frames skipped, not sent in a burst, the clock kept.
        let (frame, sent) = (p.frame, p.sent.len());
        sim.run_for(Duration::from_millis(100));
        p.run_for(&mut sim, Duration::from_millis(1));
        // Frames were due at 10 020, 10 050 and 10 080 ms: the last one is sent (late), the
        // others skipped.
        assert_eq!(p.frame, frame + 3);
        assert!(p.sent[sent..].iter().all(|s| s.frame == frame + 2));
        // A keyframe is about four delta frames.
        let frame_bytes = |f: u32| -> usize {
            p.sent
                .iter()
                .filter(|s| s.layer == 2 && s.frame == f)
                .map(|s| s.data.len())
                .sum()
        };
        let key = frame_bytes(0) as f64;
        let delta = (1..101).map(frame_bytes).sum::<usize>() as f64 / 100.0;
        assert!((2.5..6.0).contains(&(key / delta)), "{key} vs {delta}");
    }

    #[test]
    fn windows_read_layer_rate_and_loss() {
        let mut sim = Sim::new(4);
        let down = Link {
            loss: 0.1,
            ..Link::default()
        };
        let mut s = BweScenario::new(&mut sim, 0, &down, 4);
        let peer = s.add_subscriber_without_bwe(&mut sim, &down);
        s.run_for(&mut sim, Duration::from_secs(3));
        let ws = windows(
            &sim,
            peer,
            sim.start + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert_eq!(ws.len(), 2, "{ws:?}");
        for w in &ws {
            assert_eq!(w.layer, Some(2), "{w:?}");
            // 1.5 Mbit/s of payload, plus headers and retransmissions.
            assert!((1_450_000..2_000_000).contains(&w.bitrate_bps), "{w:?}");
            assert!((0.03..0.2).contains(&w.loss_before_repair()), "{w:?}");
            assert!(w.loss_after_repair() < w.loss_before_repair(), "{w:?}");
        }
    }

    #[test]
    fn a_rate_change_between_runs_reshapes_what_arrives() {
        let mut sim = Sim::new(6);
        let down = Link {
            latency: Duration::from_millis(10),
            ..Link::bottleneck(2_500_000)
        };
        let mut s = BweScenario::new(&mut sim, 0, &down, 6);
        let peer = s.add_subscriber_without_bwe(&mut sim, &down);
        s.run_for(&mut sim, Duration::from_secs(2));
        let wide = sim.peers[peer].down.stats;
        assert_eq!(wide.queue_drops, 0, "1.5 Mbit/s fits in 2.5: {wide:?}");
        sim.peers[peer].down.rate_bps = Some(250_000);
        let at = sim.now;
        s.run_for(&mut sim, Duration::from_secs(3));
        let narrow = sim.peers[peer].down.stats;
        assert!(narrow.queue_drops > 100, "{narrow:?}");
        let ws = windows(
            &sim,
            peer,
            at + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert_eq!(ws.len(), 2);
        for w in &ws {
            // The link's rate, less the SRTP tags the plaintext count leaves out.
            assert!((220_000..=255_000).contains(&w.bitrate_bps), "{w:?}");
        }
    }
}
