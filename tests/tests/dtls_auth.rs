//! DTLS authenticates the client: the certificate a peer presents in the handshake must match the
//! fingerprint it signaled in `transport.connect`, whichever DTLS role ferrosfu takes. Real
//! binaries, real webrtc-rs peers on loopback.
//!
//! "Wrong certificate" below means: the peer presents certificate B (its own, in its SDP) but the
//! DTLS parameters given to `connect` carry the sha-256 fingerprint of another certificate A.
//!
//! * The transport API (worker through `ferrosfu::media`): a publisher or subscriber with the
//!   wrong certificate ends with the transport's DTLS state `Failed` and no media crosses it,
//!   while a well-behaved peer of the same role on another transport of the same router carries
//!   media (that peer's packets arriving is what bounds the "nothing arrived" checks, not a
//!   timer). The right certificate connects and carries media in both directions.
//! * protoo signaling (the `ferrosfu` supervisor in `--dev`): the room closes a peer whose DTLS
//!   fails that way (its WebSocket is closed, the other peers get `peerClosed`).
//! * A second `connect` may not change the fingerprint: it is refused with a typed error and the
//!   first fingerprint stays the one the handshake is checked against.
//!
//! ferrosfu's role follows the client's: a client signaling role `client` (a=setup:active) makes
//! ferrosfu the DTLS server, `server` (a=setup:passive) makes it the DTLS client.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu::media::{Consumer, Producer, Transport};
use ferrosfu::{RequestError, Router};
use ferrosfu_fbs::*;
use ferrosfu_tests::SupervisorProcess;
use ferrosfu_tests::media::{self, spawn_worker};
use ferrosfu_tests::protoo::{self, ProtooClient};
use ferrosfu_tests::rtc_client::{
    ClientOptions, DtlsOptions, Publisher, Subscriber, certificate_fingerprints,
    generate_certificate,
};
use serde_json::json;
use tokio::sync::broadcast;
use tokio::time::Instant;
use webrtc::peer_connection::certificate::RTCCertificate;

/// How long a handshake, a WebSocket close or the control media may take on a busy machine.
const DEADLINE: Duration = Duration::from_secs(20);
/// Control packets that must arrive before "nothing arrived" from the wrong peer is checked.
const CONTROL_PACKETS: usize = 25;

/// ferrosfu's DTLS role in a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SfuRole {
    /// The client signals role `client` (SDP a=setup:active).
    Server,
    /// The client signals role `server` (SDP a=setup:passive).
    Client,
}

impl SfuRole {
    /// ferrosfu's role as its DTLS parameters state it after `connect`.
    fn sfu(self) -> DtlsRole {
        match self {
            SfuRole::Server => DtlsRole::Server,
            SfuRole::Client => DtlsRole::Client,
        }
    }

    /// The role the client signals in `connect`.
    fn peer(self) -> DtlsRole {
        match self {
            SfuRole::Server => DtlsRole::Client,
            SfuRole::Client => DtlsRole::Server,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Set-up helpers

/// A WebRtcTransport on 127.0.0.1 (UDP) and a receiver of its events, subscribed before anything
/// can happen on it.
async fn transport(router: &Router, id: &str) -> (Transport, broadcast::Receiver<MediaEvent>) {
    let t = media::webrtc_transport(router, id, &[TransportProtocol::Udp]).await;
    let events = t.events();
    (t, events)
}

fn fresh_certificate() -> RTCCertificate {
    generate_certificate().unwrap()
}

/// A peer presenting `cert`; a subscriber answers with the role `role` asks of it.
fn dtls_options(cert: &RTCCertificate, role: SfuRole) -> DtlsOptions {
    DtlsOptions {
        certificate: Some(cert.clone()),
        answering_role: Some(role.peer()),
    }
}

/// A publisher presenting `cert` (not connected yet).
async fn publisher_presenting(cert: &RTCCertificate, role: SfuRole) -> Publisher {
    Publisher::with_dtls(ClientOptions::default(), dtls_options(cert, role))
        .await
        .unwrap()
}

/// Connects `t` with the role `role` asks of the client and fingerprints `signaled`, then
/// connects `publisher` to it (ICE and DTLS start).
async fn connect_publisher(
    t: &Transport,
    publisher: &Publisher,
    role: SfuRole,
    signaled: Vec<DtlsFingerprint>,
) {
    t.connect_webrtc(DtlsParameters {
        role: role.peer(),
        fingerprints: signaled,
    })
    .await
    .unwrap();
    let d = t.webrtc().unwrap();
    assert_eq!(d.dtls_parameters.role, role.sfu(), "ferrosfu's DTLS role");
    publisher
        .connect(&d.ice_parameters, &d.ice_candidates, &d.dtls_parameters)
        .await
        .unwrap();
}

/// Produces the publisher's Opus track on `t` (its VP8 track stays unused).
async fn produce_audio(t: &Transport, publisher: &Publisher, id: &str, ssrc: u32) -> Producer {
    let (kind, params) = publisher
        .producer_parameters()
        .unwrap()
        .into_iter()
        .find(|(k, _)| *k == MediaKind::Audio)
        .unwrap();
    t.produce(ProduceOptions {
        producer_id: ProducerId::new(id),
        kind,
        rtp_mapping: media::mapping(&params, ssrc),
        rtp_parameters: params,
        key_frame_request_delay: 0,
        paused: false,
    })
    .await
    .unwrap()
}

/// Consumes `producer` (Opus) on `t`, not paused, as m-section `mid`; returns the consumer and
/// the parameters the subscriber's remote offer needs.
async fn consume_audio(
    t: &Transport,
    publisher: &Publisher,
    producer: &Producer,
    mid: &str,
    ssrc: u32,
) -> (Consumer, (MediaKind, RtpParameters)) {
    let (_, produced) = publisher
        .producer_parameters()
        .unwrap()
        .into_iter()
        .find(|(k, _)| *k == MediaKind::Audio)
        .unwrap();
    let opus = produced
        .codecs
        .iter()
        .find(|c| c.mime_type.eq_ignore_ascii_case("audio/opus"))
        .unwrap();
    let params = RtpParameters {
        mid: Some(mid.into()),
        codecs: vec![RtpCodecParameters {
            payload_type: 100,
            rtcp_feedback: vec![],
            ..opus.clone()
        }],
        header_extensions: vec![],
        encodings: vec![RtpEncodingParameters {
            ssrc: Some(ssrc),
            ..Default::default()
        }],
        rtcp: RtcpParameters {
            cname: "ferrosfu".into(),
            reduced_size: true,
        },
    };
    let c = t
        .consume(ConsumeOptions {
            consumer_id: ConsumerId::new(format!("{}-{mid}", t.id().as_str())),
            producer_id: producer.id().clone(),
            kind: MediaKind::Audio,
            rtp_parameters: params.clone(),
            consumable_rtp_encodings: vec![],
            paused: false,
            ignore_dtx: false,
            consumer_type: ConsumerType::Simple,
            preferred_layers: None,
        })
        .await
        .unwrap();
    (c, (MediaKind::Audio, params))
}

/// A subscriber presenting `cert` (answering with the role `role` asks of it) for the consumers
/// `remote` of `t`; `t` is connected with the subscriber's DTLS parameters, their fingerprints
/// replaced by `signaled` when given.
async fn connect_subscriber(
    t: &Transport,
    cert: &RTCCertificate,
    role: SfuRole,
    remote: &[(MediaKind, RtpParameters)],
    signaled: Option<Vec<DtlsFingerprint>>,
) -> Subscriber {
    let s = Subscriber::with_dtls(ClientOptions::default(), dtls_options(cert, role))
        .await
        .unwrap();
    let d = t.webrtc().unwrap();
    let mut dtls = s
        .connect_and_consume(
            &d.ice_parameters,
            &d.ice_candidates,
            &d.dtls_parameters,
            remote,
        )
        .await
        .unwrap();
    assert_eq!(dtls.role, role.peer(), "the subscriber's answered role");
    assert_eq!(dtls.fingerprints, certificate_fingerprints(cert));
    if let Some(fps) = signaled {
        dtls.fingerprints = fps;
    }
    t.connect_webrtc(dtls).await.unwrap();
    assert_eq!(t.webrtc().unwrap().dtls_parameters.role, role.sfu());
    s
}

/// A well-behaved publisher: it presents a fresh certificate and `t` is connected with that
/// certificate's fingerprint; its Opus track is produced on `t` as `id`, mapped to `ssrc`.
async fn right_publisher(
    t: &Transport,
    role: SfuRole,
    id: &str,
    ssrc: u32,
) -> (Publisher, Producer) {
    let cert = fresh_certificate();
    let publisher = publisher_presenting(&cert, role).await;
    let producer = produce_audio(t, &publisher, id, ssrc).await;
    connect_publisher(t, &publisher, role, certificate_fingerprints(&cert)).await;
    (publisher, producer)
}

/// A well-behaved subscriber of `producer` (consumed on `t` as m-section "0" with SSRC `ssrc`):
/// it presents a fresh certificate and `t` is connected with that certificate's fingerprint.
async fn right_subscriber(
    t: &Transport,
    publisher: &Publisher,
    producer: &Producer,
    role: SfuRole,
    ssrc: u32,
) -> (Consumer, Subscriber) {
    let (c, remote) = consume_audio(t, publisher, producer, "0", ssrc).await;
    let cert = fresh_certificate();
    let s = connect_subscriber(t, &cert, role, &[remote], None).await;
    (c, s)
}

// ---------------------------------------------------------------------------------------------
// Observation helpers

/// Waits until the DTLS handshake of `t` is over and returns how it ended (`Connected`, `Failed`
/// or `Closed`): from the transport's state-change events, with `get_stats` as a cross-check in
/// case an event was missed. Panics after [`DEADLINE`].
async fn dtls_outcome(t: &Transport, events: &mut broadcast::Receiver<MediaEvent>) -> DtlsState {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let state = t.get_stats().await.unwrap().dtls_state;
        if let Some(s @ (DtlsState::Connected | DtlsState::Failed | DtlsState::Closed)) = state {
            return s;
        }
        // Re-check the stats at least every 500 ms; an event wakes us at once.
        let wake = (Instant::now() + Duration::from_millis(500)).min(deadline);
        match tokio::time::timeout_at(wake, events.recv()).await {
            Ok(Ok(MediaEvent::TransportDtlsStateChange { state, reason })) => {
                if matches!(
                    state,
                    DtlsState::Connected | DtlsState::Failed | DtlsState::Closed
                ) {
                    eprintln!("{}: DTLS {state:?} ({reason:?})", t.id().as_str());
                    return state;
                }
            }
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => return DtlsState::Closed,
            Err(_) => assert!(
                Instant::now() < deadline,
                "{}: DTLS handshake still running after {DEADLINE:?} (state {state:?})",
                t.id().as_str()
            ),
        }
    }
}

/// Asserts that the DTLS handshake of `t` connects (see [`dtls_outcome`]).
async fn assert_dtls_connected(t: &Transport, events: &mut broadcast::Receiver<MediaEvent>) {
    assert_eq!(
        dtls_outcome(t, events).await,
        DtlsState::Connected,
        "{}: DTLS",
        t.id().as_str()
    );
}

async fn packets_received(p: &Producer) -> u64 {
    p.get_stats()
        .await
        .unwrap()
        .iter()
        .map(|s| s.packet_count)
        .sum()
}

/// Packets of `s` that arrived on m-section `mid`.
fn received_on(s: &Subscriber, mid: &str) -> usize {
    s.received(MediaKind::Audio)
        .iter()
        .filter(|p| p.mid.as_deref() == Some(mid))
        .count()
}

/// Sends one Opus packet from each publisher every 20 ms (send errors of a peer whose DTLS failed
/// are expected and ignored) until `control` has [`CONTROL_PACKETS`] packets on `mid`. Panics
/// after [`DEADLINE`].
async fn send_until_control_received(publishers: &[&Publisher], control: &Subscriber, mid: &str) {
    let deadline = Instant::now() + DEADLINE;
    let mut n = 0u8;
    while received_on(control, mid) < CONTROL_PACKETS {
        assert!(
            Instant::now() < deadline,
            "control subscriber got {} of {CONTROL_PACKETS} packets within {DEADLINE:?} \
             (state {})",
            received_on(control, mid),
            control.connection_state()
        );
        for p in publishers {
            let _ = p.send_opus(&[n; 60]).await;
        }
        n = n.wrapping_add(1);
        tokio::time::sleep(Duration::from_millis(20)).await; // pacing, 50 packets/s
    }
}

// ---------------------------------------------------------------------------------------------
// Transport API: a publisher with the wrong certificate

/// A publisher signals fingerprint A but presents certificate B. A control publisher (right
/// certificate, same role) sends alongside it; one subscriber consumes both.
async fn publisher_with_wrong_certificate(role: SfuRole) {
    let w = spawn_worker().await;
    let router = w.create_router().await.unwrap();

    let (bad_t, mut bad_events) = transport(&router, "bad-send").await;
    let (good_t, mut good_events) = transport(&router, "good-send").await;
    let (recv_t, mut recv_events) = transport(&router, "recv").await;

    let cert_a = fresh_certificate();
    let cert_b = fresh_certificate();
    let bad = publisher_presenting(&cert_b, role).await;
    assert_eq!(
        bad.local_dtls_parameters().fingerprints,
        certificate_fingerprints(&cert_b),
        "the publisher's SDP carries the certificate it presents"
    );
    assert_ne!(
        certificate_fingerprints(&cert_a),
        certificate_fingerprints(&cert_b)
    );
    let bad_producer = produce_audio(&bad_t, &bad, "bad-audio", 0x1000_0000).await;
    connect_publisher(&bad_t, &bad, role, certificate_fingerprints(&cert_a)).await;

    let (good, good_producer) = right_publisher(&good_t, role, "good-audio", 0x1000_0010).await;

    let (_bad_c, bad_remote) = consume_audio(&recv_t, &bad, &bad_producer, "0", 0x2000_0000).await;
    let (_good_c, good_remote) =
        consume_audio(&recv_t, &good, &good_producer, "1", 0x2000_0010).await;
    let cert_sub = fresh_certificate();
    let subscriber =
        connect_subscriber(&recv_t, &cert_sub, role, &[bad_remote, good_remote], None).await;

    assert_dtls_connected(&good_t, &mut good_events).await;
    assert_dtls_connected(&recv_t, &mut recv_events).await;
    let bad_state = dtls_outcome(&bad_t, &mut bad_events).await;

    // Media from both; the control's packets arriving bounds the wait for the wrong one's.
    send_until_control_received(&[&bad, &good], &subscriber, "1").await;
    let forwarded = received_on(&subscriber, "0");
    let bad_in = packets_received(&bad_producer).await;
    let bad_stats = bad_t.get_stats().await.unwrap();
    assert!(packets_received(&good_producer).await > 0);
    eprintln!(
        "ferrosfu DTLS {role:?}, publisher with the wrong certificate: DTLS {bad_state:?}, \
         producer packets {bad_in}, forwarded to the subscriber {forwarded}, publisher peer {}",
        bad.connection_state()
    );
    assert!(
        bad_state == DtlsState::Failed && bad_in == 0 && forwarded == 0,
        "ferrosfu as DTLS {role:?} accepted a publisher whose certificate does not match the \
         signaled fingerprint: DTLS {bad_state:?} (want Failed), its producer received {bad_in} \
         packets and the subscriber got {forwarded} of them (want 0 and 0)"
    );
    assert_eq!(bad_stats.dtls_state, Some(DtlsState::Failed));
    assert_eq!(bad_stats.rtp_packets_received, 0);

    for p in [&bad, &good] {
        let _ = p.close().await;
    }
    let _ = subscriber.close().await;
    w.close(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_with_wrong_certificate_fails_dtls_when_ferrosfu_is_dtls_server() {
    publisher_with_wrong_certificate(SfuRole::Server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_with_wrong_certificate_fails_dtls_when_ferrosfu_is_dtls_client() {
    publisher_with_wrong_certificate(SfuRole::Client).await;
}

// ---------------------------------------------------------------------------------------------
// Transport API: a subscriber with the wrong certificate

/// One publisher (right certificate); a subscriber that signals fingerprint A but presents
/// certificate B consumes it on one transport, a control subscriber (right certificate, same
/// role) on another.
async fn subscriber_with_wrong_certificate(role: SfuRole) {
    let w = spawn_worker().await;
    let router = w.create_router().await.unwrap();

    let (send_t, mut send_events) = transport(&router, "send").await;
    let (bad_t, mut bad_events) = transport(&router, "bad-recv").await;
    let (good_t, mut good_events) = transport(&router, "good-recv").await;

    let (publisher, producer) = right_publisher(&send_t, role, "audio", 0x1000_0000).await;

    let cert_a = fresh_certificate();
    let cert_b = fresh_certificate();
    let (bad_c, bad_remote) = consume_audio(&bad_t, &publisher, &producer, "0", 0x2000_0000).await;
    let bad = connect_subscriber(
        &bad_t,
        &cert_b,
        role,
        &[bad_remote],
        Some(certificate_fingerprints(&cert_a)),
    )
    .await;
    let (_good_c, good) = right_subscriber(&good_t, &publisher, &producer, role, 0x2000_0010).await;

    assert_dtls_connected(&send_t, &mut send_events).await;
    assert_dtls_connected(&good_t, &mut good_events).await;
    let bad_state = dtls_outcome(&bad_t, &mut bad_events).await;

    send_until_control_received(&[&publisher], &good, "0").await;
    let got = bad.received(MediaKind::Audio).len();
    let bad_stats = bad_t.get_stats().await.unwrap();
    let consumer_sent: u64 = bad_c
        .get_stats()
        .await
        .unwrap()
        .iter()
        .map(|s| s.packet_count)
        .sum();
    eprintln!(
        "ferrosfu DTLS {role:?}, subscriber with the wrong certificate: DTLS {bad_state:?}, \
         transport RTP sent {}, consumer packets {consumer_sent}, received {got}, subscriber \
         peer {}",
        bad_stats.rtp_packets_sent,
        bad.connection_state()
    );
    assert!(
        bad_state == DtlsState::Failed && got == 0 && bad_stats.rtp_packets_sent == 0,
        "ferrosfu as DTLS {role:?} accepted a subscriber whose certificate does not match the \
         signaled fingerprint: DTLS {bad_state:?} (want Failed), it sent {} RTP packets and the \
         subscriber received {got} (want 0 and 0)",
        bad_stats.rtp_packets_sent
    );
    assert_eq!(bad_stats.dtls_state, Some(DtlsState::Failed));

    let _ = publisher.close().await;
    for s in [&bad, &good] {
        let _ = s.close().await;
    }
    w.close(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_with_wrong_certificate_gets_no_rtp_when_ferrosfu_is_dtls_server() {
    subscriber_with_wrong_certificate(SfuRole::Server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_with_wrong_certificate_gets_no_rtp_when_ferrosfu_is_dtls_client() {
    subscriber_with_wrong_certificate(SfuRole::Client).await;
}

// ---------------------------------------------------------------------------------------------
// Transport API: the right certificate

/// Publisher and subscriber each present a certificate of the test's making and signal its own
/// fingerprint: both transports connect and media arrives.
async fn right_certificate(role: SfuRole) {
    let w = spawn_worker().await;
    let router = w.create_router().await.unwrap();
    let (send_t, mut send_events) = transport(&router, "send").await;
    let (recv_t, mut recv_events) = transport(&router, "recv").await;

    let (publisher, producer) = right_publisher(&send_t, role, "audio", 0x1000_0000).await;
    let (_c, subscriber) =
        right_subscriber(&recv_t, &publisher, &producer, role, 0x2000_0000).await;

    assert_dtls_connected(&send_t, &mut send_events).await;
    assert_dtls_connected(&recv_t, &mut recv_events).await;
    send_until_control_received(&[&publisher], &subscriber, "0").await;
    let sent: Vec<Vec<u8>> = publisher
        .sent(MediaKind::Audio)
        .into_iter()
        .map(|p| p.payload)
        .collect();
    for r in subscriber.received(MediaKind::Audio) {
        assert!(sent.contains(&r.payload), "a payload nobody sent");
    }
    assert!(packets_received(&producer).await >= CONTROL_PACKETS as u64);
    assert!(recv_t.get_stats().await.unwrap().rtp_packets_sent >= CONTROL_PACKETS as u64);

    let _ = publisher.close().await;
    let _ = subscriber.close().await;
    w.close(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_certificate_carries_media_when_ferrosfu_is_dtls_server() {
    right_certificate(SfuRole::Server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_certificate_carries_media_when_ferrosfu_is_dtls_client() {
    right_certificate(SfuRole::Client).await;
}

// ---------------------------------------------------------------------------------------------
// A second connect may not change the fingerprint

/// On one transport the right fingerprint is signaled first and a second `connect` with another
/// one is refused (typed: a worker rejection of `transport.connect`), after which the handshake
/// with the right certificate connects. On another the wrong fingerprint comes first and the
/// "correction" is refused: the handshake fails.
async fn second_connect(role: SfuRole) {
    let w = spawn_worker().await;
    let router = w.create_router().await.unwrap();
    let cert_a = fresh_certificate();
    let cert_b = fresh_certificate();

    // (transport, first signaled, refused second, handshake outcome with certificate B)
    for (id, first, second, want) in [
        (
            "right-first",
            ("B", &cert_b),
            ("A", &cert_a),
            DtlsState::Connected,
        ),
        (
            "wrong-first",
            ("A", &cert_a),
            ("B", &cert_b),
            DtlsState::Failed,
        ),
    ] {
        let (t, mut events) = transport(&router, id).await;
        let p = publisher_presenting(&cert_b, role).await;
        let connect = |fp: &RTCCertificate| DtlsParameters {
            role: role.peer(),
            fingerprints: certificate_fingerprints(fp),
        };
        t.connect_webrtc(connect(first.1)).await.unwrap();
        let e = t
            .connect_webrtc(connect(second.1))
            .await
            .expect_err("a second connect with another fingerprint is refused");
        eprintln!("{id}: second connect refused: {e}");
        assert!(
            matches!(e, RequestError::Rejected { .. }),
            "{id}: a typed rejection, got {e:?}"
        );
        let d = t.webrtc().unwrap();
        assert_eq!(d.dtls_parameters.role, role.sfu());
        p.connect(&d.ice_parameters, &d.ice_candidates, &d.dtls_parameters)
            .await
            .unwrap();
        let got = dtls_outcome(&t, &mut events).await;
        assert_eq!(
            got, want,
            "{id}: ferrosfu as DTLS {role:?}, certificate B presented after the fingerprint of {} \
             was signaled and that of {} refused",
            first.0, second.0,
        );
        let _ = p.close().await;
    }
    w.close(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_cannot_change_the_fingerprint_when_ferrosfu_is_dtls_server() {
    second_connect(SfuRole::Server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_cannot_change_the_fingerprint_when_ferrosfu_is_dtls_client() {
    second_connect(SfuRole::Client).await;
}

// ---------------------------------------------------------------------------------------------
// protoo: the room closes a peer whose certificate does not match

/// `createWebRtcTransport` (producing) and `connectWebRtcTransport` with the role `role` asks of
/// the client and fingerprints `signaled`; `publisher` connects to it. Returns the transport id.
async fn protoo_send_transport(
    c: &mut ProtooClient,
    publisher: &Publisher,
    role: SfuRole,
    signaled: Vec<DtlsFingerprint>,
) -> String {
    let t = c
        .ok("createWebRtcTransport", json!({"producing": true}))
        .await
        .unwrap();
    let id = t["id"].as_str().unwrap().to_owned();
    c.ok(
        "connectWebRtcTransport",
        json!({"transportId": id, "dtlsParameters": protoo::dtls_json(&DtlsParameters {
            role: role.peer(),
            fingerprints: signaled,
        })}),
    )
    .await
    .unwrap();
    // createWebRtcTransport answered before the role was known (`auto`): the client knows the
    // server's role from its own choice, as mediasoup-client does.
    let server_dtls = DtlsParameters {
        role: role.sfu(),
        ..protoo::dtls_parameters(&t["dtlsParameters"]).unwrap()
    };
    publisher
        .connect(
            &protoo::ice_parameters(&t["iceParameters"]).unwrap(),
            &protoo::ice_candidates(&t["iceCandidates"]).unwrap(),
            &server_dtls,
        )
        .await
        .unwrap();
    id
}

/// Peer `peer` (display name `name`) joined to room `room` over protoo.
async fn join(sup: &SupervisorProcess, room: &str, peer: &str, name: &str) -> ProtooClient {
    let mut c = ProtooClient::connect(sup.http, room, peer, None)
        .await
        .unwrap();
    c.ok("join", json!({"displayName": name})).await.unwrap();
    c
}

/// Alice (right certificate) and Mallory (signals fingerprint A, presents certificate B) both
/// join and connect a send transport in the same room.
async fn room_closes_peer_with_wrong_certificate(role: SfuRole, ports: &str) {
    let sup = SupervisorProcess::start_on_loopback(ports, &["--dev"]);
    let room = format!("dtls-auth-{role:?}");

    let mut alice = join(&sup, &room, "alice", "Alice").await;
    let cert_alice = fresh_certificate();
    let alice_pub = publisher_presenting(&cert_alice, role).await;
    let alice_tid = protoo_send_transport(
        &mut alice,
        &alice_pub,
        role,
        certificate_fingerprints(&cert_alice),
    )
    .await;
    alice_pub.wait_connected(DEADLINE).await.unwrap();

    let mut mallory = join(&sup, &room, "mallory", "Mallory").await;
    let joined = alice.wait_for("newPeer").await.unwrap();
    assert_eq!(joined["data"]["id"], "mallory");
    let cert_a = fresh_certificate();
    let cert_b = fresh_certificate();
    let mallory_pub = publisher_presenting(&cert_b, role).await;
    protoo_send_transport(
        &mut mallory,
        &mallory_pub,
        role,
        certificate_fingerprints(&cert_a),
    )
    .await;

    let closed = mallory.wait_closed(DEADLINE).await;
    assert!(
        closed.is_ok(),
        "ferrosfu as DTLS {role:?}: the room kept a peer whose certificate does not match the \
         signaled fingerprint ({}; Mallory's peer connection is {})",
        closed.unwrap_err(),
        mallory_pub.connection_state()
    );
    let n = alice.wait_for("peerClosed").await.unwrap();
    assert_eq!(n["data"]["peerId"], "mallory");

    // Alice is untouched.
    let s = alice
        .ok("getTransportStats", json!({"transportId": alice_tid}))
        .await
        .unwrap();
    assert_eq!(s[0]["dtlsState"], "connected", "{s}");

    let _ = mallory_pub.close().await;
    let _ = alice_pub.close().await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_closes_peer_with_wrong_certificate_when_ferrosfu_is_dtls_server() {
    room_closes_peer_with_wrong_certificate(SfuRole::Server, "25000-25049").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_closes_peer_with_wrong_certificate_when_ferrosfu_is_dtls_client() {
    room_closes_peer_with_wrong_certificate(SfuRole::Client, "25050-25099").await;
}
