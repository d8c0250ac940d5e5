//! `Router::pipe_to_router` between two real worker processes: plain VP8 RTP sent to a
//! producer on worker 0 comes out of a consumer of the piped producer on worker 1, byte for
//! byte (with and without SRTP on the pipe); a PLI from the far consumer's receiver reaches
//! the publisher; pause/resume follow; one PipeTransport pair per router pair, one pipe per
//! producer; closing either side cascades.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use ferrosfu::media::{CloseReason, PipeSettings, Producer, Transport};
use ferrosfu::ortc::{self, RtpCapabilities, RtpParameters};
use ferrosfu::{Router, Worker};
use ferrosfu_fbs::*;
use ferrosfu_tests::media::{plain_transport, worker_settings};

const PUB_SSRC: u32 = 1111;
const PUB_PT: u8 = 96;

async fn worker_on(core: u32) -> Worker {
    let mut s = worker_settings();
    s.core = Some(core);
    Worker::spawn(&s).await.expect("worker starts")
}

fn caps() -> RtpCapabilities {
    ortc::router_rtp_capabilities(&ortc::default_media_codecs()).unwrap()
}

/// A plain VP8 publisher's producer `id` (SSRC [`PUB_SSRC`], PLI feedback) on `t`, and its
/// consumable parameters.
async fn vp8_producer(
    t: &Transport,
    id: &str,
    caps: &RtpCapabilities,
) -> (Producer, RtpParameters) {
    let mut params: RtpParameters = serde_json::from_value(serde_json::json!({
        "codecs": [{
            "mimeType": "video/VP8", "payloadType": PUB_PT, "clockRate": 90000,
            "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}]
        }],
        "encodings": [{"ssrc": PUB_SSRC}],
        "rtcp": {"cname": "gst"}
    }))
    .unwrap();
    let mapping =
        ortc::get_producer_rtp_parameters_mapping(&mut params, caps, &mut ortc::random_ssrc)
            .unwrap();
    let consumable =
        ortc::get_consumable_rtp_parameters(ortc::MediaKind::Video, &params, caps, &mapping)
            .unwrap();
    let p = t
        .produce(ProduceOptions {
            producer_id: ProducerId::new(id),
            kind: MediaKind::Video,
            rtp_parameters: (&params).into(),
            rtp_mapping: (&mapping).into(),
            key_frame_request_delay: 0,
            paused: false,
        })
        .await
        .unwrap();
    (p, consumable)
}

/// A VP8 packet: keyframe when `key`, the payload naming `seq`.
fn vp8(seq: u16, key: bool) -> Vec<u8> {
    let mut v = vec![0x80, PUB_PT];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    v.extend_from_slice(&PUB_SSRC.to_be_bytes());
    v.extend_from_slice(&[0x10, if key { 0x00 } else { 0x01 }]);
    v.extend_from_slice(format!("frame {seq}").as_bytes());
    v
}

/// Whether a compound RTCP packet holds a PLI for `media_ssrc`.
fn has_pli(mut d: &[u8], media_ssrc: u32) -> bool {
    while d.len() >= 12 {
        let len = (usize::from(u16::from_be_bytes([d[2], d[3]])) + 1) * 4;
        if d[1] == 206 && d[0] & 0x1f == 1 && d[8..12] == media_ssrc.to_be_bytes() {
            return true;
        }
        if len > d.len() {
            break;
        }
        d = &d[len..];
    }
    false
}

struct Setup {
    ra: Router,
    rb: Router,
    caps: RtpCapabilities,
    sender: UdpSocket,
    receiver: UdpSocket,
    ingest_port: u16,
    ingest: Transport,
    egress: Transport,
    _workers: (Worker, Worker),
}

async fn setup() -> Setup {
    let (wa, wb) = (worker_on(0).await, worker_on(1).await);
    let ra = wa.create_router().await.unwrap();
    let rb = wb.create_router().await.unwrap();
    let ingest = plain_transport(&ra, "ingest", true).await;
    let egress = plain_transport(&rb, "egress", false).await;
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    egress
        .connect_plain(
            Some("127.0.0.1".into()),
            Some(receiver.local_addr().unwrap().port()),
            None,
            None,
        )
        .await
        .unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let ingest_port = ingest.plain().unwrap().tuple.local_port;
    Setup {
        ra,
        rb,
        caps: caps(),
        sender,
        receiver,
        ingest_port,
        ingest,
        egress,
        _workers: (wa, wb),
    }
}

/// A simple consumer of the piped producer on the egress transport (SSRC 5555).
async fn consume_far(s: &Setup, consumable: &RtpParameters) -> ferrosfu::Consumer {
    let mut params = ortc::get_consumer_rtp_parameters(
        consumable,
        &s.caps,
        ortc::ConsumerRtpOptions {
            pipe: false,
            enable_rtx: false,
        },
        &mut || 5555,
    )
    .unwrap();
    params.mid = None;
    s.egress
        .consume(ConsumeOptions {
            consumer_id: ConsumerId::new("far"),
            producer_id: ProducerId::new("cam"),
            kind: MediaKind::Video,
            rtp_parameters: (&params).into(),
            consumable_rtp_encodings: consumable.encodings.iter().map(Into::into).collect(),
            paused: false,
            ignore_dtx: false,
            consumer_type: ConsumerType::Simple,
            preferred_layers: None,
        })
        .await
        .unwrap()
}

/// Sends packets `seqs` to the producer and returns the payloads that came out of the far
/// consumer (SSRC 5555): all of them, or what came within 5 s.
fn send_and_receive(s: &Setup, seqs: std::ops::Range<u16>) -> Vec<Vec<u8>> {
    let count = seqs.len();
    for seq in seqs {
        s.sender
            .send_to(&vp8(seq, seq == 0), ("127.0.0.1", s.ingest_port))
            .unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 1500];
    while got.len() < count && Instant::now() < deadline {
        let Ok(n) = s.receiver.recv(&mut buf) else {
            continue;
        };
        let d = &buf[..n];
        if d[1] & 0x7f < 64 || d[1] & 0x7f > 95 {
            assert_eq!(&d[8..12], &5555u32.to_be_bytes());
            // After the header and its extensions (the consumer writes its own).
            let at = if d[0] & 0x10 != 0 {
                16 + 4 * usize::from(u16::from_be_bytes([d[14], d[15]]))
            } else {
                12
            };
            got.push(d[at..n].to_vec());
        }
    }
    got
}

async fn run(settings: PipeSettings) {
    let s = setup().await;
    let (producer, consumable) = vp8_producer(&s.ingest, "cam", &s.caps).await;
    let piped =
        s.ra.pipe_to_router(&producer, &consumable, &s.caps, &s.rb, &settings)
            .await
            .unwrap();
    assert_eq!(
        piped.producer.id(),
        producer.id(),
        "the same id on the far router"
    );
    // Idempotent: the same far producer, one PipeTransport pair.
    let again =
        s.ra.pipe_to_router(&producer, &consumable, &s.caps, &s.rb, &settings)
            .await
            .unwrap();
    assert_eq!(again.pipe_consumer.id(), piped.pipe_consumer.id());
    assert_eq!(s.ra.pipes().lock().await.pairs(), 1);
    assert_eq!(s.rb.pipes().lock().await.pairs(), 1);
    let far = consume_far(&s, &piped.consumable).await;

    // Media: every packet, byte for byte, through two workers.
    let got = tokio::task::block_in_place(|| send_and_receive(&s, 0..40));
    let want: Vec<Vec<u8>> = (0..40u16).map(|q| vp8(q, q == 0)[12..].to_vec()).collect();
    assert_eq!(got, want);

    // A PLI from the far receiver reaches the publisher for its SSRC.
    let rtp_port = s.egress.plain().unwrap().tuple.local_port;
    let mut pli = vec![0x81, 206, 0, 2];
    pli.extend_from_slice(&1u32.to_be_bytes());
    pli.extend_from_slice(&5555u32.to_be_bytes());
    let reached = tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            s.receiver.send_to(&pli, ("127.0.0.1", rtp_port)).unwrap();
            if let Ok(n) = s.sender.recv(&mut buf)
                && has_pli(&buf[..n], PUB_SSRC)
            {
                return true;
            }
        }
        false
    });
    assert!(reached, "the PLI crossed the pipe to the publisher");

    // Pause and resume follow the source producer.
    producer.pause().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !far.producer_paused() {
        assert!(
            Instant::now() < deadline,
            "far consumer told its producer paused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    producer.resume().await.unwrap();
    while far.producer_paused() {
        assert!(Instant::now() < deadline, "and resumed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The source producer closed: the pipe consumer, the far producer and its consumer too.
    producer.close().await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), far.closed())
        .await
        .expect("the far consumer closes");
    assert_eq!(closed, CloseReason::ProducerClosed);
    assert!(piped.producer.is_closed() && piped.pipe_consumer.is_closed());

    // Another producer reuses the pair; its far producer closing closes its pipe consumer.
    let (p2, c2) = vp8_producer(&s.ingest, "cam2", &s.caps).await;
    let piped2 =
        s.ra.pipe_to_router(&p2, &c2, &s.caps, &s.rb, &settings)
            .await
            .unwrap();
    assert_eq!(s.ra.pipes().lock().await.pairs(), 1);
    piped2.producer.close().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), piped2.pipe_consumer.closed())
        .await
        .expect("the pipe consumer closes with the far producer");
    assert!(!p2.is_closed(), "the source producer stays");

    // Same worker: refused.
    let rc = s.ra.worker().create_router().await.unwrap();
    assert!(
        s.ra.pipe_to_router(&p2, &c2, &s.caps, &rc, &settings)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_piped_to_another_workers_router_plays_there_and_cascades() {
    run(PipeSettings::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipe_can_be_srtp_protected() {
    run(PipeSettings {
        enable_srtp: true,
        ..PipeSettings::default()
    })
    .await;
}
