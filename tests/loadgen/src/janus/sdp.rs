//! The SDP the generator offers (publisher) and answers (subscriber) to Janus, and the few
//! fields it reads from Janus's SDP: ICE credentials, the sha-256 fingerprint, `setup`, `mid`,
//! the udp candidate, and per m-line the payload types and SSRCs (DESIGN-NOTES §3).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, bail};

use super::{Kind, OPUS_PT, PublishMedia, ReceivedStream, VP8_PT};
use crate::types::{DtlsRole, LocalTransport, RemoteTransport};

/// One m-line of a parsed SDP (only what the generator needs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SdpMedia {
    /// "audio", "video", "application".
    pub kind: String,
    pub port: u16,
    pub proto: String,
    /// The format list of the m-line, as written.
    pub formats: Vec<String>,
    pub mid: Option<String>,
    /// sendrecv | sendonly | recvonly | inactive (sendrecv when absent).
    pub direction: String,
    /// (payload type, "codec/clock[/channels]").
    pub rtpmap: Vec<(u8, String)>,
    /// SSRCs in order of first appearance in `a=ssrc:` lines.
    pub ssrcs: Vec<u32>,
    /// `a=ssrc-group:FID primary rtx`.
    pub fid: Option<(u32, u32)>,
    pub ice_ufrag: Option<String>,
    pub ice_pwd: Option<String>,
    pub fingerprint_sha256: Option<String>,
    pub setup: Option<String>,
    /// `a=candidate:` component 1 UDP candidates (address), in order.
    pub candidates: Vec<SocketAddr>,
}

impl SdpMedia {
    /// The payload type of `codec` ("VP8/90000", "opus/48000"), case-insensitive, prefix match
    /// on the rtpmap encoding (so "opus/48000" matches "opus/48000/2").
    pub fn pt_of(&self, codec: &str) -> Option<u8> {
        let codec = codec.to_ascii_lowercase();
        self.rtpmap
            .iter()
            .find(|(_, enc)| enc.to_ascii_lowercase().starts_with(&codec))
            .map(|(pt, _)| *pt)
    }

    /// The SSRC of the media (not the retransmissions): FID primary, else the first `a=ssrc`.
    pub fn primary_ssrc(&self) -> Option<u32> {
        self.fid
            .map(|(p, _)| p)
            .or_else(|| self.ssrcs.first().copied())
    }
}

/// A parsed SDP: session-level ICE/DTLS attributes and the m-lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sdp {
    pub ice_ufrag: Option<String>,
    pub ice_pwd: Option<String>,
    pub fingerprint_sha256: Option<String>,
    pub setup: Option<String>,
    pub bundle: Vec<String>,
    pub media: Vec<SdpMedia>,
}

/// The transport part of a remote SDP (all m-lines are bundled on one transport).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdpTransport {
    pub addr: SocketAddr,
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// Upper-case colon hex.
    pub fingerprint_sha256: String,
    pub setup: String,
}

/// Parses the attributes the generator uses; unknown lines are ignored. Fails only when the
/// text has no `v=` line or an m-line is malformed.
pub fn parse_sdp(text: &str) -> anyhow::Result<Sdp> {
    let mut sdp = Sdp::default();
    let mut seen_v = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("v=") {
            seen_v = true;
            continue;
        }
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split_whitespace();
            let kind = f.next().context("m-line without media")?.to_owned();
            let port = f
                .next()
                .context("m-line without port")?
                .split('/')
                .next()
                .unwrap_or_default()
                .parse()
                .with_context(|| format!("m-line port: {line}"))?;
            let proto = f.next().context("m-line without proto")?.to_owned();
            sdp.media.push(SdpMedia {
                kind,
                port,
                proto,
                formats: f.map(str::to_owned).collect(),
                direction: "sendrecv".to_owned(),
                ..SdpMedia::default()
            });
            continue;
        }
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
        if let Some(m) = sdp.media.last_mut() {
            match name {
                "mid" => m.mid = Some(value.to_owned()),
                "sendrecv" | "sendonly" | "recvonly" | "inactive" => {
                    name.clone_into(&mut m.direction)
                }
                "rtpmap" => {
                    if let Some((pt, enc)) = value.split_once(' ')
                        && let Ok(pt) = pt.parse()
                    {
                        m.rtpmap.push((pt, enc.trim().to_owned()));
                    }
                }
                "ssrc" => {
                    if let Some(ssrc) = value.split_whitespace().next().and_then(|s| s.parse().ok())
                        && !m.ssrcs.contains(&ssrc)
                    {
                        m.ssrcs.push(ssrc);
                    }
                }
                "ssrc-group" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.len() >= 3
                        && f[0] == "FID"
                        && let (Ok(a), Ok(b)) = (f[1].parse(), f[2].parse())
                    {
                        m.fid = Some((a, b));
                    }
                }
                "candidate" => {
                    if let Some(a) = parse_candidate(value) {
                        m.candidates.push(a);
                    }
                }
                "ice-ufrag" => m.ice_ufrag = Some(value.to_owned()),
                "ice-pwd" => m.ice_pwd = Some(value.to_owned()),
                "fingerprint" => {
                    m.fingerprint_sha256 = sha256_value(value).or(m.fingerprint_sha256.take())
                }
                "setup" => m.setup = Some(value.to_owned()),
                _ => {}
            }
        } else {
            match name {
                "group" => {
                    let mut f = value.split_whitespace();
                    if f.next() == Some("BUNDLE") {
                        sdp.bundle = f.map(str::to_owned).collect();
                    }
                }
                "ice-ufrag" => sdp.ice_ufrag = Some(value.to_owned()),
                "ice-pwd" => sdp.ice_pwd = Some(value.to_owned()),
                "fingerprint" => {
                    sdp.fingerprint_sha256 = sha256_value(value).or(sdp.fingerprint_sha256.take())
                }
                "setup" => sdp.setup = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    if !seen_v {
        bail!("not an SDP (no v= line)");
    }
    Ok(sdp)
}

fn sha256_value(value: &str) -> Option<String> {
    let (alg, fp) = value.split_once(' ')?;
    alg.eq_ignore_ascii_case("sha-256")
        .then(|| fp.trim().to_ascii_uppercase())
}

/// `foundation component transport priority address port typ type ...` → the address of a
/// component-1 UDP candidate.
fn parse_candidate(value: &str) -> Option<SocketAddr> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() < 8 || f[1] != "1" || !f[2].eq_ignore_ascii_case("udp") {
        return None;
    }
    let ip: IpAddr = f[4].parse().ok()?;
    Some(SocketAddr::new(ip, f[5].parse().ok()?))
}

impl Sdp {
    /// ICE credentials, fingerprint, setup and the UDP candidate (IPv4 first) of the bundle
    /// transport: the first m-line that is not rejected, falling back to session level.
    pub fn transport(&self) -> anyhow::Result<SdpTransport> {
        let m = self.media.iter().find(|m| m.port != 0);
        let pick = |media: Option<&String>, session: &Option<String>, what: &str| {
            media
                .or(session.as_ref())
                .cloned()
                .with_context(|| format!("SDP without {what}"))
        };
        let candidates: Vec<SocketAddr> = self
            .media
            .iter()
            .flat_map(|m| m.candidates.iter().copied())
            .collect();
        let addr = candidates
            .iter()
            .find(|a| a.is_ipv4())
            .or(candidates.first())
            .copied()
            .context("SDP without a UDP candidate (is Janus gathering on the bench veth?)")?;
        Ok(SdpTransport {
            addr,
            ice_ufrag: pick(
                m.and_then(|m| m.ice_ufrag.as_ref()),
                &self.ice_ufrag,
                "ice-ufrag",
            )?,
            ice_pwd: pick(m.and_then(|m| m.ice_pwd.as_ref()), &self.ice_pwd, "ice-pwd")?,
            fingerprint_sha256: pick(
                m.and_then(|m| m.fingerprint_sha256.as_ref()),
                &self.fingerprint_sha256,
                "a sha-256 fingerprint",
            )?,
            setup: pick(m.and_then(|m| m.setup.as_ref()), &self.setup, "setup")?,
        })
    }
}

/// Our DTLS role given the remote's `a=setup` in its answer (we offered actpass).
pub(super) fn role_from_answer(setup: &str) -> anyhow::Result<DtlsRole> {
    match setup {
        "active" => Ok(DtlsRole::Server),
        "passive" => Ok(DtlsRole::Client),
        other => bail!("answer with setup:{other} (expected active or passive)"),
    }
}

fn session_id(local: &LocalTransport) -> u64 {
    // FNV-1a of the ufrag: distinct per peer, deterministic for tests.
    local
        .ice_ufrag
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
        >> 1
}

fn push_transport_attrs(s: &mut String, local: &LocalTransport, setup: &str) {
    let _ = write!(
        s,
        "c=IN IP4 {ip}\r\na=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\na=fingerprint:sha-256 {fp}\r\na=setup:{setup}\r\n",
        ip = ip4_or_any(local.addr.ip()),
        u = local.ice_ufrag,
        p = local.ice_pwd,
        fp = local.fingerprint_sha256,
    );
}

fn push_candidate(s: &mut String, local: &LocalTransport) {
    let _ = write!(
        s,
        "a=candidate:1 1 udp 2130706431 {} {} typ host\r\na=end-of-candidates\r\n",
        local.addr.ip(),
        local.addr.port()
    );
}

fn ip4_or_any(ip: IpAddr) -> IpAddr {
    if ip.is_ipv4() {
        ip
    } else {
        IpAddr::from([0, 0, 0, 0])
    }
}

/// The publisher's offer: sendonly, `setup:actpass`, BUNDLE + rtcp-mux + rtcp-rsize, one m-line
/// per SSRC of `media` (audio mid "0" first when present, then video), our host candidate.
pub fn publisher_offer(local: &LocalTransport, media: &PublishMedia) -> anyhow::Result<String> {
    let mut lines: Vec<(Kind, u32)> = Vec::new();
    if let Some(s) = media.audio_ssrc {
        lines.push((Kind::Audio, s));
    }
    if let Some(s) = media.video_ssrc {
        lines.push((Kind::Video, s));
    }
    if lines.is_empty() {
        bail!("a publisher needs an audio or a video SSRC");
    }
    let mids: Vec<String> = (0..lines.len()).map(|i| i.to_string()).collect();
    let mut s = format!(
        "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\n",
        session_id(local),
        mids.join(" ")
    );
    for ((kind, ssrc), mid) in lines.iter().zip(&mids) {
        let pt = match kind {
            Kind::Audio => OPUS_PT,
            Kind::Video => VP8_PT,
        };
        let _ = write!(s, "m={} 9 UDP/TLS/RTP/SAVPF {pt}\r\n", kind.as_str());
        push_transport_attrs(&mut s, local, "actpass");
        let _ = write!(
            s,
            "a=mid:{mid}\r\na=sendonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n"
        );
        match kind {
            Kind::Audio => {
                let _ = write!(
                    s,
                    "a=rtpmap:{pt} opus/48000/2\r\na=fmtp:{pt} minptime=10;useinbandfec=1\r\n"
                );
            }
            Kind::Video => {
                let _ = write!(
                    s,
                    "a=rtpmap:{pt} VP8/90000\r\na=rtcp-fb:{pt} nack\r\na=rtcp-fb:{pt} nack pli\r\na=rtcp-fb:{pt} ccm fir\r\n"
                );
            }
        }
        let _ = write!(s, "a=ssrc:{ssrc} cname:{}\r\n", media.cname);
        push_candidate(&mut s, local);
    }
    Ok(s)
}

/// Our answer to a subscriber offer: `recvonly`, `setup:active`, the offer's mids, one payload
/// type per m-line (VP8 for video, Opus for audio; no rtx, no extmaps, no rtcp-fb), rtcp-mux;
/// m-lines we cannot take (other codecs, data channels, inactive or rejected) are rejected
/// with port 0. Returns the SDP and the streams Janus will send.
pub fn subscriber_answer(
    offer: &Sdp,
    local: &LocalTransport,
) -> anyhow::Result<(String, Vec<ReceivedStream>)> {
    let mut body = String::new();
    let mut bundle = Vec::new();
    let mut streams = Vec::new();
    for (i, m) in offer.media.iter().enumerate() {
        let mid = m.mid.clone().unwrap_or_else(|| i.to_string());
        let codec = match m.kind.as_str() {
            "audio" => Some((Kind::Audio, "opus/48000")),
            "video" => Some((Kind::Video, "VP8/90000")),
            _ => None,
        };
        let accepted = codec.and_then(|(kind, c)| {
            let pt = m.pt_of(c)?;
            let sends = m.port != 0 && matches!(m.direction.as_str(), "sendonly" | "sendrecv");
            sends.then_some((kind, pt))
        });
        let Some((kind, pt)) = accepted else {
            let _ = write!(
                body,
                "m={} 0 {} {}\r\n",
                m.kind,
                m.proto,
                m.formats.join(" ")
            );
            let _ = write!(body, "c=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=inactive\r\n");
            continue;
        };
        let ssrc = m
            .primary_ssrc()
            .with_context(|| format!("offer m-line {mid} ({}) without a=ssrc", m.kind))?;
        let enc = m
            .rtpmap
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, e)| e.as_str())
            .unwrap_or_default();
        let _ = write!(body, "m={} 9 {} {pt}\r\n", m.kind, m.proto);
        push_transport_attrs(&mut body, local, "active");
        let _ = write!(
            body,
            "a=mid:{mid}\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:{pt} {enc}\r\n"
        );
        push_candidate(&mut body, local);
        bundle.push(mid.clone());
        streams.push(ReceivedStream {
            kind,
            mid,
            ssrc,
            pt,
        });
    }
    if streams.is_empty() {
        bail!("the offer has no VP8 or Opus stream to receive");
    }
    let s = format!(
        "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\n{body}",
        session_id(local),
        bundle.join(" ")
    );
    Ok((s, streams))
}

pub(super) fn remote_transport(t: SdpTransport, our_dtls_role: DtlsRole) -> RemoteTransport {
    RemoteTransport {
        addr: t.addr,
        ice_ufrag: t.ice_ufrag,
        ice_pwd: t.ice_pwd,
        ice_lite: false,
        fingerprint_sha256: t.fingerprint_sha256,
        our_dtls_role,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from Janus 1.1.2 in the bench netns (tests/loadgen/janus/fixtures/).
    const PUB_ANSWER: &str = include_str!("../../janus/fixtures/publisher-answer.sdp");
    const SUB_OFFER: &str = include_str!("../../janus/fixtures/subscriber-offer.sdp");

    fn local() -> LocalTransport {
        LocalTransport {
            addr: "127.0.0.2:40000".parse().unwrap(),
            ice_ufrag: "lgufrag1".into(),
            ice_pwd: "lg-password-0123456789abcd".into(),
            fingerprint_sha256: "AB:CD:EF".into(),
        }
    }

    #[test]
    fn publisher_offer_audio_and_video() {
        let media = PublishMedia {
            audio_ssrc: Some(1111),
            video_ssrc: Some(2222),
            cname: "lg".into(),
        };
        let offer = publisher_offer(&local(), &media).unwrap();
        assert!(offer.starts_with("v=0\r\n"));
        assert!(
            offer.lines().all(|l| !l.is_empty()),
            "no empty lines:\n{offer}"
        );
        assert!(offer.ends_with("\r\n"));
        let p = parse_sdp(&offer).unwrap();
        assert_eq!(p.bundle, ["0", "1"]);
        assert_eq!(p.media.len(), 2);
        let (a, v) = (&p.media[0], &p.media[1]);
        assert_eq!(
            (a.kind.as_str(), a.mid.as_deref(), a.formats.as_slice()),
            ("audio", Some("0"), &["111".to_owned()][..])
        );
        assert_eq!(
            (v.kind.as_str(), v.mid.as_deref(), v.formats.as_slice()),
            ("video", Some("1"), &["96".to_owned()][..])
        );
        assert_eq!(a.pt_of("opus/48000"), Some(OPUS_PT));
        assert_eq!(v.pt_of("vp8/90000"), Some(VP8_PT));
        assert_eq!(
            (a.ssrcs.as_slice(), v.ssrcs.as_slice()),
            (&[1111][..], &[2222][..])
        );
        for m in &p.media {
            assert_eq!(m.direction, "sendonly");
            assert_eq!(m.setup.as_deref(), Some("actpass"));
            assert_eq!(
                m.candidates,
                ["127.0.0.2:40000".parse::<SocketAddr>().unwrap()]
            );
        }
        for want in [
            "a=rtcp-mux\r\n",
            "a=rtcp-rsize\r\n",
            "a=rtcp-fb:96 nack pli\r\n",
            "a=ssrc:2222 cname:lg\r\n",
        ] {
            assert!(offer.contains(want), "{want:?} missing:\n{offer}");
        }
        let t = p.transport().unwrap();
        assert_eq!(
            (t.ice_ufrag.as_str(), t.fingerprint_sha256.as_str()),
            ("lgufrag1", "AB:CD:EF")
        );
    }

    #[test]
    fn publisher_offer_video_only() {
        let media = PublishMedia {
            audio_ssrc: None,
            video_ssrc: Some(7),
            cname: "c".into(),
        };
        let p = parse_sdp(&publisher_offer(&local(), &media).unwrap()).unwrap();
        assert_eq!(p.bundle, ["0"]);
        assert_eq!(p.media.len(), 1);
        assert_eq!(p.media[0].kind, "video");
        let none = PublishMedia {
            audio_ssrc: None,
            video_ssrc: None,
            cname: "c".into(),
        };
        assert!(publisher_offer(&local(), &none).is_err());
    }

    #[test]
    fn janus_publisher_answer() {
        let p = parse_sdp(PUB_ANSWER).unwrap();
        let t = p.transport().unwrap();
        assert_eq!(t.setup, "active");
        assert_eq!(role_from_answer(&t.setup).unwrap(), DtlsRole::Server);
        assert_eq!(t.addr.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_ne!(t.addr.port(), 0);
        assert!(!t.ice_ufrag.is_empty() && !t.ice_pwd.is_empty());
        assert_eq!(t.fingerprint_sha256.len(), 32 * 3 - 1);
        assert!(
            t.fingerprint_sha256
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase() || c == ':')
        );
        assert!(p.media.iter().all(|m| m.direction == "recvonly"));
    }

    #[test]
    fn janus_subscriber_offer_and_our_answer() {
        let offer = parse_sdp(SUB_OFFER).unwrap();
        let t = offer.transport().unwrap();
        assert_eq!(t.setup, "actpass");
        assert_eq!(t.addr.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
        let video = offer.media.iter().find(|m| m.kind == "video").unwrap();
        assert!(video.fid.is_some(), "Janus offers rtx with an FID group");
        assert_eq!(video.primary_ssrc(), video.fid.map(|f| f.0));

        let (answer, streams) = subscriber_answer(&offer, &local()).unwrap();
        let kinds: Vec<Kind> = streams.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [Kind::Audio, Kind::Video]);
        for s in &streams {
            let m = offer
                .media
                .iter()
                .find(|m| m.mid.as_deref() == Some(&s.mid))
                .unwrap();
            assert_eq!(Some(s.ssrc), m.primary_ssrc());
            assert_eq!(
                s.pt,
                if s.kind == Kind::Video {
                    m.pt_of("VP8/90000")
                } else {
                    m.pt_of("opus")
                }
                .unwrap()
            );
        }
        let a = parse_sdp(&answer).unwrap();
        assert_eq!(a.media.len(), offer.media.len());
        for (am, om) in a.media.iter().zip(&offer.media) {
            assert_eq!(am.mid, om.mid);
            assert_eq!(am.direction, "recvonly");
            assert_eq!(am.setup.as_deref(), Some("active"));
            assert_eq!(am.formats.len(), 1, "one payload type per m-line");
            assert!(am.ssrcs.is_empty());
        }
        assert_eq!(
            a.bundle,
            offer
                .media
                .iter()
                .filter_map(|m| m.mid.clone())
                .collect::<Vec<_>>()
        );
        for absent in ["rtx", "extmap", "rtcp-fb", "ssrc-group", "actpass"] {
            assert!(
                !answer.contains(absent),
                "{absent} in our answer:\n{answer}"
            );
        }
    }

    #[test]
    fn answer_rejects_what_we_cannot_receive() {
        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n\
            a=fingerprint:sha-256 aa:bb\r\na=setup:actpass\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 98\r\na=mid:0\r\na=sendonly\r\na=rtpmap:98 H264/90000\r\na=ssrc:5 cname:j\r\n\
            a=candidate:1 1 udp 1 127.0.0.2 20000 typ host\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n\
            a=ssrc-group:FID 10 11\r\na=ssrc:10 cname:j\r\na=ssrc:11 cname:j\r\n\
            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";
        let offer = parse_sdp(offer).unwrap();
        let t = offer.transport().unwrap();
        assert_eq!(t.fingerprint_sha256, "AA:BB");
        let (answer, streams) = subscriber_answer(&offer, &local()).unwrap();
        assert_eq!(
            streams,
            [ReceivedStream {
                kind: Kind::Video,
                mid: "1".into(),
                ssrc: 10,
                pt: 96
            }]
        );
        let a = parse_sdp(&answer).unwrap();
        assert_eq!(a.bundle, ["1"]);
        assert_eq!(
            a.media.iter().map(|m| m.port).collect::<Vec<_>>(),
            [0, 9, 0]
        );
        assert_eq!(a.media[2].kind, "application");
    }

    #[test]
    fn parse_errors() {
        assert!(parse_sdp("hello").is_err());
        let no_candidate = "v=0\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\na=fingerprint:sha-256 AA\r\na=setup:active\r\nm=video 9 X 96\r\n";
        assert!(parse_sdp(no_candidate).unwrap().transport().is_err());
        assert!(role_from_answer("actpass").is_err());
    }
}
