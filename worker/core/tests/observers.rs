//! RtpObservers as router entities over the simulated network: audio producers sending Opus
//! with the ssrc-audio-level header extension, an ActiveSpeakerObserver and an
//! AudioLevelObserver fed by them through the channel API.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::*;
use ferrosfu_worker_core::{Pt, SrtpProfile, Ssrc, build_packet};

const LEVEL_EXT: u8 = 5;

/// A peer publishing Opus producer `id` (SSRC `ssrc`) with the audio level extension.
fn audio_producer(sim: &mut Sim, id: &str, ssrc: u32) -> usize {
    let p = sim.add_peer(SrtpProfile::AeadAes128Gcm);
    let tid = sim.peers[p].transport_id.clone();
    let o = ProduceOptions {
        producer_id: ProducerId::new(id),
        kind: MediaKind::Audio,
        rtp_parameters: RtpParameters {
            mid: Some("0".into()),
            codecs: vec![RtpCodecParameters {
                mime_type: "audio/opus".into(),
                payload_type: OPUS_PT,
                clock_rate: 48000,
                channels: Some(2),
                parameters: vec![],
                rtcp_feedback: vec![],
            }],
            header_extensions: vec![RtpHeaderExtensionParameters {
                uri: "urn:ietf:params:rtp-hdrext:ssrc-audio-level".into(),
                id: LEVEL_EXT,
                encrypt: false,
            }],
            encodings: vec![RtpEncodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            }],
            rtcp: RtcpParameters {
                cname: id.into(),
                reduced_size: true,
            },
        },
        rtp_mapping: RtpMapping {
            codecs: vec![CodecMapping {
                payload_type: OPUS_PT,
                mapped_payload_type: 100,
            }],
            encodings: vec![EncodingMapping {
                ssrc: Some(ssrc),
                rid: None,
                scalability_mode: None,
                mapped_ssrc: 0x4000_0000 | ssrc,
            }],
        },
        key_frame_request_delay: 0,
        paused: false,
    };
    sim.request(&tid, RequestBody::TransportProduce(o)).unwrap();
    p
}

/// Speakers: (peer, ssrc, sequence number) and the −dBov level each sends in a 20 ms slot.
struct Room {
    speakers: Vec<(usize, u32, u16)>,
    slot: u32,
}

impl Room {
    /// 20 ms of audio: one packet per speaker at the level `level(speaker index, slot)` gives.
    fn run(&mut self, sim: &mut Sim, ms: u32, level: impl Fn(usize, u32) -> u8) {
        for _ in 0..ms / 20 {
            for (i, (peer, ssrc, seq)) in self.speakers.iter_mut().enumerate() {
                let l = level(i, self.slot);
                // One-byte header extension: the level with the voice bit.
                let mut pkt = build_packet(
                    Pt(OPUS_PT),
                    *seq,
                    self.slot * 960,
                    Ssrc(*ssrc),
                    false,
                    &[0xf8; 40],
                );
                let ext = [0xbe, 0xde, 0, 1, LEVEL_EXT << 4, 0x80 | l, 0, 0];
                pkt[0] |= 0x10;
                pkt.splice(12..12, ext);
                *seq = seq.wrapping_add(1);
                sim.peer_send_rtp(*peer, pkt);
            }
            self.slot += 1;
            sim.run_for(Duration::from_millis(20));
        }
    }
}

fn events(sim: &Sim, observer: &str) -> Vec<MediaEvent> {
    sim.notifications
        .iter()
        .filter(|n| n.handler_id.as_str() == observer)
        .filter_map(|n| match &n.event {
            Event::Media(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn dominant(sim: &Sim) -> Vec<String> {
    events(sim, "aso")
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::ActiveSpeakerObserverDominantSpeaker { producer_id } => {
                Some(producer_id.to_string())
            }
            _ => None,
        })
        .collect()
}

/// A speaking level: varying like speech around −25 dBov.
fn speech(slot: u32) -> u8 {
    22 + (slot * 7 % 9) as u8
}
/// Room noise.
const NOISE: u8 = 70;

#[test]
fn the_active_speaker_follows_the_louder_producer_and_not_a_cough() {
    let mut sim = Sim::new(31);
    let a = audio_producer(&mut sim, "a", 0xa1);
    let b = audio_producer(&mut sim, "b", 0xb1);
    let router = sim.router.to_string();
    for body in [
        RequestBody::RouterCreateActiveSpeakerObserver(ActiveSpeakerObserverOptions {
            rtp_observer_id: RtpObserverId::new("aso"),
            interval: 300,
        }),
        RequestBody::RouterCreateAudioLevelObserver(AudioLevelObserverOptions {
            rtp_observer_id: RtpObserverId::new("alo"),
            max_entries: 1,
            threshold: -60,
            interval: 800,
        }),
    ] {
        sim.request(&router, body).unwrap();
    }
    for obs in ["aso", "alo"] {
        for p in ["a", "b"] {
            sim.request(
                obs,
                RequestBody::RtpObserverAddProducer {
                    producer_id: ProducerId::new(p),
                },
            )
            .unwrap();
        }
    }
    let mut room = Room {
        speakers: vec![(a, 0xa1, 100), (b, 0xb1, 5000)],
        slot: 0,
    };
    // A speaks, B is quiet: A dominates; the level observer names A.
    room.run(
        &mut sim,
        3000,
        |i, s| if i == 0 { speech(s) } else { NOISE },
    );
    assert_eq!(dominant(&sim).last().map(String::as_str), Some("a"));
    let volumes = events(&sim, "alo");
    assert!(
        volumes.iter().any(|e| matches!(e,
            MediaEvent::AudioLevelObserverVolumes(v) if v.len() == 1 && v[0].0.as_str() == "a" && v[0].1 < -20 && v[0].1 > -32)),
        "{volumes:?}"
    );
    // B coughs for 200 ms while A speaks: no switch.
    let switches = dominant(&sim).len();
    room.run(&mut sim, 2000, |i, s| match i {
        0 => speech(s),
        _ if (25..35).contains(&(s % 100)) => 5,
        _ => NOISE,
    });
    assert_eq!(dominant(&sim).len(), switches, "a cough does not switch");
    // A stops, B speaks: B takes over within seconds.
    let before = sim.now;
    room.run(
        &mut sim,
        3000,
        |i, s| if i == 1 { speech(s) } else { NOISE },
    );
    assert_eq!(dominant(&sim).last().map(String::as_str), Some("b"));
    let _ = before;
    // Everyone silent: the level observer says silence (once).
    room.run(&mut sim, 3000, |_, _| 127);
    let silences = events(&sim, "alo")
        .iter()
        .filter(|e| matches!(e, MediaEvent::AudioLevelObserverSilence))
        .count();
    assert_eq!(silences, 1);
    // A producer that closes leaves its observers; closing an observer is quiet.
    sim.request("b", RequestBody::ProducerClose).unwrap();
    sim.request("aso", RequestBody::RtpObserverClose).unwrap();
    assert!(sim.request("aso", RequestBody::RtpObserverPause).is_err());
}

#[test]
fn observers_refuse_video_producers_and_unknown_ids() {
    let mut sim = Sim::new(32);
    let (_, _) = setup(&mut sim, 0, 0);
    let router = sim.router.to_string();
    sim.request(
        &router,
        RequestBody::RouterCreateActiveSpeakerObserver(ActiveSpeakerObserverOptions {
            rtp_observer_id: RtpObserverId::new("aso"),
            interval: 0,
        }),
    )
    .unwrap();
    let dup = sim.request(
        &router,
        RequestBody::RouterCreateActiveSpeakerObserver(ActiveSpeakerObserverOptions {
            rtp_observer_id: RtpObserverId::new("aso"),
            interval: 0,
        }),
    );
    assert!(dup.is_err(), "ids are unique");
    let video = sim.request(
        "aso",
        RequestBody::RtpObserverAddProducer {
            producer_id: ProducerId::new("prod"),
        },
    );
    assert!(video.is_err(), "video producers are refused");
    let unknown = sim.request(
        "aso",
        RequestBody::RtpObserverAddProducer {
            producer_id: ProducerId::new("nope"),
        },
    );
    assert!(unknown.is_err());
    // Closing the router takes its observers along.
    sim.request(&router, RequestBody::RouterClose).unwrap();
    assert!(sim.request("aso", RequestBody::RtpObserverPause).is_err());
}
