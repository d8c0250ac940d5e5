//! A WebRTC test client on webrtc-rs 0.17 that talks to an ICE-lite SFU the way mediasoup-client
//! does: the server hands out ICE parameters, host candidates and DTLS fingerprints, the client
//! builds the remote SDP from them locally and only sends its own DTLS parameters and RTP
//! parameters back (no SDP ever goes to the server).
//!
//! * [`Publisher`] is a send transport: one Opus and one VP8 sendonly transceiver. It makes the
//!   local offer; [`Publisher::connect`] turns the server parameters into the remote answer.
//! * [`Subscriber`] is a recv transport: [`Subscriber::connect_and_consume`] turns the server
//!   parameters and the consumers' RTP parameters into a remote offer, answers it and returns the
//!   local DTLS parameters for the SFU's `transport.connect`.
//!
//! Both use DTLS role `client` (the SFU is DTLS server), as mediasoup-client does with an ICE-lite
//! server, and are ICE controlling (webrtc-rs picks controlling when the remote is ICE-lite).
//! [`DtlsOptions`] (with [`Publisher::with_dtls`] / [`Subscriber::with_dtls`]) chooses the
//! certificate the client presents and the role a subscriber answers with; together with
//! [`generate_certificate`] and [`certificate_fingerprints`] a test can signal the fingerprint of
//! one certificate while presenting another.
//!
//! # ICE over TCP
//! webrtc-rs 0.17 has no ICE-TCP at all (RFC 6544, neither active nor passive):
//! `webrtc-ice-0.17.2/src/agent/agent_gather.rs:269` gathers every host candidate with
//! `let network = UDP.to_owned();` (the TCP branch is a commented-out Go port, lines 270-287),
//! `gather_candidates_srflx_mapped`/`gather_candidates_srflx` skip TCP network types
//! (`agent_gather.rs:487`, `:613`), the UDP-mux path keeps only UDP ones (`agent_gather.rs:401`),
//! `network_type/mod.rs:14-21` lists only UDP4/UDP6 as supported, pairs are only formed between
//! local and remote candidates of the same network type (`agent/agent_internal.rs:523-554`), and
//! the SettingEngine's TCP mux setter is commented out (`webrtc-0.17.2/src/api/setting_engine/
//! mod.rs:328-332`). Remote `tcptype passive` candidates parse fine but never pair (remote
//! `tcptype active` ones are dropped outright, `agent/mod.rs:269`). There is no `TcpStream`
//! anywhere in webrtc-ice, so no SettingEngine / network-type setting enables it.
//!
//! [`ClientOptions::ice_tcp_only`] therefore bridges: for each server TCP candidate the client
//! binds a UDP socket on 127.0.0.1 and announces it to webrtc-rs as the server's (UDP) host
//! candidate; every local UDP source that talks to it gets its own TCP connection to the server
//! candidate (the active side, as an ICE-TCP active client would open it) with RFC 4571 framing
//! (16-bit length prefix). STUN, DTLS and SRTP pass through unchanged, so the server sees what an
//! ICE-TCP active client sends: one TCP connection per probing local candidate, binding requests
//! with USE-CANDIDATE, then DTLS and SRTP on the nominated connection. (The STUN
//! XOR-MAPPED-ADDRESS the server returns names the TCP source, which webrtc-rs ignores.)
//!
//! # Selected SRTP profile
//! webrtc-rs does not expose the negotiated DTLS-SRTP profile: `RTCDtlsTransport::conn()` and its
//! `srtp_protection_profile` field are `pub(crate)` (`webrtc-0.17.2/src/dtls_transport/mod.rs:72`,
//! `:110`) and the stats report has no cipher. Offer a single profile in
//! [`ClientOptions::srtp_profiles`] to know which one is used, or read the server's side.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use ferrosfu_fbs::{
    DtlsFingerprint, DtlsParameters, DtlsRole, IceCandidate, IceParameters, MediaKind,
    RtcpFeedback, RtcpParameters, RtpCodecParameters, RtpEncodingParameters,
    RtpHeaderExtensionParameters, RtpParameters, SrtpCryptoSuite, TransportProtocol,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use webrtc::dtls_transport::dtls_role::DTLSRole;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::certificate::RTCCertificate;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::{RTCPFeedback, RTCRtpTransceiverInit};
use webrtc::sdp::{MediaDescription, SessionDescription};
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};

/// Payload types the client registers (Chrome's numbers).
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
pub const VP8_PAYLOAD_TYPE: u8 = 96;
pub const VP8_RTX_PAYLOAD_TYPE: u8 = 97;

pub const URI_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub const URI_ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
pub const URI_TRANSPORT_WIDE_CC: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
pub const URI_SSRC_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";
/// Opus 20 ms at 48 kHz.
const OPUS_TIMESTAMP_STEP: u32 = 960;
/// VP8 at 30 fps, 90 kHz.
const VP8_TIMESTAMP_STEP: u32 = 3000;
/// Largest VP8 frame chunk per RTP packet (plus the 1-byte payload descriptor).
const VP8_MAX_CHUNK: usize = 1100;
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// How the client connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// DTLS-SRTP profiles offered, in order of preference.
    pub srtp_profiles: Vec<SrtpCryptoSuite>,
    /// Reach the server only over its TCP candidates (through the RFC 4571 bridge described in
    /// the module docs; webrtc-rs itself has no ICE-TCP). UDP candidates are then not used.
    pub ice_tcp_only: bool,
    /// Gather and use host candidates of this address family only (UDP4 or UDP6): the server's
    /// candidates of the other family then never pair, so a dual-stack server is reached over
    /// the chosen one. None: both.
    pub only_family: Option<IpFamily>,
}

/// An IP address family, for [`ClientOptions::only_family`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpFamily {
    V4,
    V6,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            srtp_profiles: SrtpCryptoSuite::ALL.to_vec(),
            ice_tcp_only: false,
            only_family: None,
        }
    }
}

/// DTLS knobs beside [`ClientOptions`] (a separate type so that `ClientOptions` literals stay
/// valid). The default is what [`Publisher::new`] / [`Subscriber::new`] do.
#[derive(Clone, Debug, Default)]
pub struct DtlsOptions {
    /// The certificate the client presents in the DTLS handshake and whose fingerprint its SDP
    /// (and so [`Publisher::local_dtls_parameters`]) carries. Default: one webrtc-rs generates.
    pub certificate: Option<RTCCertificate>,
    /// The DTLS role a [`Subscriber`] takes in its answer (`Client` = a=setup:active, `Server` =
    /// passive; `Auto` is refused, an answer must choose). Default `Client`, as mediasoup-client.
    /// A [`Publisher`] offers, so its role follows the server's DTLS role given to
    /// [`Publisher::connect`] instead; this field does not apply to it.
    pub answering_role: Option<DtlsRole>,
}

/// A fresh self-signed certificate (ECDSA P-256, as webrtc-rs generates by default) valid for a
/// day, for [`DtlsOptions::certificate`].
pub fn generate_certificate() -> Result<RTCCertificate> {
    let cert =
        webrtc::dtls::crypto::Certificate::generate_self_signed(vec!["ferrosfu-test".to_owned()])
            .context("generate a self-signed certificate")?;
    let expires = std::time::SystemTime::now() + Duration::from_secs(24 * 3600);
    Ok(RTCCertificate::from_existing(cert, expires))
}

/// The sha-256 fingerprint of `cert` as the client signals it (upper-case hex, as
/// [`Publisher::local_dtls_parameters`] gives it), e.g. to signal this certificate while the
/// client presents another.
pub fn certificate_fingerprints(cert: &RTCCertificate) -> Vec<DtlsFingerprint> {
    cert.get_fingerprints()
        .into_iter()
        .map(|f| DtlsFingerprint {
            algorithm: f.algorithm.to_ascii_lowercase(),
            value: f.value.to_ascii_uppercase(),
        })
        .collect()
}

/// webrtc-rs's name for one of our SRTP suites.
pub fn srtp_protection_profile(suite: SrtpCryptoSuite) -> SrtpProtectionProfile {
    match suite {
        SrtpCryptoSuite::AeadAes256Gcm => SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
        SrtpCryptoSuite::AeadAes128Gcm => SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
        SrtpCryptoSuite::AesCm128HmacSha1_80 => SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        SrtpCryptoSuite::AesCm128HmacSha1_32 => SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32,
    }
}

/// One RTP packet written by a [`Publisher`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentPacket {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// The RTP payload exactly as sent (for VP8: payload descriptor + frame chunk).
    pub payload: Vec<u8>,
}

/// One RTP packet received by a [`Subscriber`] (after SRTP, as the track reads it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedPacket {
    /// The mid of the transceiver it arrived on.
    pub mid: Option<String>,
    pub ssrc: u32,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub payload_type: u8,
    pub marker: bool,
    pub payload: Vec<u8>,
}

/// RTCP feedback a [`Publisher`] received from the server, per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtcpFeedbackCounts {
    pub pli: u64,
    pub fir: u64,
    pub nack: u64,
}

fn lock<T>(m: &StdMutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn kind_of(t: RTPCodecType) -> Option<MediaKind> {
    match t {
        RTPCodecType::Audio => Some(MediaKind::Audio),
        RTPCodecType::Video => Some(MediaKind::Video),
        _ => None,
    }
}

fn kind_str(k: MediaKind) -> &'static str {
    match k {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u32
}

// ---------------------------------------------------------------------------------------------
// Peer connection set-up shared by both sides

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    }
}

fn opus_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: OPUS_FMTP.to_owned(),
        // transport-cc (and nack/nack pli for video) come from the default interceptors.
        rtcp_feedback: vec![],
    }
}

fn vp8_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![feedback("goog-remb", ""), feedback("ccm", "fir")],
    }
}

/// The codecs and header extensions both client sides register: Opus 48000/2 (PT 111), VP8
/// (PT 96) and its RTX (PT 97); mid, ssrc-audio-level, abs-send-time, transport-wide-cc. Use it
/// with `register_default_interceptors` for a webrtc-rs peer that matches the client.
pub fn client_media_engine() -> Result<MediaEngine> {
    let mut m = MediaEngine::default();
    m.register_codec(
        RTCRtpCodecParameters {
            capability: opus_capability(),
            payload_type: OPUS_PAYLOAD_TYPE,
            ..Default::default()
        },
        RTPCodecType::Audio,
    )?;
    m.register_codec(
        RTCRtpCodecParameters {
            capability: vp8_capability(),
            payload_type: VP8_PAYLOAD_TYPE,
            ..Default::default()
        },
        RTPCodecType::Video,
    )?;
    // Lets the subscriber accept consumers with RTX. The publisher does not send RTX (sender
    // RTX stays disabled in the SettingEngine), so no FID group appears in its offer.
    m.register_codec(
        RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: "video/rtx".to_owned(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: format!("apt={VP8_PAYLOAD_TYPE}"),
                rtcp_feedback: vec![],
            },
            payload_type: VP8_RTX_PAYLOAD_TYPE,
            ..Default::default()
        },
        RTPCodecType::Video,
    )?;
    for (uri, kinds) in [
        (URI_MID, &[RTPCodecType::Audio, RTPCodecType::Video][..]),
        (URI_SSRC_AUDIO_LEVEL, &[RTPCodecType::Audio][..]),
        (URI_ABS_SEND_TIME, &[RTPCodecType::Video][..]),
        (
            URI_TRANSPORT_WIDE_CC,
            &[RTPCodecType::Audio, RTPCodecType::Video][..],
        ),
    ] {
        for &kind in kinds {
            m.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                kind,
                None,
            )?;
        }
    }
    Ok(m)
}

fn setting_engine(opts: &ClientOptions, dtls: &DtlsOptions) -> Result<SettingEngine> {
    if opts.srtp_profiles.is_empty() {
        bail!("ClientOptions::srtp_profiles is empty");
    }
    let mut s = SettingEngine::default();
    s.set_include_loopback_candidate(true);
    s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    // Only UDP: webrtc-rs has no ICE-TCP (module docs). In TCP-only mode the bridge listens on
    // 127.0.0.1, so IPv4 is all that is needed.
    s.set_network_types(match (opts.ice_tcp_only, opts.only_family) {
        (true, Some(IpFamily::V6)) => {
            bail!("ClientOptions: ice_tcp_only bridges over IPv4; only_family V6 cannot be used")
        }
        (true, _) | (false, Some(IpFamily::V4)) => vec![NetworkType::Udp4],
        (false, Some(IpFamily::V6)) => vec![NetworkType::Udp6],
        (false, None) => vec![NetworkType::Udp4, NetworkType::Udp6],
    });
    s.set_srtp_protection_profiles(
        opts.srtp_profiles
            .iter()
            .map(|&p| srtp_protection_profile(p))
            .collect(),
    );
    // mediasoup-client's default with an ICE-lite server: the client side is DTLS client. Only
    // matters when answering (the subscriber); webrtc-rs would otherwise pick server there.
    s.set_answering_dtls_role(match dtls.answering_role {
        None | Some(DtlsRole::Client) => DTLSRole::Client,
        Some(DtlsRole::Server) => DTLSRole::Server,
        Some(DtlsRole::Auto) => bail!("DtlsOptions::answering_role must be Client or Server"),
    })?;
    Ok(s)
}

/// The parts both sides share: the peer connection, its state, the TCP bridge.
struct Peer {
    pc: Arc<RTCPeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    opts: ClientOptions,
    tasks: StdMutex<Vec<JoinHandle<()>>>,
}

impl Peer {
    async fn new(opts: ClientOptions, dtls: DtlsOptions) -> Result<Peer> {
        let mut m = client_media_engine()?;
        let registry = register_default_interceptors(Registry::new(), &mut m)?;
        let api = APIBuilder::new()
            .with_media_engine(m)
            .with_interceptor_registry(registry)
            .with_setting_engine(setting_engine(&opts, &dtls)?)
            .build();
        let config = RTCConfiguration {
            certificates: dtls.certificate.into_iter().collect(),
            ..Default::default()
        };
        let pc = Arc::new(api.new_peer_connection(config).await?);
        let (tx, state) = watch::channel(RTCPeerConnectionState::New);
        pc.on_peer_connection_state_change(Box::new(move |s| {
            let _ = tx.send(s);
            Box::pin(async {})
        }));
        Ok(Peer {
            pc,
            state,
            opts,
            tasks: StdMutex::new(Vec::new()),
        })
    }

    /// Sets `desc` as local description and waits for ICE gathering to finish (host candidates
    /// only, so it is quick); returns the final local SDP.
    async fn set_local_and_gather(&self, desc: RTCSessionDescription) -> Result<String> {
        let mut gathered = self.pc.gathering_complete_promise().await;
        self.pc.set_local_description(desc).await?;
        tokio::time::timeout(GATHER_TIMEOUT, gathered.recv())
            .await
            .map_err(|_| anyhow!("ICE gathering did not complete in {GATHER_TIMEOUT:?}"))?;
        Ok(self
            .pc
            .local_description()
            .await
            .context("no local description")?
            .sdp)
    }

    /// `a=candidate` lines (without "a=") for the server's candidates; in TCP-only mode, UDP
    /// candidates of the bridge in front of each server TCP candidate.
    async fn candidate_lines(&self, candidates: &[IceCandidate]) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        for (i, c) in candidates.iter().enumerate() {
            let foundation = if c.foundation.is_empty() {
                format!("srv{i}")
            } else {
                c.foundation.clone()
            };
            let kind = if c.kind.is_empty() { "host" } else { &c.kind };
            if self.opts.ice_tcp_only {
                if c.protocol != TransportProtocol::Tcp {
                    continue;
                }
                let ip: IpAddr = c
                    .address
                    .parse()
                    .with_context(|| format!("candidate address {:?}", c.address))?;
                let relay = start_tcp_bridge(SocketAddr::new(ip, c.port)).await?;
                lock(&self.tasks).push(relay.1);
                lines.push(format!(
                    "candidate:{foundation} 1 udp {} {} {} typ {kind}",
                    c.priority,
                    relay.0.ip(),
                    relay.0.port()
                ));
            } else {
                let mut l = format!(
                    "candidate:{foundation} 1 {} {} {} {} typ {kind}",
                    match c.protocol {
                        TransportProtocol::Udp => "udp",
                        TransportProtocol::Tcp => "tcp",
                    },
                    c.priority,
                    c.address,
                    c.port
                );
                if c.protocol == TransportProtocol::Tcp {
                    l.push_str(" tcptype ");
                    l.push_str(c.tcp_type.as_deref().unwrap_or("passive"));
                }
                lines.push(l);
            }
        }
        if lines.is_empty() {
            bail!(
                "no usable server candidate (ice_tcp_only = {}) in {candidates:?}",
                self.opts.ice_tcp_only
            );
        }
        Ok(lines)
    }

    async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.state.clone();
        let wait = async {
            loop {
                let s = *rx.borrow_and_update();
                match s {
                    RTCPeerConnectionState::Connected => return Ok(()),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        bail!("peer connection {s}")
                    }
                    _ => {}
                }
                rx.changed().await.context("peer connection dropped")?;
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => bail!(
                "peer connection not connected within {timeout:?} (state {})",
                *self.state.borrow()
            ),
        }
    }

    async fn close(&self) -> Result<()> {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        self.pc.close().await?;
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("state", &*self.state.borrow())
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// ICE-TCP bridge (RFC 4571 framing), see the module docs

/// Binds a UDP socket on 127.0.0.1 that relays to `server` over TCP, one TCP connection per
/// local UDP source. Returns its address and the task running it (abort it to stop).
async fn start_tcp_bridge(server: SocketAddr) -> Result<(SocketAddr, JoinHandle<()>)> {
    let udp = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?);
    let addr = udp.local_addr()?;
    let task = tokio::spawn(async move {
        let mut legs: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>> = HashMap::new();
        // Dropping the set (task aborted) aborts every leg.
        let mut leg_tasks = JoinSet::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                return;
            };
            let tx = legs.entry(from).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                leg_tasks.spawn(tcp_leg(Arc::clone(&udp), server, from, rx));
                tx
            });
            if tx.send(buf[..n].to_vec()).is_err() {
                // The leg ended (connect failed or the server closed): retry on the next packet.
                legs.remove(&from);
            }
            while leg_tasks.try_join_next().is_some() {}
        }
    });
    Ok((addr, task))
}

async fn tcp_leg(
    udp: Arc<UdpSocket>,
    server: SocketAddr,
    client: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let Ok(stream) = TcpStream::connect(server).await else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let to_client = async {
        let mut frame = vec![0u8; 65536];
        loop {
            let Ok(len) = rd.read_u16().await else { return };
            let frame = &mut frame[..usize::from(len)];
            if rd.read_exact(frame).await.is_err() {
                return;
            }
            let _ = udp.send_to(frame, client).await;
        }
    };
    let to_server = async {
        while let Some(datagram) = rx.recv().await {
            let Ok(len) = u16::try_from(datagram.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(datagram.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&datagram);
            if wr.write_all(&framed).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = to_client => {}
        () = to_server => {}
    }
}

// ---------------------------------------------------------------------------------------------
// SDP helpers

fn parse_sdp(sdp: &str) -> Result<SessionDescription> {
    let mut cursor = std::io::Cursor::new(sdp.as_bytes());
    SessionDescription::unmarshal(&mut cursor).context("parse SDP")
}

fn attr<'a>(m: &'a MediaDescription, key: &str) -> Option<&'a str> {
    m.attribute(key).flatten()
}

fn attrs<'a>(m: &'a MediaDescription, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    m.attributes
        .iter()
        .filter(move |a| a.key == key)
        .filter_map(|a| a.value.as_deref())
}

/// DTLS fingerprints of a local description (session and media level, deduplicated), as
/// mediasoup wants them: upper-case hex.
fn fingerprints_of(sdp: &SessionDescription) -> Vec<DtlsFingerprint> {
    let session = sdp
        .attributes
        .iter()
        .filter(|a| a.key == "fingerprint")
        .filter_map(|a| a.value.as_deref());
    let media = sdp
        .media_descriptions
        .iter()
        .flat_map(|m| attrs(m, "fingerprint"));
    let mut out: Vec<DtlsFingerprint> = Vec::new();
    for v in session.chain(media) {
        let Some((alg, value)) = v.split_once(' ') else {
            continue;
        };
        let fp = DtlsFingerprint {
            algorithm: alg.to_ascii_lowercase(),
            value: value.trim().to_ascii_uppercase(),
        };
        if !out.contains(&fp) {
            out.push(fp);
        }
    }
    out
}

fn ice_parameters_of(sdp: &SessionDescription) -> Result<IceParameters> {
    let find = |key: &str| -> Option<String> {
        sdp.attribute(key).cloned().or_else(|| {
            sdp.media_descriptions
                .iter()
                .find_map(|m| attr(m, key).map(str::to_owned))
        })
    };
    Ok(IceParameters {
        username_fragment: find("ice-ufrag").context("no a=ice-ufrag")?,
        password: find("ice-pwd").context("no a=ice-pwd")?,
        ice_lite: sdp.attribute("ice-lite").is_some(),
    })
}

/// The a=fingerprint value for the server's certificate. webrtc-rs verifies only sha-256 and
/// only the first fingerprint line (`dtls_transport/mod.rs:548`, `peer_connection/sdp/mod.rs:927`).
fn server_fingerprint(dtls: &DtlsParameters) -> Result<String> {
    let fp = dtls
        .fingerprints
        .iter()
        .find(|f| f.algorithm.eq_ignore_ascii_case("sha-256"))
        .context(
            "server DTLS parameters have no sha-256 fingerprint (webrtc-rs checks only sha-256)",
        )?;
    Ok(format!("sha-256 {}", fp.value.to_ascii_uppercase()))
}

/// The RTP parameters of one m-section of an SDP this client generated.
fn rtp_parameters_of(m: &MediaDescription, kind: MediaKind) -> Result<RtpParameters> {
    let mut codecs = Vec::new();
    for fmt in &m.media_name.formats {
        let pt: u8 = fmt
            .parse()
            .with_context(|| format!("payload type {fmt:?}"))?;
        let prefix = format!("{pt} ");
        let Some(rtpmap) = attrs(m, "rtpmap").find_map(|v| v.strip_prefix(&prefix)) else {
            continue;
        };
        let mut parts = rtpmap.trim().split('/');
        let name = parts.next().unwrap_or_default();
        let clock_rate: u32 = parts
            .next()
            .context("rtpmap without clock rate")?
            .parse()
            .context("rtpmap clock rate")?;
        let channels = match kind {
            MediaKind::Audio => Some(
                parts
                    .next()
                    .map(str::parse)
                    .transpose()
                    .context("rtpmap channels")?
                    .unwrap_or(1u8),
            ),
            MediaKind::Video => None,
        };
        let parameters = attrs(m, "fmtp")
            .filter_map(|v| v.strip_prefix(&prefix))
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                Some((k.trim().to_owned(), v.trim().to_owned()))
            })
            .collect();
        let rtcp_feedback = attrs(m, "rtcp-fb")
            .filter_map(|v| v.strip_prefix(&prefix).or_else(|| v.strip_prefix("* ")))
            .map(|v| {
                let mut it = v.trim().splitn(2, ' ');
                RtcpFeedback {
                    kind: it.next().unwrap_or_default().to_owned(),
                    parameter: it.next().unwrap_or_default().trim().to_owned(),
                }
            })
            .fold(Vec::new(), |mut all: Vec<RtcpFeedback>, fb| {
                if !all.contains(&fb) {
                    all.push(fb);
                }
                all
            });
        codecs.push(RtpCodecParameters {
            mime_type: format!("{}/{name}", kind_str(kind)),
            payload_type: pt,
            clock_rate,
            channels,
            parameters,
            rtcp_feedback,
        });
    }

    let mut header_extensions = Vec::new();
    for v in attrs(m, "extmap") {
        let mut it = v.split_whitespace();
        let (Some(id), Some(uri)) = (it.next(), it.next()) else {
            continue;
        };
        let id = id.split('/').next().unwrap_or_default();
        header_extensions.push(RtpHeaderExtensionParameters {
            uri: uri.to_owned(),
            id: id.parse().with_context(|| format!("extmap id {id:?}"))?,
            encrypt: false,
        });
    }

    // a=ssrc:<ssrc> cname:<cname> and a=ssrc-group:FID <primary> <rtx>
    let mut ssrcs: Vec<u32> = Vec::new();
    let mut cname = String::new();
    for v in attrs(m, "ssrc") {
        let (ssrc, rest) = v.split_once(' ').unwrap_or((v, ""));
        let ssrc: u32 = ssrc.parse().with_context(|| format!("ssrc {ssrc:?}"))?;
        if !ssrcs.contains(&ssrc) {
            ssrcs.push(ssrc);
        }
        if let Some(c) = rest.strip_prefix("cname:")
            && cname.is_empty()
        {
            cname = c.trim().to_owned();
        }
    }
    let mut rtx_of: HashMap<u32, u32> = HashMap::new();
    for v in attrs(m, "ssrc-group") {
        let mut it = v.split_whitespace();
        if it.next() == Some("FID")
            && let (Some(a), Some(b)) = (it.next(), it.next())
        {
            rtx_of.insert(a.parse()?, b.parse()?);
        }
    }
    let encodings = ssrcs
        .iter()
        .filter(|s| !rtx_of.values().any(|r| r == *s))
        .map(|&s| RtpEncodingParameters {
            ssrc: Some(s),
            rtx_ssrc: rtx_of.get(&s).copied(),
            ..Default::default()
        })
        .collect();

    Ok(RtpParameters {
        mid: attr(m, "mid").map(str::to_owned),
        codecs,
        header_extensions,
        encodings,
        rtcp: RtcpParameters {
            cname,
            reduced_size: m.attribute("rtcp-rsize").is_some(),
        },
    })
}

fn media_kind_of(m: &MediaDescription) -> Option<MediaKind> {
    match m.media_name.media.as_str() {
        "audio" => Some(MediaKind::Audio),
        "video" => Some(MediaKind::Video),
        _ => None,
    }
}

/// The RTP parameters of every audio/video m-section of `sdp` (mid, codecs with payload types,
/// fmtp and rtcp-fb, header extensions, SSRCs with RTX from `a=ssrc-group:FID`, cname).
pub fn rtp_parameters_from_sdp(sdp: &str) -> Result<Vec<(MediaKind, RtpParameters)>> {
    let parsed = parse_sdp(sdp)?;
    parsed
        .media_descriptions
        .iter()
        .filter_map(|m| media_kind_of(m).map(|k| (k, m)))
        .map(|(k, m)| Ok((k, rtp_parameters_of(m, k)?)))
        .collect()
}

/// ICE ufrag/pwd of `sdp` (session or first media level) and whether it says `a=ice-lite`.
pub fn ice_parameters_from_sdp(sdp: &str) -> Result<IceParameters> {
    ice_parameters_of(&parse_sdp(sdp)?)
}

/// DTLS fingerprints of `sdp` and the role its `a=setup` gives its author (active = client,
/// passive = server, actpass = auto).
pub fn dtls_parameters_from_sdp(sdp: &str) -> Result<DtlsParameters> {
    let parsed = parse_sdp(sdp)?;
    let setup = parsed
        .media_descriptions
        .iter()
        .find_map(|m| attr(m, "setup"))
        .or_else(|| parsed.attribute("setup").map(String::as_str));
    let role = match setup {
        Some("active") => DtlsRole::Client,
        Some("passive") => DtlsRole::Server,
        Some("actpass") | None => DtlsRole::Auto,
        Some(other) => bail!("a=setup:{other}"),
    };
    Ok(DtlsParameters {
        role,
        fingerprints: fingerprints_of(&parsed),
    })
}

/// The component-1 `a=candidate` lines of `sdp` (deduplicated), as server candidates.
pub fn ice_candidates_from_sdp(sdp: &str) -> Result<Vec<IceCandidate>> {
    let parsed = parse_sdp(sdp)?;
    let mut out: Vec<IceCandidate> = Vec::new();
    for v in parsed
        .media_descriptions
        .iter()
        .flat_map(|m| attrs(m, "candidate"))
    {
        let f: Vec<&str> = v.split_whitespace().collect();
        if f.len() < 8 || f[1] != "1" || f[6] != "typ" {
            continue;
        }
        let protocol = match f[2].to_ascii_lowercase().as_str() {
            "udp" => TransportProtocol::Udp,
            "tcp" => TransportProtocol::Tcp,
            _ => continue,
        };
        let tcp_type = f
            .iter()
            .position(|x| *x == "tcptype")
            .and_then(|i| f.get(i + 1))
            .map(|t| (*t).to_owned());
        let c = IceCandidate {
            foundation: f[0].to_owned(),
            priority: f[3].parse().with_context(|| format!("priority in {v:?}"))?,
            address: f[4].to_owned(),
            protocol,
            port: f[5].parse().with_context(|| format!("port in {v:?}"))?,
            kind: f[7].to_owned(),
            tcp_type,
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Session part of a remote SDP built from server parameters.
fn remote_session_header(server_ice: &IceParameters, mids: &[String]) -> String {
    let mut s = String::new();
    s.push_str("v=0\r\n");
    s.push_str(&format!(
        "o=ferrosfu {} 2 IN IP4 127.0.0.1\r\n",
        random_u32()
    ));
    s.push_str("s=-\r\n");
    s.push_str("t=0 0\r\n");
    if server_ice.ice_lite {
        s.push_str("a=ice-lite\r\n");
    }
    s.push_str(&format!("a=group:BUNDLE {}\r\n", mids.join(" ")));
    s.push_str("a=msid-semantic: WMS *\r\n");
    s
}

/// Transport attributes of one remote m-section (candidates only on the first).
fn remote_transport_attrs(
    s: &mut String,
    server_ice: &IceParameters,
    fingerprint: &str,
    setup: &str,
    candidates: Option<&[String]>,
) {
    s.push_str("c=IN IP4 127.0.0.1\r\n");
    s.push_str(&format!("a=ice-ufrag:{}\r\n", server_ice.username_fragment));
    s.push_str(&format!("a=ice-pwd:{}\r\n", server_ice.password));
    s.push_str(&format!("a=fingerprint:{fingerprint}\r\n"));
    s.push_str(&format!("a=setup:{setup}\r\n"));
    if let Some(cands) = candidates {
        for c in cands {
            s.push_str(&format!("a={c}\r\n"));
        }
        s.push_str("a=end-of-candidates\r\n");
    }
    s.push_str("a=rtcp-mux\r\n");
}

fn codec_lines(s: &mut String, codec: &RtpCodecParameters) {
    let name = codec
        .mime_type
        .split_once('/')
        .map(|(_, n)| n)
        .unwrap_or(&codec.mime_type);
    let pt = codec.payload_type;
    match codec.channels {
        Some(ch) if codec.mime_type.starts_with("audio/") => s.push_str(&format!(
            "a=rtpmap:{pt} {name}/{}/{ch}\r\n",
            codec.clock_rate
        )),
        _ => s.push_str(&format!("a=rtpmap:{pt} {name}/{}\r\n", codec.clock_rate)),
    }
    if !codec.parameters.is_empty() {
        let fmtp: Vec<String> = codec
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!("a=fmtp:{pt} {}\r\n", fmtp.join(";")));
    }
    for fb in &codec.rtcp_feedback {
        if fb.parameter.is_empty() {
            s.push_str(&format!("a=rtcp-fb:{pt} {}\r\n", fb.kind));
        } else {
            s.push_str(&format!("a=rtcp-fb:{pt} {} {}\r\n", fb.kind, fb.parameter));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Publisher

struct OutStream {
    sequence_number: u16,
    timestamp: u32,
}

impl OutStream {
    fn new() -> Self {
        OutStream {
            sequence_number: random_u32() as u16,
            timestamp: random_u32(),
        }
    }
}

/// A send transport: Opus + VP8 sendonly, like mediasoup-client's `createSendTransport` with
/// two producers.
pub struct Publisher {
    peer: Peer,
    audio: Arc<TrackLocalStaticRTP>,
    video: Arc<TrackLocalStaticRTP>,
    offer_sdp: String,
    offer: SessionDescription,
    local_role: StdMutex<DtlsRole>,
    audio_out: Mutex<OutStream>,
    video_out: Mutex<OutStream>,
    sent: StdMutex<HashMap<MediaKind, Vec<SentPacket>>>,
    rtcp: Arc<StdMutex<HashMap<MediaKind, RtcpFeedbackCounts>>>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("peer", &self.peer)
            .field("local_role", &*lock(&self.local_role))
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Creates the peer connection, adds the Opus and VP8 tracks (sendonly) and applies the
    /// local offer (ICE gathering completes before this returns).
    pub async fn new(opts: ClientOptions) -> Result<Publisher> {
        Self::with_dtls(opts, DtlsOptions::default()).await
    }

    /// [`Publisher::new`] presenting the certificate of `dtls` (its `answering_role` does not
    /// apply to a publisher).
    pub async fn with_dtls(opts: ClientOptions, dtls: DtlsOptions) -> Result<Publisher> {
        let peer = Peer::new(opts, dtls).await?;
        let audio = Arc::new(TrackLocalStaticRTP::new(
            opus_capability(),
            "audio".to_owned(),
            "ferrosfu-test".to_owned(),
        ));
        let video = Arc::new(TrackLocalStaticRTP::new(
            vp8_capability(),
            "video".to_owned(),
            "ferrosfu-test".to_owned(),
        ));
        let rtcp: Arc<StdMutex<HashMap<MediaKind, RtcpFeedbackCounts>>> = Arc::default();
        for (kind, track) in [
            (MediaKind::Audio, Arc::clone(&audio)),
            (MediaKind::Video, Arc::clone(&video)),
        ] {
            let track: Arc<dyn TrackLocal + Send + Sync> = track;
            let transceiver = peer
                .pc
                .add_transceiver_from_track(
                    track,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        send_encodings: vec![],
                    }),
                )
                .await?;
            // Read RTCP so the interceptors (NACK responder, reports) see it; count feedback.
            let sender = transceiver.sender().await;
            let counts = Arc::clone(&rtcp);
            let task = tokio::spawn(async move {
                while let Ok((pkts, _)) = sender.read_rtcp().await {
                    let mut c = lock(&counts);
                    let c = c.entry(kind).or_default();
                    for p in pkts {
                        let any = p.as_any();
                        if any.is::<PictureLossIndication>() {
                            c.pli += 1;
                        } else if any.is::<FullIntraRequest>() {
                            c.fir += 1;
                        } else if any.is::<TransportLayerNack>() {
                            c.nack += 1;
                        }
                    }
                }
            });
            lock(&peer.tasks).push(task);
        }
        let offer = peer.pc.create_offer(None).await?;
        let offer_sdp = peer.set_local_and_gather(offer).await?;
        let offer = parse_sdp(&offer_sdp)?;
        Ok(Publisher {
            peer,
            audio,
            video,
            offer_sdp,
            offer,
            local_role: StdMutex::new(DtlsRole::Client),
            audio_out: Mutex::new(OutStream::new()),
            video_out: Mutex::new(OutStream::new()),
            sent: StdMutex::default(),
            rtcp,
        })
    }

    /// The local offer as applied (with candidates).
    pub fn local_sdp(&self) -> &str {
        &self.offer_sdp
    }

    /// The client's ICE ufrag/pwd (`ice_lite` false).
    pub fn local_ice_parameters(&self) -> Result<IceParameters> {
        ice_parameters_of(&self.offer)
    }

    /// Fingerprints of the local certificate and the role for the SFU's `transport.connect`:
    /// `Client` (the SFU is DTLS server) unless the server's DTLS parameters passed to
    /// [`Publisher::connect`] said the server is client.
    pub fn local_dtls_parameters(&self) -> DtlsParameters {
        DtlsParameters {
            role: *lock(&self.local_role),
            fingerprints: fingerprints_of(&self.offer),
        }
    }

    /// What the SFU's `transport.produce` needs for each track, read from the local offer.
    pub fn producer_parameters(&self) -> Result<Vec<(MediaKind, RtpParameters)>> {
        self.offer
            .media_descriptions
            .iter()
            .filter_map(|m| media_kind_of(m).map(|k| (k, m)))
            .map(|(k, m)| Ok((k, rtp_parameters_of(m, k)?)))
            .collect()
    }

    /// Builds the remote answer from the server's parameters and applies it; ICE and DTLS start.
    pub async fn connect(
        &self,
        server_ice: &IceParameters,
        candidates: &[IceCandidate],
        server_dtls: &DtlsParameters,
    ) -> Result<()> {
        let (setup, local_role) = match server_dtls.role {
            DtlsRole::Client => ("active", DtlsRole::Server),
            DtlsRole::Server | DtlsRole::Auto => ("passive", DtlsRole::Client),
        };
        let fingerprint = server_fingerprint(server_dtls)?;
        let cands = self.peer.candidate_lines(candidates).await?;
        let sections: Vec<&MediaDescription> = self
            .offer
            .media_descriptions
            .iter()
            .filter(|m| media_kind_of(m).is_some())
            .collect();
        let mids: Vec<String> = sections
            .iter()
            .map(|m| {
                attr(m, "mid")
                    .map(str::to_owned)
                    .context("offer m-section without mid")
            })
            .collect::<Result<_>>()?;
        let mut s = remote_session_header(server_ice, &mids);
        for (i, m) in sections.iter().enumerate() {
            s.push_str(&format!(
                "m={} 7 UDP/TLS/RTP/SAVPF {}\r\n",
                m.media_name.media,
                m.media_name.formats.join(" ")
            ));
            remote_transport_attrs(
                &mut s,
                server_ice,
                &fingerprint,
                setup,
                (i == 0).then_some(&cands[..]),
            );
            s.push_str(&format!("a=mid:{}\r\n", mids[i]));
            s.push_str("a=recvonly\r\n");
            if m.attribute("rtcp-rsize").is_some() {
                s.push_str("a=rtcp-rsize\r\n");
            }
            for a in &m.attributes {
                if matches!(a.key.as_str(), "rtpmap" | "fmtp" | "rtcp-fb" | "extmap")
                    && let Some(v) = &a.value
                {
                    s.push_str(&format!("a={}:{v}\r\n", a.key));
                }
            }
        }
        *lock(&self.local_role) = local_role;
        self.peer
            .pc
            .set_remote_description(RTCSessionDescription::answer(s)?)
            .await
            .context("apply remote answer")?;
        Ok(())
    }

    /// Resolves once the peer connection is `Connected` (ICE + DTLS); errors on Failed/Closed or
    /// after `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        self.peer.wait_connected(timeout).await
    }

    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.peer.state.borrow()
    }

    /// Sends one Opus packet (20 ms) with `payload` as RTP payload.
    pub async fn send_opus(&self, payload: &[u8]) -> Result<()> {
        let mut out = self.audio_out.lock().await;
        let p = SentPacket {
            sequence_number: out.sequence_number,
            timestamp: out.timestamp,
            marker: false,
            payload: payload.to_vec(),
        };
        write_packet(&self.audio, &p, OPUS_PAYLOAD_TYPE).await?;
        out.sequence_number = out.sequence_number.wrapping_add(1);
        out.timestamp = out.timestamp.wrapping_add(OPUS_TIMESTAMP_STEP);
        lock(&self.sent)
            .entry(MediaKind::Audio)
            .or_default()
            .push(p);
        Ok(())
    }

    /// Sends one VP8 frame: split into chunks of at most 1100 bytes, each behind a 1-byte
    /// payload descriptor (S=1 on the first, PID 0), marker on the last, one timestamp per
    /// frame (30 fps). Whether the SFU sees a keyframe depends on `frame` (see
    /// [`vp8_test_frame`]).
    pub async fn send_vp8(&self, frame: &[u8]) -> Result<()> {
        let mut out = self.video_out.lock().await;
        let chunks: Vec<&[u8]> = if frame.is_empty() {
            vec![frame]
        } else {
            frame.chunks(VP8_MAX_CHUNK).collect()
        };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut payload = Vec::with_capacity(chunk.len() + 1);
            payload.push(if i == 0 { 0x10 } else { 0x00 });
            payload.extend_from_slice(chunk);
            let p = SentPacket {
                sequence_number: out.sequence_number,
                timestamp: out.timestamp,
                marker: i == last,
                payload,
            };
            write_packet(&self.video, &p, VP8_PAYLOAD_TYPE).await?;
            out.sequence_number = out.sequence_number.wrapping_add(1);
            lock(&self.sent)
                .entry(MediaKind::Video)
                .or_default()
                .push(p);
        }
        out.timestamp = out.timestamp.wrapping_add(VP8_TIMESTAMP_STEP);
        Ok(())
    }

    /// Writes a ready RTP packet (from a real encoder, see [`crate::media_source`]) to the track
    /// of `kind`. The track sets SSRC, payload type and its header extensions; sequence number,
    /// timestamp, marker and payload are sent as they are. Recorded in [`Publisher::sent`]. Do
    /// not mix with [`Publisher::send_opus`]/[`Publisher::send_vp8`] on the same track: both
    /// would number the packets.
    pub async fn send_rtp(
        &self,
        kind: MediaKind,
        packet: &webrtc::rtp::packet::Packet,
    ) -> Result<()> {
        let track = match kind {
            MediaKind::Audio => &self.audio,
            MediaKind::Video => &self.video,
        };
        track.write_rtp(packet).await?;
        lock(&self.sent).entry(kind).or_default().push(SentPacket {
            sequence_number: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            payload: packet.payload.to_vec(),
        });
        Ok(())
    }

    /// Every packet sent so far on the track of `kind`, in order.
    pub fn sent(&self, kind: MediaKind) -> Vec<SentPacket> {
        lock(&self.sent).get(&kind).cloned().unwrap_or_default()
    }

    /// PLI/FIR/NACK packets received from the server for the track of `kind`.
    pub fn rtcp_feedback(&self, kind: MediaKind) -> RtcpFeedbackCounts {
        lock(&self.rtcp).get(&kind).copied().unwrap_or_default()
    }

    pub async fn close(&self) -> Result<()> {
        self.peer.close().await
    }
}

async fn write_packet(track: &TrackLocalStaticRTP, p: &SentPacket, pt: u8) -> Result<()> {
    let pkt = webrtc::rtp::packet::Packet {
        header: webrtc::rtp::header::Header {
            version: 2,
            marker: p.marker,
            payload_type: pt,
            sequence_number: p.sequence_number,
            timestamp: p.timestamp,
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(&p.payload),
    };
    track.write_rtp(&pkt).await?;
    Ok(())
}

/// A VP8 frame for tests: a real-looking 10-byte keyframe header (frame tag with the key-frame
/// bit clear, start code 9d 01 2a, 320x240) or a 3-byte inter-frame tag, padded to `len` with
/// bytes derived from `seed`. SFUs (mediasoup included) detect keyframes from exactly these
/// bits, behind a payload descriptor with S=1 and partition 0.
pub fn vp8_test_frame(keyframe: bool, len: usize, seed: u8) -> Vec<u8> {
    let header_len = if keyframe { 10 } else { 3 };
    let len = len.max(header_len);
    let first_partition = u32::try_from(len - header_len)
        .unwrap_or(u32::MAX)
        .min(0x7FFFF);
    // frame tag: bit 0 = !keyframe, bits 1-3 version 0, bit 4 show_frame, bits 5-23 size
    let tag = u32::from(!keyframe) | (1 << 4) | (first_partition << 5);
    let mut f = vec![tag as u8, (tag >> 8) as u8, (tag >> 16) as u8];
    if keyframe {
        f.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        f.extend_from_slice(&320u16.to_le_bytes());
        f.extend_from_slice(&240u16.to_le_bytes());
    }
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    while f.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.push(x as u8);
    }
    f
}

/// Test media from a [`Publisher`] until stopped: every 20 ms an 80-byte Opus payload and a
/// [`vp8_test_frame`] of `vp8_len` bytes (a keyframe every 30th), send errors ignored.
/// [`TestMedia::start`] first waits (10 s at most) until the publisher is connected.
#[derive(Debug)]
pub struct TestMedia {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<()>,
}

impl TestMedia {
    pub async fn start(publisher: &Arc<Publisher>, vp8_len: usize) -> Result<TestMedia> {
        publisher.wait_connected(Duration::from_secs(10)).await?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, stopped) = (Arc::clone(publisher), Arc::clone(&stop));
        let task = tokio::spawn(async move {
            let mut n = 0u32;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = p.send_opus(&[n as u8; 80]).await;
                let _ = p
                    .send_vp8(&vp8_test_frame(n % 30 == 0, vp8_len, n as u8))
                    .await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Ok(TestMedia { stop, task })
    }

    /// Stops sending and waits for the sending task.
    pub async fn stop(self) -> Result<()> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriber

#[derive(Default)]
struct Received {
    packets: StdMutex<HashMap<MediaKind, Vec<ReceivedPacket>>>,
    notify: Notify,
}

/// A recv transport, like mediasoup-client's `createRecvTransport` + `consume`.
pub struct Subscriber {
    peer: Peer,
    received: Arc<Received>,
    answer: StdMutex<Option<String>>,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    pub async fn new(opts: ClientOptions) -> Result<Subscriber> {
        Self::with_dtls(opts, DtlsOptions::default()).await
    }

    /// [`Subscriber::new`] presenting the certificate of `dtls` and answering with its DTLS role.
    pub async fn with_dtls(opts: ClientOptions, dtls: DtlsOptions) -> Result<Subscriber> {
        let peer = Peer::new(opts, dtls).await?;
        let received: Arc<Received> = Arc::default();
        let rx = Arc::clone(&received);
        peer.pc
            .on_track(Box::new(move |track, receiver, transceiver| {
                let rx = Arc::clone(&rx);
                Box::pin(async move {
                    let Some(kind) = kind_of(track.kind()) else {
                        return;
                    };
                    let mid = transceiver.mid().map(|m| m.to_string());
                    // Read the SFU's RTCP as a browser does, so the report interceptor sees its
                    // sender reports and our receiver reports carry LSR/DLSR (its RTT).
                    tokio::spawn(async move { while receiver.read_rtcp().await.is_ok() {} });
                    // The read loop must be its own task: on_track handlers are awaited inline.
                    tokio::spawn(async move {
                        while let Ok((pkt, _)) = track.read_rtp().await {
                            lock(&rx.packets)
                                .entry(kind)
                                .or_default()
                                .push(ReceivedPacket {
                                    mid: mid.clone(),
                                    ssrc: pkt.header.ssrc,
                                    sequence_number: pkt.header.sequence_number,
                                    timestamp: pkt.header.timestamp,
                                    payload_type: pkt.header.payload_type,
                                    marker: pkt.header.marker,
                                    payload: pkt.payload.to_vec(),
                                });
                            rx.notify.notify_waiters();
                        }
                    });
                })
            }));
        Ok(Subscriber {
            peer,
            received,
            answer: StdMutex::new(None),
        })
    }

    /// Builds the remote offer from the server's parameters and the consumers' RTP parameters
    /// (as the SFU's `transport.consume` returned them), applies it, answers, and returns the
    /// local DTLS parameters for the SFU's `transport.connect` (role from the answer's a=setup).
    pub async fn connect_and_consume(
        &self,
        server_ice: &IceParameters,
        candidates: &[IceCandidate],
        server_dtls: &DtlsParameters,
        consumers: &[(MediaKind, RtpParameters)],
    ) -> Result<DtlsParameters> {
        if consumers.is_empty() {
            bail!("no consumers");
        }
        let setup = match server_dtls.role {
            DtlsRole::Auto => "actpass",
            DtlsRole::Server => "passive",
            DtlsRole::Client => "active",
        };
        let fingerprint = server_fingerprint(server_dtls)?;
        let cands = self.peer.candidate_lines(candidates).await?;
        let mids: Vec<String> = consumers
            .iter()
            .enumerate()
            .map(|(i, (_, p))| p.mid.clone().unwrap_or_else(|| i.to_string()))
            .collect();
        let mut s = remote_session_header(server_ice, &mids);
        for (i, (kind, p)) in consumers.iter().enumerate() {
            if p.codecs.is_empty() {
                bail!("consumer {i} has no codec");
            }
            let pts: Vec<String> = p
                .codecs
                .iter()
                .map(|c| c.payload_type.to_string())
                .collect();
            s.push_str(&format!(
                "m={} 7 UDP/TLS/RTP/SAVPF {}\r\n",
                kind_str(*kind),
                pts.join(" ")
            ));
            remote_transport_attrs(
                &mut s,
                server_ice,
                &fingerprint,
                setup,
                (i == 0).then_some(&cands[..]),
            );
            let mid = &mids[i];
            s.push_str(&format!("a=mid:{mid}\r\n"));
            s.push_str("a=sendonly\r\n");
            if p.rtcp.reduced_size {
                s.push_str("a=rtcp-rsize\r\n");
            }
            for c in &p.codecs {
                codec_lines(&mut s, c);
            }
            for e in &p.header_extensions {
                s.push_str(&format!("a=extmap:{} {}\r\n", e.id, e.uri));
            }
            let stream_id = format!("ferrosfu-{mid}");
            let track_id = format!("consumer-{mid}");
            s.push_str(&format!("a=msid:{stream_id} {track_id}\r\n"));
            let cname = if p.rtcp.cname.is_empty() {
                "ferrosfu"
            } else {
                &p.rtcp.cname
            };
            for e in &p.encodings {
                let Some(ssrc) = e.ssrc else { continue };
                if let Some(rtx) = e.rtx_ssrc {
                    s.push_str(&format!("a=ssrc-group:FID {ssrc} {rtx}\r\n"));
                }
                for ss in std::iter::once(ssrc).chain(e.rtx_ssrc) {
                    s.push_str(&format!("a=ssrc:{ss} cname:{cname}\r\n"));
                    s.push_str(&format!("a=ssrc:{ss} msid:{stream_id} {track_id}\r\n"));
                }
            }
        }
        self.peer
            .pc
            .set_remote_description(RTCSessionDescription::offer(s)?)
            .await
            .context("apply remote offer")?;
        let answer = self.peer.pc.create_answer(None).await?;
        let answer_sdp = self.peer.set_local_and_gather(answer).await?;
        let dtls = dtls_parameters_from_sdp(&answer_sdp)?;
        if dtls.role == DtlsRole::Auto {
            bail!("the answer left the DTLS role open (a=setup:actpass)");
        }
        *lock(&self.answer) = Some(answer_sdp);
        Ok(dtls)
    }

    /// The local answer, once [`Subscriber::connect_and_consume`] made it.
    pub fn local_sdp(&self) -> Option<String> {
        lock(&self.answer).clone()
    }

    /// The client's ICE ufrag/pwd, once answered.
    pub fn local_ice_parameters(&self) -> Result<IceParameters> {
        let sdp = self.local_sdp().context("not answered yet")?;
        ice_parameters_of(&parse_sdp(&sdp)?)
    }

    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        self.peer.wait_connected(timeout).await
    }

    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.peer.state.borrow()
    }

    /// Every RTP packet received so far on tracks of `kind`, in arrival order.
    pub fn received(&self, kind: MediaKind) -> Vec<ReceivedPacket> {
        lock(&self.received.packets)
            .get(&kind)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until at least `n` packets of `kind` arrived; returns all of them.
    pub async fn wait_packets(
        &self,
        kind: MediaKind,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedPacket>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.received.notify.notified();
            let got = self.received(kind);
            if got.len() >= n {
                return Ok(got);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!(
                    "{} of {n} {} packets within {timeout:?} (state {})",
                    self.received(kind).len(),
                    kind_str(kind),
                    self.connection_state()
                );
            }
        }
    }

    /// Sends a PLI for `media_ssrc` (a consumer's SSRC).
    pub async fn request_keyframe(&self, media_ssrc: u32) -> Result<()> {
        self.peer
            .pc
            .write_rtcp(&[Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            })])
            .await?;
        Ok(())
    }

    pub async fn close(&self) -> Result<()> {
        self.peer.close().await
    }
}
