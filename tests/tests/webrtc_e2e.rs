//! End to end with real binaries and real WebRTC peers: a webrtc-rs publisher sends Opus and VP8
//! into a WebRtcTransport of a real worker (created through the supervisor API), a webrtc-rs
//! subscriber consumes both from another WebRtcTransport and receives the same payloads. Over
//! UDP, over ICE-TCP, and once per SRTP profile.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_tests::media::{UDP_AND_TCP, mapping, spawn_worker, webrtc_transport};
use ferrosfu_tests::rtc_client::{ClientOptions, Publisher, Subscriber, vp8_test_frame};

/// Consumer parameters for a subscriber: the producer's media codec (and RTX for video) under
/// new payload types and SSRCs, no header extensions.
fn consumer_params(
    kind: MediaKind,
    producer: &RtpParameters,
    mid: &str,
    ssrc: u32,
) -> RtpParameters {
    let media = producer
        .codecs
        .iter()
        .find(|c| !c.mime_type.to_ascii_lowercase().ends_with("/rtx"))
        .unwrap();
    let pt = if kind == MediaKind::Audio { 100 } else { 101 };
    let mut codecs = vec![RtpCodecParameters {
        payload_type: pt,
        rtcp_feedback: media
            .rtcp_feedback
            .iter()
            .filter(|f| f.kind == "nack" || f.kind == "ccm")
            .cloned()
            .collect(),
        ..media.clone()
    }];
    let mut enc = RtpEncodingParameters {
        ssrc: Some(ssrc),
        ..Default::default()
    };
    if kind == MediaKind::Video {
        codecs.push(RtpCodecParameters {
            mime_type: "video/rtx".into(),
            payload_type: 102,
            clock_rate: 90000,
            channels: None,
            parameters: vec![("apt".into(), pt.to_string())],
            rtcp_feedback: vec![],
        });
        enc.rtx_ssrc = Some(ssrc + 1);
    }
    RtpParameters {
        mid: Some(mid.into()),
        codecs,
        header_extensions: vec![],
        encodings: vec![enc],
        rtcp: RtcpParameters {
            cname: "ferrosfu".into(),
            reduced_size: true,
        },
    }
}

/// One call: publish Opus + VP8, consume both, compare payloads. Returns the SRTP profile
/// nobody can read from webrtc-rs, so the caller checks nothing about it beyond success.
async fn call(opts: ClientOptions) {
    let w = spawn_worker().await;
    let router = w.create_router().await.unwrap();

    // Publisher side.
    let send_t = webrtc_transport(&router, "send", UDP_AND_TCP).await;
    let publisher = Publisher::new(opts.clone()).await.unwrap();
    send_t
        .connect_webrtc(publisher.local_dtls_parameters())
        .await
        .unwrap();
    let d = send_t.webrtc().unwrap();
    assert_eq!(d.dtls_parameters.role, DtlsRole::Server);
    publisher
        .connect(&d.ice_parameters, &d.ice_candidates, &d.dtls_parameters)
        .await
        .unwrap();
    let mut producers = Vec::new();
    for (i, (kind, params)) in publisher
        .producer_parameters()
        .unwrap()
        .into_iter()
        .enumerate()
    {
        let id = format!("producer-{i}");
        let p = send_t
            .produce(ProduceOptions {
                producer_id: ProducerId::new(id),
                kind,
                rtp_mapping: mapping(&params, 0x1000_0000 + 16 * i as u32),
                rtp_parameters: params.clone(),
                key_frame_request_delay: 0,
                paused: false,
            })
            .await
            .unwrap();
        producers.push((p, kind, params));
    }
    publisher
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();

    // Subscriber side: consumers created paused, resumed once the client is set up.
    let recv_t = webrtc_transport(&router, "recv", UDP_AND_TCP).await;
    let subscriber = Subscriber::new(opts).await.unwrap();
    let mut consumers = Vec::new();
    let mut remote = Vec::new();
    for (i, (p, kind, params)) in producers.iter().enumerate() {
        let rtp = consumer_params(*kind, params, &i.to_string(), 0x2000_0000 + 16 * i as u32);
        let c = recv_t
            .consume(ConsumeOptions {
                consumer_id: ConsumerId::new(format!("consumer-{i}")),
                producer_id: p.id().clone(),
                kind: *kind,
                rtp_parameters: rtp.clone(),
                consumable_rtp_encodings: vec![],
                paused: true,
                ignore_dtx: false,
                consumer_type: ConsumerType::Simple,
                preferred_layers: None,
            })
            .await
            .unwrap();
        remote.push((*kind, rtp));
        consumers.push(c);
    }
    let d = recv_t.webrtc().unwrap();
    let client_dtls = subscriber
        .connect_and_consume(
            &d.ice_parameters,
            &d.ice_candidates,
            &d.dtls_parameters,
            &remote,
        )
        .await
        .unwrap();
    recv_t.connect_webrtc(client_dtls).await.unwrap();
    subscriber
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    for c in &consumers {
        c.resume().await.unwrap();
    }

    // Media: a keyframe first, then 50 frames of each.
    for n in 0..50u8 {
        let opus: Vec<u8> = (0..120).map(|i| n.wrapping_mul(7) ^ i).collect();
        publisher.send_opus(&opus).await.unwrap();
        publisher
            .send_vp8(&vp8_test_frame(n % 25 == 0, 1800, n))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let audio = subscriber
        .wait_packets(MediaKind::Audio, 40, Duration::from_secs(10))
        .await
        .unwrap();
    let video = subscriber
        .wait_packets(MediaKind::Video, 60, Duration::from_secs(10))
        .await
        .unwrap();
    for (kind, got) in [(MediaKind::Audio, &audio), (MediaKind::Video, &video)] {
        let sent = publisher.sent(kind);
        let sent_payloads: Vec<&Vec<u8>> = sent.iter().map(|s| &s.payload).collect();
        // Every received payload is one the publisher sent, in order.
        let mut at = 0;
        for r in got.iter() {
            let pos = sent_payloads[at..]
                .iter()
                .position(|s| **s == r.payload)
                .unwrap_or_else(|| panic!("{kind:?} payload not sent (or out of order)"));
            at += pos + 1;
        }
        let want_pt = if kind == MediaKind::Audio { 100 } else { 101 };
        assert!(got.iter().all(|r| r.payload_type == want_pt));
        assert!(
            got.len() * 10 >= sent.len() * 8,
            "{kind:?}: {}/{}",
            got.len(),
            sent.len()
        );
    }
    let stats = recv_t.get_stats().await.unwrap();
    assert!(stats.rtp_packets_sent > 0);
    assert_eq!(stats.dtls_state, Some(DtlsState::Connected));
    publisher.close().await.unwrap();
    subscriber.close().await.unwrap();
    w.close(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_and_vp8_over_udp() {
    call(ClientOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_and_vp8_over_ice_tcp() {
    call(ClientOptions {
        ice_tcp_only: true,
        ..Default::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_srtp_profile() {
    for suite in SrtpCryptoSuite::ALL {
        call(ClientOptions {
            srtp_profiles: vec![suite],
            ..ClientOptions::default()
        })
        .await;
    }
}
