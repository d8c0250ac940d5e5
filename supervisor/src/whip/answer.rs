//! The SDP answer ferrosfu gives a WHIP or WHEP client, built with the `sdp` crate: ICE-lite,
//! one BUNDLE group over the accepted m-sections, ferrosfu's ICE credentials, host candidates,
//! DTLS fingerprint and role, and per section what was negotiated (a producer's codecs and
//! RIDs to receive, or a consumer's codecs and SSRCs to send). Pure.

use ::sdp::description::common::{Address, Attribute, ConnectionInformation};
use ::sdp::description::media::{MediaDescription, MediaName, RangedPort};
use ::sdp::description::session::SessionDescription;

use ferrosfu_fbs::{IceCandidate, TransportProtocol};

use super::sdp::{Offer, Section, Setup, fmtp_line};
use crate::ortc::RtpParameters;

/// ferrosfu's side of the transport.
#[derive(Clone, Debug)]
pub struct Local {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    pub candidates: Vec<IceCandidate>,
    /// `(algorithm, value)`.
    pub fingerprints: Vec<(String, String)>,
}

/// What one offered m-section is answered with.
#[derive(Clone, Debug)]
pub enum Media {
    /// Port 0 (not usable: e.g. a data channel section, or a second video in WHIP).
    Rejected,
    /// Kept in the bundle, no media (a WHEP player asked for a kind the peer does not send).
    Inactive,
    /// A WHIP producer: ferrosfu receives these codecs (and RIDs).
    Recv(RtpParameters),
    /// A WHEP consumer: ferrosfu sends these codecs and SSRCs as `stream`/`track`.
    Send {
        params: RtpParameters,
        stream: String,
        track: String,
    },
}

/// The DTLS role ferrosfu takes for the offer's `a=setup` (the answerer never says actpass).
pub fn local_setup(offer: Setup) -> &'static str {
    match offer {
        Setup::Actpass | Setup::Active => "passive",
        Setup::Passive => "active",
    }
}

/// One `a=candidate` value (without `candidate:`'s attribute key).
pub fn candidate_value(c: &IceCandidate) -> String {
    let proto = match c.protocol {
        TransportProtocol::Udp => "udp",
        TransportProtocol::Tcp => "tcp",
    };
    let mut v = format!(
        "{} 1 {proto} {} {} {} typ {}",
        c.foundation, c.priority, c.address, c.port, c.kind
    );
    if let Some(t) = &c.tcp_type {
        v.push_str(" tcptype ");
        v.push_str(t);
    }
    v
}

/// The ICE attributes of a restart answer (`application/trickle-ice-sdpfrag`, RFC 8840): the new
/// credentials and the candidates, for the bundle's first mid.
pub fn ice_fragment(local: &Local, mid: Option<&str>) -> String {
    let mut out = format!(
        "a=ice-lite\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
        local.ice_ufrag, local.ice_pwd
    );
    if let Some(mid) = mid {
        out.push_str(&format!("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:{mid}\r\n"));
    }
    for c in &local.candidates {
        out.push_str(&format!("a=candidate:{}\r\n", candidate_value(c)));
    }
    out.push_str("a=end-of-candidates\r\n");
    out
}

/// The answer to `offer`, `media[i]` answering its section `i`.
pub fn answer(offer: &Offer, local: &Local, media: &[Media]) -> String {
    let setup = local_setup(offer.setup);
    let accepted: Vec<&str> = offer
        .sections
        .iter()
        .zip(media)
        .filter(|(_, m)| !matches!(m, Media::Rejected))
        .filter_map(|(s, _)| s.mid.as_deref())
        .collect();
    let mut sd = SessionDescription::new_jsep_session_description(false)
        .with_property_attribute("ice-lite".into())
        .with_value_attribute("msid-semantic".into(), " WMS *".into());
    sd.origin.unicast_address = "127.0.0.1".into();
    if !accepted.is_empty() {
        sd = sd.with_value_attribute("group".into(), format!("BUNDLE {}", accepted.join(" ")));
    }
    for (section, m) in offer.sections.iter().zip(media) {
        sd = sd.with_media(media_section(section, m, local, setup));
    }
    sd.marshal()
}

fn media_section(section: &Section, m: &Media, local: &Local, setup: &str) -> MediaDescription {
    let mut md = MediaDescription {
        media_name: MediaName {
            media: section.media.clone(),
            port: RangedPort {
                value: if matches!(m, Media::Rejected) { 0 } else { 9 },
                range: None,
            },
            protos: section.protocol.split('/').map(str::to_owned).collect(),
            formats: Vec::new(),
        },
        media_title: None,
        connection_information: Some(ConnectionInformation {
            network_type: "IN".into(),
            address_type: "IP4".into(),
            address: Some(Address {
                address: "0.0.0.0".into(),
                ttl: None,
                range: None,
            }),
        }),
        bandwidth: Vec::new(),
        encryption_key: None,
        attributes: Vec::new(),
    };
    let mut attr = |k: &str, v: Option<String>| md.attributes.push(Attribute::new(k.into(), v));
    if let Some(mid) = &section.mid {
        attr("mid", Some(mid.clone()));
    }
    let params = match m {
        Media::Rejected => {
            md.media_name.formats = section.formats.iter().take(1).cloned().collect();
            if md.media_name.formats.is_empty() {
                md.media_name.formats.push("0".into());
            }
            return md;
        }
        Media::Inactive => None,
        Media::Recv(p) | Media::Send { params: p, .. } => Some(p),
    };
    attr("ice-ufrag", Some(local.ice_ufrag.clone()));
    attr("ice-pwd", Some(local.ice_pwd.clone()));
    for (alg, value) in &local.fingerprints {
        attr("fingerprint", Some(format!("{alg} {value}")));
    }
    attr("setup", Some(setup.into()));
    for c in &local.candidates {
        attr("candidate", Some(candidate_value(c)));
    }
    attr("end-of-candidates", None);
    attr("rtcp-mux", None);
    if section.rtcp_rsize {
        attr("rtcp-rsize", None);
    }
    let Some(params) = params else {
        attr("inactive", None);
        // An m-line needs a format: the offer's first codec, unused.
        if let Some(c) = section.codecs.first() {
            md.media_name.formats.push(c.payload_type.to_string());
            md.attributes
                .push(Attribute::new("rtpmap".into(), Some(rtpmap(c))));
        } else {
            md.media_name.formats = section.formats.iter().take(1).cloned().collect();
        }
        return md;
    };
    let mut formats = Vec::new();
    let mut attrs = Vec::new();
    let mut push = |k: &str, v: String| attrs.push(Attribute::new(k.into(), Some(v)));
    for e in &params.header_extensions {
        push("extmap", format!("{} {}", e.id, e.uri));
    }
    for c in &params.codecs {
        formats.push(c.payload_type.to_string());
        push("rtpmap", rtpmap(c));
        if let Some(f) = fmtp_line(&c.parameters) {
            push("fmtp", format!("{} {f}", c.payload_type));
        }
        for fb in &c.rtcp_feedback {
            let v = if fb.parameter.is_empty() {
                format!("{} {}", c.payload_type, fb.kind)
            } else {
                format!("{} {} {}", c.payload_type, fb.kind, fb.parameter)
            };
            push("rtcp-fb", v);
        }
    }
    match m {
        Media::Recv(p) => {
            md.attributes.push(Attribute::new("recvonly".into(), None));
            let rids: Vec<&str> = p
                .encodings
                .iter()
                .filter_map(|e| e.rid.as_deref())
                .collect();
            for rid in &rids {
                push("rid", format!("{rid} recv"));
            }
            if !rids.is_empty() {
                push("simulcast", format!("recv {}", rids.join(";")));
            }
        }
        Media::Send {
            params,
            stream,
            track,
        } => {
            md.attributes.push(Attribute::new("sendonly".into(), None));
            push("msid", format!("{stream} {track}"));
            let cname = params.rtcp.cname.clone().unwrap_or_else(|| stream.clone());
            for e in &params.encodings {
                let Some(ssrc) = e.ssrc else { continue };
                if let Some(rtx) = e.rtx {
                    push("ssrc-group", format!("FID {ssrc} {}", rtx.ssrc));
                }
                for s in std::iter::once(ssrc).chain(e.rtx.map(|r| r.ssrc)) {
                    push("ssrc", format!("{s} cname:{cname}"));
                    push("ssrc", format!("{s} msid:{stream} {track}"));
                }
            }
        }
        _ => {}
    }
    md.media_name.formats = formats;
    md.attributes.extend(attrs);
    md
}

fn rtpmap(c: &crate::ortc::RtpCodecParameters) -> String {
    let name = c
        .mime_type
        .split_once('/')
        .map_or(c.mime_type.as_str(), |(_, n)| n);
    match c.channels {
        Some(ch) if ch > 1 => format!("{} {name}/{}/{ch}", c.payload_type, c.clock_rate),
        _ => format!("{} {name}/{}", c.payload_type, c.clock_rate),
    }
}
