#![allow(clippy::unwrap_used)]
//! The webrtc-rs test client on its own (no SFU): the SDP it builds from server parameters is
//! accepted by webrtc-rs and ICE then targets the server's candidates.

use std::time::{Duration, SystemTime};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferrosfu_fbs::{
    DtlsFingerprint, DtlsParameters, DtlsRole, IceCandidate, IceParameters, MediaKind,
    RtcpFeedback, RtcpParameters, RtpCodecParameters, RtpEncodingParameters,
    RtpHeaderExtensionParameters, RtpParameters, SrtpCryptoSuite, TransportProtocol,
};
use ferrosfu_tests::rtc_client::{
    ClientOptions, OPUS_PAYLOAD_TYPE, Publisher, Subscriber, URI_MID, VP8_PAYLOAD_TYPE,
    client_media_engine, dtls_parameters_from_sdp, ice_candidates_from_sdp,
    ice_parameters_from_sdp, rtp_parameters_from_sdp, vp8_test_frame,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::dtls_transport::dtls_role::DTLSRole;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::certificate::RTCCertificate;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

const SERVER_UFRAG: &str = "srvufrag";
const SERVER_PWD: &str = "srvpassword0123456789abcdef";

fn server_ice() -> IceParameters {
    IceParameters {
        username_fragment: SERVER_UFRAG.to_owned(),
        password: SERVER_PWD.to_owned(),
        ice_lite: true,
    }
}

/// DTLS parameters of a freshly generated certificate, as the SFU would return them.
fn server_dtls() -> DtlsParameters {
    let cert =
        webrtc::dtls::crypto::Certificate::generate_self_signed(vec!["sfu".to_owned()]).unwrap();
    let cert = RTCCertificate::from_existing(cert, SystemTime::now() + Duration::from_secs(86400));
    DtlsParameters {
        role: DtlsRole::Auto,
        fingerprints: cert
            .get_fingerprints()
            .into_iter()
            .map(|f| DtlsFingerprint {
                algorithm: f.algorithm,
                value: f.value.to_uppercase(),
            })
            .collect(),
    }
}

fn candidate(protocol: TransportProtocol, port: u16, priority: u32) -> IceCandidate {
    IceCandidate {
        foundation: match protocol {
            TransportProtocol::Udp => "udpcandidate".to_owned(),
            TransportProtocol::Tcp => "tcpcandidate".to_owned(),
        },
        priority,
        address: "127.0.0.1".to_owned(),
        protocol,
        port,
        kind: "host".to_owned(),
        tcp_type: (protocol == TransportProtocol::Tcp).then(|| "passive".to_owned()),
    }
}

/// (message type, USERNAME) of a STUN message, or None if `b` is not STUN.
fn parse_stun(b: &[u8]) -> Option<(u16, Option<String>)> {
    if b.len() < 20 || b[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    let typ = u16::from_be_bytes([b[0], b[1]]);
    let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
    let body = b.get(20..20 + len)?;
    let mut i = 0;
    let mut username = None;
    while i + 4 <= body.len() {
        let at = u16::from_be_bytes([body[i], body[i + 1]]);
        let al = usize::from(u16::from_be_bytes([body[i + 2], body[i + 3]]));
        let v = body.get(i + 4..i + 4 + al)?;
        if at == 0x0006 {
            username = Some(String::from_utf8_lossy(v).into_owned());
        }
        i += 4 + al.div_ceil(4) * 4;
    }
    Some((typ, username))
}

#[tokio::test]
async fn producer_parameters_come_from_the_offer() {
    let p = Publisher::new(ClientOptions::default()).await.unwrap();
    let params = p.producer_parameters().unwrap();
    assert_eq!(params.len(), 2, "{params:#?}");
    let sdp = p.local_sdp().to_owned();

    let (kind, audio) = &params[0];
    assert_eq!(*kind, MediaKind::Audio);
    let (kind, video) = &params[1];
    assert_eq!(*kind, MediaKind::Video);

    for (rtp, mime, pt) in [
        (audio, "audio/opus", OPUS_PAYLOAD_TYPE),
        (video, "video/VP8", VP8_PAYLOAD_TYPE),
    ] {
        let mid = rtp.mid.as_deref().expect("mid");
        assert!(sdp.contains(&format!("a=mid:{mid}\r\n")), "{sdp}");
        let codec = rtp
            .codecs
            .iter()
            .find(|c| c.mime_type.eq_ignore_ascii_case(mime))
            .unwrap_or_else(|| panic!("{mime} in {rtp:#?}"));
        assert_eq!(codec.payload_type, pt);
        assert!(
            sdp.contains(&format!("a=rtpmap:{pt} ")),
            "payload type {pt} not in the offer:\n{sdp}"
        );
        assert_eq!(rtp.encodings.len(), 1, "{rtp:#?}");
        let ssrc = rtp.encodings[0].ssrc.unwrap();
        assert_ne!(ssrc, 0);
        assert!(sdp.contains(&format!("a=ssrc:{ssrc} cname:")), "{sdp}");
        assert!(!rtp.rtcp.cname.is_empty());
        assert!(
            rtp.header_extensions.iter().any(|e| e.uri == URI_MID),
            "{rtp:#?}"
        );
    }
    let opus = &audio.codecs[0];
    assert_eq!((opus.clock_rate, opus.channels), (48000, Some(2)));
    assert!(
        opus.parameters
            .contains(&("useinbandfec".to_owned(), "1".to_owned()))
    );
    let vp8 = video
        .codecs
        .iter()
        .find(|c| c.mime_type == "video/VP8")
        .unwrap();
    assert_eq!((vp8.clock_rate, vp8.channels), (90000, None));
    assert!(vp8.rtcp_feedback.contains(&RtcpFeedback {
        kind: "nack".to_owned(),
        parameter: "pli".to_owned()
    }));
    assert_ne!(audio.mid, video.mid);
    assert_ne!(audio.encodings[0].ssrc, video.encodings[0].ssrc);

    let dtls = p.local_dtls_parameters();
    assert_eq!(dtls.role, DtlsRole::Client);
    assert!(
        dtls.fingerprints.iter().any(|f| f.algorithm == "sha-256"),
        "{dtls:?}"
    );
    p.close().await.unwrap();
}

#[tokio::test]
async fn publisher_answer_is_accepted_and_ice_targets_the_server() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let p = Publisher::new(ClientOptions::default()).await.unwrap();
    let client_ufrag = p.local_ice_parameters().unwrap().username_fragment;
    // A TCP passive candidate too: webrtc-rs parses it (and ignores it, it has no ICE-TCP).
    let cands = [
        candidate(TransportProtocol::Udp, port, 1_076_302_079),
        candidate(TransportProtocol::Tcp, 9, 1_076_276_479),
    ];
    p.connect(&server_ice(), &cands, &server_dtls())
        .await
        .unwrap();

    let expected = format!("{SERVER_UFRAG}:{client_ufrag}");
    let mut buf = [0u8; 1500];
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (n, _from) = sock.recv_from(&mut buf).await.unwrap();
            if let Some((0x0001, Some(user))) = parse_stun(&buf[..n]) {
                return user;
            }
        }
    })
    .await
    .expect("a STUN Binding Request within 5 s");
    assert_eq!(got, expected);
    p.close().await.unwrap();
}

#[tokio::test]
async fn ice_tcp_only_reaches_the_server_over_tcp_with_rfc4571_framing() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = Publisher::new(ClientOptions {
        ice_tcp_only: true,
        ..ClientOptions::default()
    })
    .await
    .unwrap();
    let client_ufrag = p.local_ice_parameters().unwrap().username_fragment;
    // The UDP candidate must not be used in TCP-only mode: point it at nothing useful.
    let cands = [
        candidate(TransportProtocol::Udp, 9, 2_000_000_000),
        candidate(TransportProtocol::Tcp, port, 1_076_276_479),
    ];
    p.connect(&server_ice(), &cands, &server_dtls())
        .await
        .unwrap();

    let got = tokio::time::timeout(Duration::from_secs(5), async {
        let (mut conn, _) = listener.accept().await.unwrap();
        loop {
            let len = conn.read_u16().await.unwrap();
            let mut frame = vec![0u8; usize::from(len)];
            conn.read_exact(&mut frame).await.unwrap();
            if let Some((0x0001, Some(user))) = parse_stun(&frame) {
                return user;
            }
        }
    })
    .await
    .expect("a framed STUN Binding Request over TCP within 5 s");
    assert_eq!(got, format!("{SERVER_UFRAG}:{client_ufrag}"));
    p.close().await.unwrap();
}

fn consumer(kind: MediaKind, mid: &str, ssrc: u32, rtx_ssrc: Option<u32>) -> RtpParameters {
    let (codecs, exts) = match kind {
        MediaKind::Audio => (
            vec![RtpCodecParameters {
                mime_type: "audio/opus".to_owned(),
                payload_type: 100,
                clock_rate: 48000,
                channels: Some(2),
                parameters: vec![
                    ("minptime".to_owned(), "10".to_owned()),
                    ("useinbandfec".to_owned(), "1".to_owned()),
                ],
                rtcp_feedback: vec![],
            }],
            vec![RtpHeaderExtensionParameters {
                uri: URI_MID.to_owned(),
                id: 1,
                encrypt: false,
            }],
        ),
        MediaKind::Video => (
            vec![
                RtpCodecParameters {
                    mime_type: "video/VP8".to_owned(),
                    payload_type: 101,
                    clock_rate: 90000,
                    channels: None,
                    parameters: vec![],
                    rtcp_feedback: vec![
                        RtcpFeedback {
                            kind: "nack".to_owned(),
                            parameter: String::new(),
                        },
                        RtcpFeedback {
                            kind: "nack".to_owned(),
                            parameter: "pli".to_owned(),
                        },
                        RtcpFeedback {
                            kind: "ccm".to_owned(),
                            parameter: "fir".to_owned(),
                        },
                    ],
                },
                RtpCodecParameters {
                    mime_type: "video/rtx".to_owned(),
                    payload_type: 102,
                    clock_rate: 90000,
                    channels: None,
                    parameters: vec![("apt".to_owned(), "101".to_owned())],
                    rtcp_feedback: vec![],
                },
            ],
            vec![RtpHeaderExtensionParameters {
                uri: URI_MID.to_owned(),
                id: 1,
                encrypt: false,
            }],
        ),
    };
    RtpParameters {
        mid: Some(mid.to_owned()),
        codecs,
        header_extensions: exts,
        encodings: vec![RtpEncodingParameters {
            ssrc: Some(ssrc),
            rtx_ssrc,
            ..Default::default()
        }],
        rtcp: RtcpParameters {
            cname: "sfucname".to_owned(),
            reduced_size: true,
        },
    }
}

#[tokio::test]
async fn subscriber_accepts_the_server_offer_and_answers_with_a_dtls_role() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let s = Subscriber::new(ClientOptions::default()).await.unwrap();
    let consumers = [
        (
            MediaKind::Audio,
            consumer(MediaKind::Audio, "0", 11_111_111, None),
        ),
        (
            MediaKind::Video,
            consumer(MediaKind::Video, "1", 22_222_222, Some(33_333_333)),
        ),
    ];
    let dtls = s
        .connect_and_consume(
            &server_ice(),
            &[candidate(TransportProtocol::Udp, port, 1_076_302_079)],
            &server_dtls(),
            &consumers,
        )
        .await
        .unwrap();
    assert_eq!(dtls.role, DtlsRole::Client, "mediasoup-client's choice");
    assert!(dtls.fingerprints.iter().any(|f| f.algorithm == "sha-256"));

    let answer = s.local_sdp().unwrap();
    for needle in [
        "a=mid:0\r\n",
        "a=mid:1\r\n",
        "a=recvonly\r\n",
        "a=rtpmap:100 opus/48000/2\r\n",
        "a=rtpmap:101 VP8/90000\r\n",
        "a=setup:active\r\n",
    ] {
        assert!(answer.contains(needle), "{needle:?} not in\n{answer}");
    }
    // ICE runs towards the server candidate too.
    let client_ufrag = s.local_ice_parameters().unwrap().username_fragment;
    let mut buf = [0u8; 1500];
    let user = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (n, _) = sock.recv_from(&mut buf).await.unwrap();
            if let Some((0x0001, Some(user))) = parse_stun(&buf[..n]) {
                return user;
            }
        }
    })
    .await
    .expect("a STUN Binding Request within 5 s");
    assert_eq!(user, format!("{SERVER_UFRAG}:{client_ufrag}"));
    s.close().await.unwrap();
}

#[test]
fn vp8_test_frames_carry_the_keyframe_bit() {
    let k = vp8_test_frame(true, 3000, 7);
    assert_eq!(k.len(), 3000);
    assert_eq!(k[0] & 0x01, 0, "key frame: P bit clear");
    assert_eq!(&k[3..6], &[0x9d, 0x01, 0x2a]);
    let d = vp8_test_frame(false, 500, 7);
    assert_eq!(d[0] & 0x01, 1);
    assert_ne!(vp8_test_frame(true, 100, 1), vp8_test_frame(true, 100, 2));
}

// ---------------------------------------------------------------------------------------------
// End to end against a webrtc-rs peer in ICE-lite mode standing in for the SFU: it only hands
// over what the SFU will (ICE parameters, candidates, DTLS parameters, RTP parameters), the
// client builds the SDP from those, and ICE, DTLS, SRTP and payloads must go through.

/// A webrtc-rs peer with ICE-lite on 127.0.0.1, DTLS server when answering.
struct LiteServer {
    pc: Arc<RTCPeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    /// (kind, payload) of every RTP packet received.
    received: Arc<Mutex<HashMap<MediaKind, Vec<Vec<u8>>>>>,
}

impl LiteServer {
    async fn new() -> LiteServer {
        let mut m = client_media_engine().unwrap();
        let registry = register_default_interceptors(Registry::new(), &mut m).unwrap();
        let mut s = SettingEngine::default();
        s.set_lite(true);
        s.set_include_loopback_candidate(true);
        s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        s.set_network_types(vec![NetworkType::Udp4]);
        s.set_ip_filter(Box::new(|ip| ip.is_loopback()));
        s.set_answering_dtls_role(DTLSRole::Server).unwrap();
        let api = APIBuilder::new()
            .with_media_engine(m)
            .with_interceptor_registry(registry)
            .with_setting_engine(s)
            .build();
        let pc = Arc::new(
            api.new_peer_connection(RTCConfiguration::default())
                .await
                .unwrap(),
        );
        let (tx, state) = watch::channel(RTCPeerConnectionState::New);
        pc.on_peer_connection_state_change(Box::new(move |s| {
            let _ = tx.send(s);
            Box::pin(async {})
        }));
        let received: Arc<Mutex<HashMap<MediaKind, Vec<Vec<u8>>>>> = Arc::default();
        let rx = Arc::clone(&received);
        pc.on_track(Box::new(move |track, _, _| {
            let rx = Arc::clone(&rx);
            Box::pin(async move {
                let kind = match track.kind() {
                    RTPCodecType::Audio => MediaKind::Audio,
                    _ => MediaKind::Video,
                };
                tokio::spawn(async move {
                    while let Ok((pkt, _)) = track.read_rtp().await {
                        rx.lock()
                            .unwrap()
                            .entry(kind)
                            .or_default()
                            .push(pkt.payload.to_vec());
                    }
                });
            })
        }));
        LiteServer {
            pc,
            state,
            received,
        }
    }

    async fn set_local(&self, desc: RTCSessionDescription) -> String {
        let mut gathered = self.pc.gathering_complete_promise().await;
        self.pc.set_local_description(desc).await.unwrap();
        let _ = gathered.recv().await;
        self.pc.local_description().await.unwrap().sdp
    }

    /// What the SFU's create_webrtc_transport returns, from the server's own SDP.
    fn transport_params(sdp: &str) -> (IceParameters, Vec<IceCandidate>, DtlsParameters) {
        let ice = ice_parameters_from_sdp(sdp).unwrap();
        assert!(ice.ice_lite, "{sdp}");
        let cands = ice_candidates_from_sdp(sdp).unwrap();
        assert!(!cands.is_empty(), "{sdp}");
        (ice, cands, dtls_parameters_from_sdp(sdp).unwrap())
    }

    async fn wait_connected(&self) {
        let mut rx = self.state.clone();
        tokio::time::timeout(Duration::from_secs(10), async {
            while *rx.borrow_and_update() != RTCPeerConnectionState::Connected {
                rx.changed().await.unwrap();
            }
        })
        .await
        .expect("lite server connected");
    }

    async fn wait_received(&self, kind: MediaKind, n: usize) -> Vec<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self
                .received
                .lock()
                .unwrap()
                .get(&kind)
                .cloned()
                .unwrap_or_default();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn publisher_sends_byte_exact_media_to_an_ice_lite_peer_with_every_srtp_profile() {
    for suite in SrtpCryptoSuite::ALL {
        let srv = LiteServer::new().await;
        let p = Publisher::new(ClientOptions {
            srtp_profiles: vec![suite],
            ..ClientOptions::default()
        })
        .await
        .unwrap();
        // The stand-in learns the client's ICE/DTLS parameters from the offer (the SFU gets them
        // from transport.connect / ICE), and answers as DTLS server.
        srv.pc
            .set_remote_description(RTCSessionDescription::offer(p.local_sdp().to_owned()).unwrap())
            .await
            .unwrap();
        let answer = srv.pc.create_answer(None).await.unwrap();
        let srv_sdp = srv.set_local(answer).await;
        let (ice, cands, dtls) = LiteServer::transport_params(&srv_sdp);
        assert_eq!(dtls.role, DtlsRole::Server);

        p.connect(&ice, &cands, &dtls).await.unwrap();
        p.wait_connected(Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{suite:?}: {e:#}"));
        assert_eq!(p.local_dtls_parameters().role, DtlsRole::Client);
        srv.wait_connected().await;

        for i in 0..20u8 {
            let payload: Vec<u8> = (0..=i).map(|b| b.wrapping_mul(31) ^ i).collect();
            p.send_opus(&payload).await.unwrap();
        }
        p.send_vp8(&vp8_test_frame(true, 2500, 1)).await.unwrap();
        p.send_vp8(&vp8_test_frame(false, 700, 2)).await.unwrap();
        p.send_vp8(&vp8_test_frame(false, 1100, 3)).await.unwrap();

        for kind in [MediaKind::Audio, MediaKind::Video] {
            let sent: Vec<Vec<u8>> = p.sent(kind).into_iter().map(|s| s.payload).collect();
            let got = srv.wait_received(kind, sent.len()).await;
            assert_eq!(got, sent, "{suite:?} {kind:?}");
        }
        let video = p.sent(MediaKind::Video);
        assert_eq!(video.len(), 3 + 1 + 1, "2500-byte keyframe in 3 packets");
        assert_eq!(video[0].payload[0], 0x10);
        assert!(video[2].marker && !video[1].marker);
        p.close().await.unwrap();
        srv.pc.close().await.unwrap();
    }
}

#[tokio::test]
async fn subscriber_receives_byte_exact_media_from_an_ice_lite_peer() {
    let srv = LiteServer::new().await;
    let audio = Arc::new(TrackLocalStaticRTP::new(
        webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability {
            mime_type: "audio/opus".to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        "a".to_owned(),
        "sfu".to_owned(),
    ));
    let video = Arc::new(TrackLocalStaticRTP::new(
        webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability {
            mime_type: "video/VP8".to_owned(),
            clock_rate: 90000,
            ..Default::default()
        },
        "v".to_owned(),
        "sfu".to_owned(),
    ));
    srv.pc.add_track(audio.clone()).await.unwrap();
    srv.pc.add_track(video.clone()).await.unwrap();
    let offer = srv.pc.create_offer(None).await.unwrap();
    let srv_sdp = srv.set_local(offer).await;
    let (ice, cands, dtls) = LiteServer::transport_params(&srv_sdp);
    // What transport.consume would return for each consumer.
    let consumers = rtp_parameters_from_sdp(&srv_sdp).unwrap();
    assert_eq!(consumers.len(), 2);

    let sub = Subscriber::new(ClientOptions::default()).await.unwrap();
    let local = sub
        .connect_and_consume(&ice, &cands, &dtls, &consumers)
        .await
        .unwrap();
    assert_eq!(local.role, DtlsRole::Client);
    srv.pc
        .set_remote_description(RTCSessionDescription::answer(sub.local_sdp().unwrap()).unwrap())
        .await
        .unwrap();
    sub.wait_connected(Duration::from_secs(10)).await.unwrap();
    srv.wait_connected().await;

    let mut sent: HashMap<MediaKind, Vec<Vec<u8>>> = HashMap::new();
    for i in 0..30u16 {
        for (kind, track, pt) in [
            (MediaKind::Audio, &audio, OPUS_PAYLOAD_TYPE),
            (MediaKind::Video, &video, VP8_PAYLOAD_TYPE),
        ] {
            let payload: Vec<u8> = (0..(50 + i)).map(|b| (b ^ i) as u8).collect();
            let pkt = webrtc::rtp::packet::Packet {
                header: webrtc::rtp::header::Header {
                    version: 2,
                    payload_type: pt,
                    sequence_number: 1000 + i,
                    timestamp: u32::from(i) * 960,
                    marker: true,
                    ..Default::default()
                },
                payload: Bytes::from(payload.clone()),
            };
            track.write_rtp(&pkt).await.unwrap();
            sent.entry(kind).or_default().push(payload);
        }
    }
    for (kind, params) in &consumers {
        let got = sub
            .wait_packets(*kind, 30, Duration::from_secs(10))
            .await
            .unwrap();
        let payloads: Vec<Vec<u8>> = got.iter().map(|p| p.payload.clone()).collect();
        assert_eq!(&payloads, &sent[kind], "{kind:?}");
        assert_eq!(got[0].ssrc, params.encodings[0].ssrc.unwrap());
        assert_eq!(got[0].payload_type, params.codecs[0].payload_type);
        assert_eq!(got[0].sequence_number, 1000);
        assert_eq!(got[0].mid, params.mid);
    }
    sub.close().await.unwrap();
    srv.pc.close().await.unwrap();
}

/// The server side of ICE-TCP in front of a UDP-only peer: accepts TCP connections on
/// 127.0.0.1 and relays RFC 4571 frames to and from `udp_target`, one UDP socket per connection.
async fn tcp_to_udp_front(udp_target: std::net::SocketAddr) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            conns.spawn(async move {
                let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                udp.connect(udp_target).await.unwrap();
                let (mut rd, mut wr) = tcp.into_split();
                let up = async {
                    let mut frame = vec![0u8; 65536];
                    while let Ok(len) = rd.read_u16().await {
                        let f = &mut frame[..usize::from(len)];
                        if rd.read_exact(f).await.is_err() {
                            return;
                        }
                        let _ = udp.send(f).await;
                    }
                };
                let down = async {
                    use tokio::io::AsyncWriteExt;
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = udp.recv(&mut buf).await {
                        let mut framed = (n as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&buf[..n]);
                        if wr.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    () = up => {}
                    () = down => {}
                }
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn ice_tcp_only_carries_dtls_and_srtp_end_to_end() {
    let srv = LiteServer::new().await;
    let p = Publisher::new(ClientOptions {
        srtp_profiles: vec![SrtpCryptoSuite::AeadAes128Gcm],
        ice_tcp_only: true,
        ..ClientOptions::default()
    })
    .await
    .unwrap();
    srv.pc
        .set_remote_description(RTCSessionDescription::offer(p.local_sdp().to_owned()).unwrap())
        .await
        .unwrap();
    let answer = srv.pc.create_answer(None).await.unwrap();
    let srv_sdp = srv.set_local(answer).await;
    let (ice, udp_cands, dtls) = LiteServer::transport_params(&srv_sdp);
    let udp = &udp_cands[0];
    let (tcp_port, front) =
        tcp_to_udp_front(format!("{}:{}", udp.address, udp.port).parse().unwrap()).await;
    // The client gets the UDP candidate too and must not use it: only the TCP one works end to
    // end through the front (the direct UDP path would also work, so point it elsewhere).
    let cands = [
        candidate(TransportProtocol::Udp, 9, 2_000_000_000),
        candidate(TransportProtocol::Tcp, tcp_port, 1_000_000_000),
    ];
    p.connect(&ice, &cands, &dtls).await.unwrap();
    p.wait_connected(Duration::from_secs(10)).await.unwrap();
    srv.wait_connected().await;
    for i in 0..10u8 {
        p.send_opus(&[i; 40]).await.unwrap();
    }
    p.send_vp8(&vp8_test_frame(true, 3000, 9)).await.unwrap();
    for kind in [MediaKind::Audio, MediaKind::Video] {
        let sent: Vec<Vec<u8>> = p.sent(kind).into_iter().map(|s| s.payload).collect();
        assert_eq!(srv.wait_received(kind, sent.len()).await, sent, "{kind:?}");
    }
    p.close().await.unwrap();
    srv.pc.close().await.unwrap();
    front.abort();
}
