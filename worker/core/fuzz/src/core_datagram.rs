//! An op sequence against a whole `WorkerCore`: a router with a WebRtcServer (UDP + TCP), a
//! WebRtcTransport on it and one on its own socket (both given remote DTLS parameters, one as
//! DTLS client and one as server), a comedia rtcp-mux PlainTransport, two VP8 producers on the
//! PlainTransport (one by SSRC with RTX, one by MID/RID) and consumers on the PlainTransport and
//! on a WebRtcTransport. The input then drives it with datagrams from arbitrary remote tuples to
//! the known (and one unknown) local sockets, authenticated STUN checks the harness signs,
//! structured RTP/RTCP towards the PlainTransport, a few control requests, and Timeout inputs at
//! increasing simulated times, draining every output after each step as the shell does.
//!
//! Must hold: no panic; every Transmit leaves from a socket the core was given; every request
//! gets exactly one reply; Timeout moves `poll_timeout` past now (no busy loop in the shell).
//!
//!   cd worker/core/fuzz && cargo +nightly fuzz run core_datagram -- -max_total_time=60
//!
//! `CORE_DATAGRAM_TRACE=1` prints every op and output (to read a crash or check a seed).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::{Result, Unstructured};
use ferrosfu_fbs::{
    CodecMapping, ConnectParams, ConsumeOptions, ConsumerId, ConsumerType, DtlsFingerprint,
    DtlsParameters, DtlsRole, EncodingMapping, MediaKind, PlainTransportOptions, ProduceOptions,
    ProducerId, RequestBody, RequestFailure, ResponseBody, RouterId, RtcpParameters,
    RtpEncodingParameters, RtpHeaderExtensionParameters, RtpMapping, RtpParameters, TransportId,
    TransportProtocol, WebRtcServerId, WebRtcServerOptions, WebRtcTransportListen,
};
use ferrosfu_worker_core::{
    BoundSocket, Input, Output, Protocol, ReportBlock, Rtcp, Tuple, WorkerCore, build_rtcp,
};

use ferrosfu_sim::drive::{self, Binding, Requests, addr, bound, listen, webrtc_options};
use ferrosfu_sim::scenario::vp8_codecs;

const ROUTER: &str = "router";
const SERVER: &str = "server";
/// WebRtcTransport on the server (the remote will be DTLS client), on its own socket (the remote
/// will be DTLS server), and the PlainTransport.
const TRANSPORTS: [&str; 3] = ["webrtc-server", "webrtc-own", "plain"];
const PRODUCERS: [&str; 2] = ["video-ssrc", "video-rid"];
const CONSUMERS: [&str; 3] = ["plain-loop", "webrtc-own", "plain-rid"];
const PRODUCER_SSRC: u32 = 0x1111;
const PRODUCER_RTX_SSRC: u32 = 0x2222;
/// Consumer (media, RTX) SSRCs, same order as `CONSUMERS`.
const CONSUMER_SSRCS: [(u32, u32); 3] = [(0x3001, 0x3002), (0x4001, 0x4002), (0x5001, 0x5002)];
const VP8_PT: u8 = 96;
const RTX_PT: u8 = 97;
const MID_EXT: u8 = 1;
const RID_EXT: u8 = 2;
const RRID_EXT: u8 = 3;
const TWCC_EXT: u8 = 4;
const ABS_SEND_TIME_EXT: u8 = 5;

/// Local sockets: the server's UDP and TCP, the own socket, the plain socket, and one no
/// transport owns.
fn locals() -> [(Protocol, SocketAddr); 5] {
    [
        (Protocol::Udp, addr("10.0.0.1:40000")),
        (Protocol::Tcp, addr("10.0.0.1:40000")),
        (Protocol::Udp, addr("10.0.0.2:40002")),
        (Protocol::Udp, addr("10.0.0.3:40003")),
        (Protocol::Udp, addr("10.0.0.9:9")),
    ]
}

fn remotes() -> [SocketAddr; 4] {
    [
        addr("192.168.1.10:5000"),
        addr("192.168.1.10:5001"),
        addr("192.168.1.11:5000"),
        addr("[2001:db8::1]:6000"),
    ]
}

fn ext(uri: &str, id: u8) -> RtpHeaderExtensionParameters {
    RtpHeaderExtensionParameters {
        uri: if uri.contains(':') {
            uri.to_owned()
        } else {
            format!("urn:ietf:params:rtp-hdrext:sdes:{uri}")
        },
        id,
        encrypt: false,
    }
}

const TWCC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const ABS_SEND_TIME_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";

fn producer(id: &str, mid: &str, encodings: Vec<RtpEncodingParameters>) -> ProduceOptions {
    let mapping = encodings
        .iter()
        .enumerate()
        .map(|(i, e)| EncodingMapping {
            ssrc: e.ssrc,
            rid: e.rid.clone(),
            scalability_mode: None,
            mapped_ssrc: 0x7000_0000 + i as u32,
        })
        .collect();
    ProduceOptions {
        producer_id: ProducerId::new(id),
        kind: MediaKind::Video,
        rtp_parameters: RtpParameters {
            mid: Some(mid.into()),
            codecs: vp8_codecs(VP8_PT, RTX_PT),
            header_extensions: vec![
                ext("mid", MID_EXT),
                ext("rtp-stream-id", RID_EXT),
                ext("repaired-rtp-stream-id", RRID_EXT),
                ext(TWCC_URI, TWCC_EXT),
                ext(ABS_SEND_TIME_URI, ABS_SEND_TIME_EXT),
            ],
            encodings,
            rtcp: RtcpParameters {
                cname: "fuzz".into(),
                reduced_size: true,
            },
        },
        rtp_mapping: RtpMapping {
            codecs: vec![CodecMapping {
                payload_type: VP8_PT,
                mapped_payload_type: 101,
            }],
            encodings: mapping,
        },
        key_frame_request_delay: 0,
        paused: false,
    }
}

fn consumer(i: usize, producer: &str) -> ConsumeOptions {
    let (ssrc, rtx) = CONSUMER_SSRCS[i];
    ConsumeOptions {
        consumer_id: ConsumerId::new(CONSUMERS[i]),
        producer_id: ProducerId::new(producer),
        kind: MediaKind::Video,
        rtp_parameters: RtpParameters {
            mid: Some(i.to_string()),
            codecs: vp8_codecs(101, 102),
            header_extensions: vec![ext("mid", 9), ext(TWCC_URI, 10), ext(ABS_SEND_TIME_URI, 11)],
            encodings: vec![RtpEncodingParameters {
                ssrc: Some(ssrc),
                rtx_ssrc: Some(rtx),
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
        // The loop consumer forwards as it is; the others select layers (simulcast).
        consumer_type: if i == 0 {
            ConsumerType::Simple
        } else {
            ConsumerType::Simulcast
        },
        preferred_layers: None,
    }
}

fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("CORE_DATAGRAM_TRACE").is_some())
}

struct Harness {
    core: WorkerCore,
    now: Instant,
    requests: Requests,
    /// Local ICE (ufrag, pwd) of the two WebRtcTransports.
    ice: [(String, String); 2],
    sockets: Vec<(Protocol, SocketAddr)>,
}

impl Harness {
    fn new() -> Self {
        let now = drive::start();
        let l = locals();
        let mut h = Self {
            core: drive::core(now),
            now,
            requests: Requests::default(),
            ice: Default::default(),
            sockets: l[..4].to_vec(),
        };
        h.setup(&l);
        h
    }

    fn setup(&mut self, l: &[(Protocol, SocketAddr); 5]) {
        let ok = "setup request succeeds";
        self.request(
            "",
            RequestBody::WorkerCreateRouter {
                router_id: RouterId::new(ROUTER),
            },
            None,
        )
        .expect(ok);
        self.request(
            "",
            RequestBody::WorkerCreateWebRtcServer(WebRtcServerOptions {
                web_rtc_server_id: WebRtcServerId::new(SERVER),
                listen_infos: vec![
                    listen(TransportProtocol::Udp, l[0].1),
                    listen(TransportProtocol::Tcp, l[1].1),
                ],
            }),
            Some(vec![bound(l[0].0, l[0].1), bound(l[1].0, l[1].1)]),
        )
        .expect(ok);
        let listens = [
            WebRtcTransportListen::Server(WebRtcServerId::new(SERVER)),
            WebRtcTransportListen::Individual(vec![listen(TransportProtocol::Udp, l[2].1)]),
        ];
        let sockets = [None, Some(vec![bound(l[2].0, l[2].1)])];
        for (i, (listen, sockets)) in listens.into_iter().zip(sockets).enumerate() {
            let body =
                RequestBody::RouterCreateWebRtcTransport(webrtc_options(TRANSPORTS[i], listen));
            let Ok(ResponseBody::WebRtcTransportDump(d)) = self.request(ROUTER, body, sockets)
            else {
                panic!("webrtc transport {i} not created");
            };
            self.ice[i] = (
                d.ice_parameters.username_fragment,
                d.ice_parameters.password,
            );
            let role = if i == 0 {
                DtlsRole::Client
            } else {
                DtlsRole::Server
            };
            let connect = ConnectParams::WebRtc {
                dtls_parameters: DtlsParameters {
                    role,
                    fingerprints: vec![DtlsFingerprint {
                        algorithm: "sha-256".into(),
                        value: ["AB"; 32].join(":"),
                    }],
                },
            };
            self.request(TRANSPORTS[i], RequestBody::TransportConnect(connect), None)
                .expect(ok);
        }
        self.request(
            ROUTER,
            RequestBody::RouterCreatePlainTransport(PlainTransportOptions {
                transport_id: TransportId::new(TRANSPORTS[2]),
                listen_info: listen(TransportProtocol::Udp, l[3].1),
                rtcp_listen_info: None,
                rtcp_mux: true,
                comedia: true,
                srtp_crypto_suite: None,
            }),
            Some(vec![bound(l[3].0, l[3].1)]),
        )
        .expect(ok);
        let by_ssrc = vec![RtpEncodingParameters {
            ssrc: Some(PRODUCER_SSRC),
            rtx_ssrc: Some(PRODUCER_RTX_SSRC),
            ..Default::default()
        }];
        let by_rid = ["r0", "r1"]
            .iter()
            .map(|r| RtpEncodingParameters {
                rid: Some((*r).into()),
                ..Default::default()
            })
            .collect();
        for (id, mid, enc) in [(PRODUCERS[0], "0", by_ssrc), (PRODUCERS[1], "1", by_rid)] {
            let body = RequestBody::TransportProduce(producer(id, mid, enc));
            self.request(TRANSPORTS[2], body, None).expect(ok);
        }
        for (i, (transport, producer)) in [
            (TRANSPORTS[2], PRODUCERS[0]),
            (TRANSPORTS[1], PRODUCERS[0]),
            (TRANSPORTS[2], PRODUCERS[1]),
        ]
        .into_iter()
        .enumerate()
        {
            let body = RequestBody::TransportConsume(consumer(i, producer));
            self.request(transport, body, None).expect(ok);
        }
    }

    /// One request; its outputs are drained and checked.
    fn request(
        &mut self,
        handler: &str,
        body: RequestBody,
        sockets: Option<Vec<BoundSocket>>,
    ) -> std::result::Result<ResponseBody, RequestFailure> {
        let (reply, others) = self
            .requests
            .send(&mut self.core, self.now, handler, body, sockets);
        for o in others {
            self.check(o);
        }
        reply
    }

    fn drain(&mut self) {
        let Self { core, now, .. } = self;
        let mut sent = Vec::new();
        drive::transmits(core, *now, |tuple, data| sent.push((tuple, data.to_vec())));
        for (tuple, data) in sent {
            self.check_transmit(tuple, &data);
        }
        while let Some(o) = self.core.poll_output() {
            self.check(o);
        }
    }

    fn check_transmit(&self, tuple: Tuple, data: &[u8]) {
        if trace() {
            eprintln!(
                "  -> transmit {} bytes [{:02x?}..] {:?} {} -> {}",
                data.len(),
                &data[..data.len().min(2)],
                tuple.protocol,
                tuple.local,
                tuple.remote
            );
        }
        assert!(
            self.sockets.contains(&(tuple.protocol, tuple.local)),
            "transmit from a socket the core was not given: {tuple:?}"
        );
        assert!(!data.is_empty(), "empty transmit");
    }

    fn check(&self, o: Output) {
        if trace() {
            eprintln!("  -> {o:?}");
        }
        match o {
            Output::Reply(r) => panic!("unsolicited reply {r:?}"),
            Output::Closed => panic!("worker closed without worker.close"),
            Output::Notify(_) | Output::ReleaseSockets(_) => {}
        }
    }

    fn datagram(&mut self, local: (Protocol, SocketAddr), remote: SocketAddr, data: &[u8]) {
        let tuple = Tuple {
            local: local.1,
            remote,
            protocol: local.0,
        };
        if trace() {
            eprintln!(
                "datagram {} bytes [{:02x?}..] {:?} {} -> {}",
                data.len(),
                &data[..data.len().min(2)],
                tuple.protocol,
                remote,
                tuple.local
            );
        }
        self.core.handle_input(
            Input::Datagram {
                tuple,
                data,
                arrival: self.now,
            },
            self.now,
        );
        self.drain();
    }

    /// Advances simulated time and feeds every timeout that has come.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        if trace() {
            eprintln!("advance {by:?}");
        }
        let mut rounds = 0;
        while let Some(t) = self.core.poll_timeout()
            && t <= self.now
        {
            rounds += 1;
            assert!(
                rounds < 64,
                "poll_timeout stays at or before now after Timeout"
            );
            self.core.handle_input(Input::Timeout, self.now);
            self.drain();
        }
    }

    fn stun(
        &self,
        transport: usize,
        from_port: u16,
        nominate: bool,
        u: &mut Unstructured<'_>,
    ) -> Result<Vec<u8>> {
        let (ufrag, pwd) = &self.ice[transport];
        let transaction = u.arbitrary()?;
        let priority = u.arbitrary()?;
        let controlled = u.ratio(1, 16)?;
        Ok(Binding {
            ufrag,
            pwd,
            from_port,
            transaction,
            priority,
            controlled,
            nominate,
        }
        .build())
    }

    /// One step of the op sequence.
    fn op(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let l = locals();
        let r = remotes();
        match u.int_in_range(0..=9u8)? {
            // Raw datagram, the most common op.
            0..=3 => {
                let local = *u.choose(&l)?;
                let remote = *u.choose(&r)?;
                let len = u.int_in_range(0..=1500usize)?;
                let data = u.bytes(len.min(u.len()))?;
                self.datagram(local, remote, data);
            }
            // A check the harness signs with the transport's current ICE password.
            4 => {
                let t = u.int_in_range(0..=1usize)?;
                let local = *u.choose(&l)?;
                let remote = *u.choose(&r)?;
                let nominate = u.arbitrary()?;
                let data = self.stun(t, remote.port(), nominate, u)?;
                self.datagram(local, remote, &data);
            }
            // RTP to the PlainTransport with a known or arbitrary SSRC, and maybe MID/RID.
            5 => {
                let remote = *u.choose(&r)?;
                let data = rtp(u)?;
                self.datagram(l[3], remote, &data);
            }
            // Plain RTCP the core acts on, to the PlainTransport.
            6 => {
                let remote = *u.choose(&r)?;
                let items = rtcp(u)?;
                let data = build_rtcp(&items, u.arbitrary()?);
                self.datagram(l[3], remote, &data);
            }
            7 => {
                let ms = if u.ratio(1, 8)? {
                    u.int_in_range(1000..=40_000u64)?
                } else {
                    u.int_in_range(0..=300u64)?
                };
                self.advance(Duration::from_millis(ms));
            }
            _ => self.control(u)?,
        }
        Ok(())
    }

    fn control(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let (handler, body) = match u.int_in_range(0..=9u8)? {
            0 => (*u.choose(&PRODUCERS)?, RequestBody::ProducerPause),
            1 => (*u.choose(&PRODUCERS)?, RequestBody::ProducerResume),
            2 => (*u.choose(&PRODUCERS)?, RequestBody::ProducerGetStats),
            3 => (*u.choose(&CONSUMERS)?, RequestBody::ConsumerPause),
            4 => (*u.choose(&CONSUMERS)?, RequestBody::ConsumerResume),
            5 => (*u.choose(&CONSUMERS)?, RequestBody::ConsumerRequestKeyFrame),
            6 => (*u.choose(&CONSUMERS)?, RequestBody::ConsumerGetStats),
            7 => (*u.choose(&TRANSPORTS)?, RequestBody::TransportGetStats),
            8 => (
                *u.choose(&TRANSPORTS)?,
                RequestBody::TransportSetMaxIncomingBitrate(u.arbitrary()?),
            ),
            _ => {
                let t = u.int_in_range(0..=1usize)?;
                if trace() {
                    eprintln!("request transport.restart_ice {}", TRANSPORTS[t]);
                }
                if let Ok(ResponseBody::IceParameters(p)) =
                    self.request(TRANSPORTS[t], RequestBody::TransportRestartIce, None)
                {
                    self.ice[t] = (p.username_fragment, p.password);
                }
                return Ok(());
            }
        };
        if trace() {
            eprintln!("request {} {handler}", body.method());
        }
        let reply = self.request(handler, body, None);
        if trace() {
            eprintln!("  reply {reply:?}");
        }
        Ok(())
    }
}

/// An RTP packet: one of the known SSRCs (or any), VP8/RTX/other PT, maybe MID/RID/RRID
/// one-byte extensions, arbitrary payload.
fn rtp(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let ssrc = match u.int_in_range(0..=3u8)? {
        0 => PRODUCER_SSRC,
        1 => PRODUCER_RTX_SSRC,
        2 => 0xA000 + u32::from(u.int_in_range(0..=3u8)?),
        _ => u.arbitrary()?,
    };
    let pt = match u.int_in_range(0..=3u8)? {
        0 | 1 => VP8_PT,
        2 => RTX_PT,
        _ => u.int_in_range(0..=127u8)?,
    };
    let marker: bool = u.arbitrary()?;
    let mut v = vec![0x80, u8::from(marker) << 7 | pt];
    v.extend_from_slice(&u.arbitrary::<u16>()?.to_be_bytes());
    v.extend_from_slice(&u.arbitrary::<u32>()?.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    let mut body = Vec::new();
    for (id, values) in [
        (MID_EXT, &["0", "1", "9"][..]),
        (RID_EXT, &["r0", "r1", "r9"][..]),
        (RRID_EXT, &["r0", "r1"][..]),
    ] {
        if u.arbitrary()? {
            let val = u.choose(values)?.as_bytes();
            body.push(id << 4 | (val.len() as u8 - 1));
            body.extend_from_slice(val);
        }
    }
    if !body.is_empty() {
        while body.len() % 4 != 0 {
            body.push(0);
        }
        v[0] |= 0x10;
        v.extend_from_slice(&0xBEDEu16.to_be_bytes());
        v.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
        v.extend_from_slice(&body);
    }
    // VP8 descriptor: S bit set; keyframe or not.
    v.push(0x10);
    v.push(u8::from(!u.arbitrary::<bool>()?));
    let len = u.int_in_range(0..=1200usize)?;
    v.extend_from_slice(u.bytes(len.min(u.len()))?);
    Ok(v)
}

/// A compound of items the core reacts to, about the SSRCs it knows (or any).
fn rtcp(u: &mut Unstructured<'_>) -> Result<Vec<Rtcp>> {
    fn ssrc(u: &mut Unstructured<'_>) -> Result<u32> {
        Ok(match u.int_in_range(0..=7u8)? {
            0..=2 => CONSUMER_SSRCS[usize::from(u.int_in_range(0..=2u8)?)].0,
            3 => CONSUMER_SSRCS[usize::from(u.int_in_range(0..=2u8)?)].1,
            4 => PRODUCER_SSRC,
            _ => u.arbitrary()?,
        })
    }
    let n = u.int_in_range(1..=4usize)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(match u.int_in_range(0..=5u8)? {
            0 => {
                let count = u.int_in_range(1..=17usize)?;
                let mut seqs = Vec::with_capacity(count);
                let base: u16 = u.arbitrary()?;
                for _ in 0..count {
                    seqs.push(base.wrapping_add(u.int_in_range(0..=64u16)?));
                }
                seqs.sort_unstable();
                seqs.dedup();
                Rtcp::Nack {
                    media_ssrc: ssrc(u)?,
                    seqs,
                }
            }
            1 => Rtcp::Pli {
                media_ssrc: ssrc(u)?,
            },
            2 => Rtcp::Fir {
                media_ssrcs: vec![ssrc(u)?],
            },
            3 | 4 => {
                let mut reports = Vec::new();
                for _ in 0..u.int_in_range(0..=3u8)? {
                    reports.push(ReportBlock {
                        ssrc: ssrc(u)?,
                        fraction_lost: u.arbitrary()?,
                        total_lost: u.int_in_range(0..=0xFF_FFFF)?,
                        ext_highest_seq: u.arbitrary()?,
                        jitter: u.arbitrary()?,
                        lsr: u.arbitrary()?,
                        dlsr: u.arbitrary()?,
                    });
                }
                if u.arbitrary()? {
                    Rtcp::SenderReport {
                        ssrc: ssrc(u)?,
                        ntp: u.arbitrary()?,
                        rtp: u.arbitrary()?,
                        packets: u.arbitrary()?,
                        octets: u.arbitrary()?,
                        reports,
                    }
                } else {
                    Rtcp::ReceiverReport {
                        ssrc: u.arbitrary()?,
                        reports,
                    }
                }
            }
            _ => Rtcp::Remb {
                bitrate: u.int_in_range(0..=100_000_000u64)?,
                ssrcs: vec![ssrc(u)?],
            },
        });
    }
    Ok(items)
}

/// One input.
pub fn run(data: &[u8]) {
    let mut h = Harness::new();
    let mut u = Unstructured::new(data);
    for _ in 0..64 {
        if u.is_empty() || h.op(&mut u).is_err() {
            break;
        }
    }
    // Let every timer run out once more: consent expiry, DTLS retransmissions, RTCP.
    h.advance(Duration::from_secs(31));
}
