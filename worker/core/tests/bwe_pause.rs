//! A video consumer the allocator paused (issue 13) in simulated time: a simulcast publisher at
//! 150 / 500 / 1500 kbit/s, one subscriber behind a bottleneck (200 ms drop-tail
//! queue, 20 ms latency) with that one video consumer. Even the lowest layer does not fit: the
//! allocator pauses it. Nothing else is sent on the transport then, so only the prober's
//! padding (padding-only RTX on the paused consumer's stream, covered by the subscriber's
//! transport-wide feedback) can show that the link came back; when it does the consumer
//! resumes on the low layer and climbs. Prints its timeline for the failure report.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::bwe::{BweScenario, RxWindow, between, settled_on, windows_of, with_twcc};
use ferrosfu_sim::*;
use ferrosfu_worker_core::{Pt, RtpHeader, SrtpProfile, Ssrc, build_packet};

const STEP: Duration = Duration::from_millis(250);

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The allocator's `ConsumerBwePause` / `ConsumerBweResume` notifications, timed to the
/// step that brought them (50 ms at most).
#[derive(Debug, Default)]
struct Pauses {
    seen: usize,
    /// (when, consumer, paused).
    list: Vec<(Duration, String, bool)>,
}

impl Pauses {
    fn poll(&mut self, sim: &Sim) {
        for n in &sim.notifications[self.seen..] {
            let paused = match n.event {
                Event::Media(MediaEvent::ConsumerBwePause) => true,
                Event::Media(MediaEvent::ConsumerBweResume) => false,
                _ => continue,
            };
            let at = sim.now.duration_since(sim.start);
            self.list
                .push((at, n.handler_id.as_str().to_owned(), paused));
        }
        self.seen = sim.notifications.len();
    }

    /// Consumer `id`'s: (when, paused).
    fn of(&self, id: &str) -> Vec<(Duration, bool)> {
        self.list
            .iter()
            .filter(|(_, c, _)| c == id)
            .map(|&(t, _, p)| (t, p))
            .collect()
    }
}

/// Runs `d` in 50 ms steps, printing the estimate toward the subscriber and its link every
/// 250 ms.
fn run(s: &mut BweScenario, sim: &mut Sim, pauses: &mut Pauses, d: Duration) {
    let end = sim.now + d;
    while sim.now < end {
        for _ in 0..5 {
            s.run_for(sim, STEP / 5);
            pauses.poll(sim);
        }
        let est = s.available_outgoing_bitrate(sim, 0);
        let l = &sim.peers[s.subscribers[0]].down.stats;
        eprintln!(
            "t={:>6.2}s est={est:>8} drops={} maxq={}ms padding={}",
            sim.now.duration_since(sim.start).as_secs_f64(),
            l.queue_drops,
            l.max_queue_delay.as_millis(),
            sim.peers[s.subscribers[0]].rx_padding,
        );
    }
}

/// What the subscriber received of its consumer's stream in 250 ms windows.
fn timeline(sim: &Sim, peer: usize) -> Vec<RxWindow> {
    let ssrc = *sim.peers[peer].rtx_of.values().min().unwrap();
    let ws = windows_of(sim, peer, ssrc, sim.start, STEP);
    for w in &ws {
        eprintln!(
            "  [{:>5.2}-{:>5.2}] layer={:?} {:>8} bps rtx={} loss={:.3}",
            w.start.as_secs_f64(),
            w.end.as_secs_f64(),
            w.layer,
            w.bitrate_bps,
            w.rtx_packets,
            w.loss_before_repair(),
        );
    }
    ws
}

/// The `consumer.layerschange` notifications of consumer `id` so far.
fn layer_changes(sim: &Sim, id: &str) -> Vec<Option<ConsumerLayers>> {
    sim.notifications
        .iter()
        .filter(|n| n.handler_id.as_str() == id)
        .filter_map(|n| match &n.event {
            Event::Media(MediaEvent::ConsumerLayersChange(l)) => Some(*l),
            _ => None,
        })
        .collect()
}

/// The narrow link: under the low layer's base temporal layer (one frame in four of 150
/// kbit/s: about 40 kbit/s with headers), so even the lowest step does not fit. (Behind
/// 100 kbit/s the consumer is not paused: it keeps that base layer.)
const NARROW: u64 = 30_000;
const NARROW_QUEUE: Duration = Duration::from_secs(1);
/// When the link lifts to 5 Mbit/s, in seconds from the start: across one probing period while
/// paused (a failed probe, then `RETRY_PAUSED_AFTER`: 2.5 s here), the first just after a probe
/// failed (the slowest recovery of a sweep of lifts over 22-25.4 s: 1.86-4.26 s).
const LIFTS: [f64; 3] = [22.0, 22.8, 23.6];

#[test]
fn a_consumer_paused_behind_30k_resumes_on_the_low_layer_within_5s_of_a_lift() {
    for lift in LIFTS {
        eprintln!("--- the link lifts at {lift} s");
        pause_then_lift(lift);
    }
}

/// 5 Mbit/s, then [`NARROW`] from 5 s, then 5 Mbit/s again from `lift` s.
fn pause_then_lift(lift: f64) {
    let seed = 23;
    let mut sim = Sim::new(seed);
    let mut down = Link::bottleneck(5_000_000);
    down.latency = Duration::from_millis(20);
    let mut s = BweScenario::new(&mut sim, 1, &down, seed);
    let peer = s.subscribers[0];
    let id = s.consumers[0].clone();
    let mut pauses = Pauses::default();
    run(&mut s, &mut sim, &mut pauses, secs(5.0));
    let d = &mut sim.peers[peer].down;
    d.rate_bps = Some(NARROW);
    // 200 ms at 30 kbit/s is less than one video packet: a deeper buffer, so that something
    // (and its feedback) gets through.
    d.queue.max_delay = Some(NARROW_QUEUE);
    run(&mut s, &mut sim, &mut pauses, secs(lift - 5.0));
    let paused_notes = layer_changes(&sim, &id);
    let d = &mut sim.peers[peer].down;
    d.rate_bps = Some(5_000_000);
    d.queue = QueueLimit::default();
    run(&mut s, &mut sim, &mut pauses, secs(20.0));
    let ws = timeline(&sim, peer);

    // Paused once the estimate reached the floor (it falls from 2.6 Mbit/s in steps: about
    // 11 s); no media at all from then until the lift.
    let narrow = between(&ws, 5.0, lift);
    let last_media = narrow.iter().rposition(|w| w.layer.is_some());
    let paused_at = last_media.map_or(secs(5.0), |i| narrow[i].end);
    eprintln!(
        "paused {:?} after the drop; notifications {paused_notes:?}",
        paused_at - secs(5.0)
    );
    assert!(paused_at <= secs(20.0), "still media at {paused_at:?}");
    assert_eq!(
        paused_notes.last(),
        Some(&None),
        "a layerschange to none when it is paused"
    );

    // Resumes on the low layer within 5 s of the lift, then climbs to the top.
    let after = between(&ws, lift, lift + 20.0);
    let first = after
        .iter()
        .find(|w| w.layer.is_some())
        .expect("media again after the lift");
    let resumed = first.start.saturating_sub(secs(lift));
    let top = settled_on(&ws, 2, lift, lift + 20.0).map(|t| t - secs(lift));
    eprintln!(
        "resumed {resumed:?} after the lift on layer {:?}; on the top layer from {top:?}",
        first.layer
    );
    assert!(resumed <= secs(5.0), "resumed {resumed:?} after the lift");
    assert_eq!(first.layer, Some(0), "the low layer first");
    let top = top.expect("settles on the top layer");
    assert!(top <= secs(15.0), "on the top layer {top:?} after the lift");
    // The pause and resume notifications: one pause, during the narrow phase; one resume,
    // after the lift, when the layers come back.
    let pauses = pauses.of(&id);
    eprintln!("bwe pauses {pauses:?}");
    let [(paused, true), (resumed_at, false)] = pauses[..] else {
        panic!("a pause then a resume: {pauses:?}");
    };
    assert!(
        paused > secs(5.0) && paused <= paused_at,
        "paused at {paused:?}"
    );
    assert!(
        resumed_at > secs(lift) && resumed_at <= first.end,
        "resumed at {resumed_at:?}"
    );
    let delay = resumed_at - secs(lift);
    eprintln!("resume notification {delay:?} after the lift");
    assert!(delay <= secs(5.0), "resumed {delay:?} after the lift");
    let resumed_notes = &layer_changes(&sim, &id)[paused_notes.len()..];
    assert!(
        resumed_notes.first().is_some_and(|l| l.is_some()),
        "a layerschange to the layers it resumes on: {resumed_notes:?}"
    );
}

/// The audio consumer's SSRC on the subscriber's transport.
const AUDIO_SSRC: u32 = 0x6000;

/// A peer publishing Opus producer "mic" (SSRC 0xa1), and its consumer "a0" on subscriber
/// `peer`'s transport, with transport-wide-cc. Returns the publishing peer.
fn audio(sim: &mut Sim, peer: usize) -> usize {
    let p = sim.add_peer(SrtpProfile::AeadAes128Gcm);
    let tid = sim.peers[p].transport_id.clone();
    let opus = |pt| RtpCodecParameters {
        mime_type: "audio/opus".into(),
        payload_type: pt,
        clock_rate: 48000,
        channels: Some(2),
        parameters: vec![],
        rtcp_feedback: vec![],
    };
    let o = ProduceOptions {
        producer_id: ProducerId::new("mic"),
        kind: MediaKind::Audio,
        rtp_parameters: RtpParameters {
            mid: Some("0".into()),
            codecs: vec![opus(OPUS_PT)],
            header_extensions: vec![],
            encodings: vec![RtpEncodingParameters {
                ssrc: Some(0xa1),
                ..Default::default()
            }],
            rtcp: RtcpParameters {
                cname: "mic".into(),
                reduced_size: true,
            },
        },
        rtp_mapping: RtpMapping {
            codecs: vec![CodecMapping {
                payload_type: OPUS_PT,
                mapped_payload_type: CONSUMER_OPUS_PT,
            }],
            encodings: vec![EncodingMapping {
                ssrc: Some(0xa1),
                rid: None,
                scalability_mode: None,
                mapped_ssrc: 0x4000_00a1,
            }],
        },
        key_frame_request_delay: 0,
        paused: false,
    };
    sim.request(&tid, RequestBody::TransportProduce(o)).unwrap();
    let mut c = ConsumeOptions {
        consumer_id: ConsumerId::new("a0"),
        producer_id: ProducerId::new("mic"),
        kind: MediaKind::Audio,
        rtp_parameters: RtpParameters {
            mid: Some("1".into()),
            codecs: vec![opus(CONSUMER_OPUS_PT)],
            header_extensions: vec![],
            encodings: vec![RtpEncodingParameters {
                ssrc: Some(AUDIO_SSRC),
                ..Default::default()
            }],
            rtcp: RtcpParameters {
                cname: "sub".into(),
                reduced_size: true,
            },
        },
        consumable_rtp_encodings: vec![],
        paused: false,
        ignore_dtx: false,
        consumer_type: ConsumerType::Simple,
        preferred_layers: None,
    };
    with_twcc(&mut c);
    let tid = sim.peers[peer].transport_id.clone();
    sim.request(&tid, RequestBody::TransportConsume(c)).unwrap();
    p
}

/// Runs `d` with 20 ms Opus packets of 60 bytes from peer `mic` (`seq`: the next sequence
/// number) alongside the video publisher.
fn run_with_audio(
    s: &mut BweScenario,
    sim: &mut Sim,
    pauses: &mut Pauses,
    (mic, seq): (usize, &mut u16),
    d: Duration,
) {
    let end = sim.now + d;
    while sim.now < end {
        let pkt = build_packet(
            Pt(OPUS_PT),
            *seq,
            u32::from(*seq) * 960,
            Ssrc(0xa1),
            false,
            &[0xf8; 60],
        );
        *seq = seq.wrapping_add(1);
        sim.peer_send_rtp(mic, pkt);
        s.run_for(sim, Duration::from_millis(20));
        pauses.poll(sim);
    }
}

/// Audio packets subscriber `peer` received in `[from, to)` seconds.
fn audio_received(sim: &Sim, peer: usize, from: f64, to: f64) -> usize {
    let p = &sim.peers[peer];
    p.rx_raw
        .iter()
        .zip(&p.rx_times)
        .filter(|(pkt, at)| {
            let t = at.duration_since(sim.start);
            t >= secs(from)
                && t < secs(to)
                && RtpHeader::parse(pkt).is_ok_and(|h| h.ssrc == Ssrc(AUDIO_SSRC))
        })
        .count()
}

#[test]
fn audio_keeps_flowing_while_the_video_consumer_is_paused() {
    let seed = 29;
    let mut sim = Sim::new(seed);
    let mut down = Link::bottleneck(5_000_000);
    down.latency = Duration::from_millis(20);
    let mut s = BweScenario::new(&mut sim, 1, &down, seed);
    let peer = s.subscribers[0];
    let mic = audio(&mut sim, peer);
    let (mut seq, mut pauses) = (1, Pauses::default());
    run_with_audio(&mut s, &mut sim, &mut pauses, (mic, &mut seq), secs(5.0));
    // Room for the audio (~30 kbit/s on the wire) but not for it and the video's base layer.
    sim.peers[peer].down.rate_bps = Some(60_000);
    run_with_audio(&mut s, &mut sim, &mut pauses, (mic, &mut seq), secs(25.0));
    let ws = timeline(&sim, peer);
    let (paused, _) = *pauses
        .of("c0")
        .first()
        .filter(|(_, p)| *p)
        .expect("the video consumer paused");
    eprintln!("video paused at {paused:?}; {:?}", pauses.list);
    assert!(pauses.of("a0").is_empty(), "the audio is never paused");
    // From a second after the pause (the queue drained) to the end: no video, all the audio.
    let from = paused.as_secs_f64() + 1.0;
    assert!(from < 25.0, "paused at {paused:?}");
    assert!(between(&ws, from, 30.0).iter().all(|w| w.layer.is_none()));
    let n = audio_received(&sim, peer, from, 30.0);
    let expected = (30.0 - from) * 50.0;
    eprintln!("audio packets from {from:.2} s: {n} of {expected:.0}");
    assert!(
        n as f64 >= 0.97 * expected,
        "{n} audio packets of {expected:.0}"
    );
}
