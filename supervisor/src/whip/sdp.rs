//! An SDP offer as WHIP and WHEP clients send it, read with the `sdp` crate (webrtc-rs) into
//! what the rest of ferrosfu speaks: ICE credentials, DTLS fingerprints and, per m-section, ORTC
//! codecs ([`RtpCodecParameters`]), header extensions, SSRCs, RIDs and simulcast. Pure: no IO.
//!
//! Every client-controlled size is bounded ([`MAX_SDP_BYTES`], [`MAX_SECTIONS`],
//! [`MAX_FORMATS`]); anything that cannot be used is a typed [`SdpError`] (HTTP 400).

use std::collections::BTreeMap;
use std::io::Cursor;

use ::sdp::description::media::MediaDescription;
use ::sdp::description::session::SessionDescription;

use crate::ortc::{MediaKind, ParameterValue, Parameters, RtcpFeedback, RtpCodecParameters};

/// Largest offer accepted (bytes).
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Most m-sections in an offer.
pub const MAX_SECTIONS: usize = 16;
/// Most payload types in one m-section.
pub const MAX_FORMATS: usize = 64;

/// Why an offer cannot be used: the HTTP answer is 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("the SDP offer is larger than {MAX_SDP_BYTES} bytes")]
    TooLarge,
    #[error("malformed SDP: {0}")]
    Malformed(String),
    #[error("the SDP offer has more than {MAX_SECTIONS} m-sections")]
    TooManySections,
    #[error("m-section {0}: more than {MAX_FORMATS} payload types")]
    TooManyFormats(usize),
    #[error("m-section {index}: {reason}")]
    Section { index: usize, reason: String },
    #[error("{0}")]
    Missing(&'static str),
    #[error("{0}")]
    Unusable(String),
}

impl SdpError {
    pub(crate) fn section(index: usize, reason: impl Into<String>) -> Self {
        SdpError::Section {
            index,
            reason: reason.into(),
        }
    }
}

/// The DTLS role the offerer takes (`a=setup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    Actpass,
    Active,
    Passive,
}

/// A direction of an m-section (`a=sendrecv` when absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Dir {
    /// The offerer sends media in this section.
    pub fn sends(self) -> bool {
        matches!(self, Dir::SendRecv | Dir::SendOnly)
    }

    /// The offerer receives media in this section.
    pub fn receives(self) -> bool {
        matches!(self, Dir::SendRecv | Dir::RecvOnly)
    }
}

/// One `a=extmap`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtMap {
    pub id: u8,
    pub uri: String,
}

/// One m-section of an offer.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// "audio", "video", "application", …
    pub media: String,
    /// Port 0: the offerer rejected (or stopped) it.
    pub rejected: bool,
    pub protocol: String,
    /// The payload types in the order of the m-line (the offerer's preference).
    pub formats: Vec<String>,
    pub mid: Option<String>,
    pub dir: Dir,
    /// Codecs with an `a=rtpmap`, in m-line order, with their `a=fmtp` and `a=rtcp-fb`.
    pub codecs: Vec<RtpCodecParameters>,
    pub extmaps: Vec<ExtMap>,
    /// SSRCs in order of first appearance.
    pub ssrcs: Vec<u32>,
    /// `a=ssrc-group:FID media rtx` pairs.
    pub fid: Vec<(u32, u32)>,
    /// `a=ssrc-group:SIM` SSRCs (SDP-munged simulcast), lowest first.
    pub sim: Vec<u32>,
    pub cname: Option<String>,
    /// `a=rid:<id> send` in order, restricted to those `a=simulcast:send` lists when present.
    pub send_rids: Vec<String>,
    pub rtcp_mux: bool,
    pub rtcp_rsize: bool,
}

impl Section {
    /// `audio` or `video`, else None.
    pub fn kind(&self) -> Option<MediaKind> {
        match self.media.as_str() {
            "audio" => Some(MediaKind::Audio),
            "video" => Some(MediaKind::Video),
            _ => None,
        }
    }
}

/// A parsed offer.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// `(algorithm, value)`, e.g. `("sha-256", "AB:CD:…")`.
    pub fingerprints: Vec<(String, String)>,
    pub setup: Setup,
    pub sections: Vec<Section>,
}

/// Parses an offer. Session-level ICE/DTLS attributes apply where a section has none (Firefox
/// puts the fingerprint at session level); the first non-rejected section's values are the
/// bundle's.
pub fn parse_offer(text: &str) -> Result<Offer, SdpError> {
    if text.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge);
    }
    if !text.starts_with("v=") {
        return Err(SdpError::Malformed("it does not start with v=".into()));
    }
    let sd = SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
        .map_err(|e| SdpError::Malformed(e.to_string()))?;
    if sd.media_descriptions.len() > MAX_SECTIONS {
        return Err(SdpError::TooManySections);
    }
    if sd.media_descriptions.is_empty() {
        return Err(SdpError::Missing("the SDP offer has no m-section"));
    }
    let session_attr = |key: &str| -> Option<String> {
        sd.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.clone())
    };
    let mut sections = Vec::with_capacity(sd.media_descriptions.len());
    for (i, md) in sd.media_descriptions.iter().enumerate() {
        sections.push(section(i, md)?);
    }
    let first = sd
        .media_descriptions
        .iter()
        .zip(&sections)
        .find(|(_, s)| !s.rejected)
        .map(|(md, _)| md)
        .ok_or(SdpError::Missing(
            "every m-section of the SDP offer is rejected",
        ))?;
    let attr = |key: &str| -> Option<String> {
        media_value(first, key)
            .map(str::to_owned)
            .or_else(|| session_attr(key))
    };
    let ice_ufrag =
        attr("ice-ufrag").ok_or(SdpError::Missing("the SDP offer has no a=ice-ufrag"))?;
    let ice_pwd = attr("ice-pwd").ok_or(SdpError::Missing("the SDP offer has no a=ice-pwd"))?;
    if ice_ufrag.len() > 256 || ice_pwd.len() > 256 {
        return Err(SdpError::Malformed("ICE credentials over 256 bytes".into()));
    }
    let mut fingerprints: Vec<(String, String)> = first
        .attributes
        .iter()
        .chain(sd.attributes.iter())
        .filter(|a| a.key == "fingerprint")
        .filter_map(|a| a.value.as_deref())
        .filter_map(|v| v.split_once(' '))
        .map(|(alg, val)| (alg.trim().to_ascii_lowercase(), val.trim().to_owned()))
        .collect();
    fingerprints.dedup();
    fingerprints.truncate(8);
    if fingerprints.is_empty() {
        return Err(SdpError::Missing("the SDP offer has no a=fingerprint"));
    }
    let setup = match attr("setup").as_deref() {
        Some("actpass") | None => Setup::Actpass,
        Some("active") => Setup::Active,
        Some("passive") => Setup::Passive,
        Some(other) => {
            return Err(SdpError::Malformed(format!("a=setup:{other}")));
        }
    };
    Ok(Offer {
        ice_ufrag,
        ice_pwd,
        fingerprints,
        setup,
        sections,
    })
}

/// The value of the first `a=key:value` of a section.
fn media_value<'a>(md: &'a MediaDescription, key: &str) -> Option<&'a str> {
    md.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_deref())
}

fn section(index: usize, md: &MediaDescription) -> Result<Section, SdpError> {
    let name = &md.media_name;
    if name.formats.len() > MAX_FORMATS {
        return Err(SdpError::TooManyFormats(index));
    }
    let mut s = Section {
        media: name.media.clone(),
        rejected: name.port.value == 0,
        protocol: name.protos.join("/"),
        formats: name.formats.clone(),
        mid: None,
        dir: Dir::SendRecv,
        codecs: Vec::new(),
        extmaps: Vec::new(),
        ssrcs: Vec::new(),
        fid: Vec::new(),
        sim: Vec::new(),
        cname: None,
        send_rids: Vec::new(),
        rtcp_mux: false,
        rtcp_rsize: false,
    };
    // Per payload type: (name/clock/channels), fmtp, feedback.
    let mut rtpmap: BTreeMap<u8, (String, u32, Option<u8>)> = BTreeMap::new();
    let mut fmtp: BTreeMap<u8, Parameters> = BTreeMap::new();
    let mut fb: Vec<(Option<u8>, RtcpFeedback)> = Vec::new();
    let mut simulcast_send: Option<Vec<String>> = None;
    let bad = |what: &str, v: &str| SdpError::section(index, format!("bad a={what}:{v}"));
    for a in &md.attributes {
        let v = a.value.as_deref().unwrap_or("");
        match a.key.as_str() {
            "mid" => s.mid = Some(v.to_owned()).filter(|m| !m.is_empty() && m.len() <= 32),
            "sendrecv" => s.dir = Dir::SendRecv,
            "sendonly" => s.dir = Dir::SendOnly,
            "recvonly" => s.dir = Dir::RecvOnly,
            "inactive" => s.dir = Dir::Inactive,
            "rtcp-mux" => s.rtcp_mux = true,
            "rtcp-rsize" => s.rtcp_rsize = true,
            "rtpmap" => {
                let (pt, rest) = pt_and_rest(v).ok_or_else(|| bad("rtpmap", v))?;
                let mut parts = rest.split('/');
                let name = parts.next().filter(|n| !n.is_empty());
                let clock = parts.next().and_then(|c| c.trim().parse::<u32>().ok());
                let channels = parts.next().and_then(|c| c.trim().parse::<u8>().ok());
                let (Some(name), Some(clock)) = (name, clock) else {
                    return Err(bad("rtpmap", v));
                };
                if name.len() > 64 {
                    return Err(bad("rtpmap", v));
                }
                rtpmap.insert(pt, (name.to_owned(), clock, channels));
            }
            "fmtp" => {
                let (pt, rest) = pt_and_rest(v).ok_or_else(|| bad("fmtp", v))?;
                fmtp.insert(pt, fmtp_parameters(rest));
            }
            "rtcp-fb" => {
                let (pt, rest) = v.split_once(' ').ok_or_else(|| bad("rtcp-fb", v))?;
                let pt = match pt {
                    "*" => None,
                    p => Some(p.parse::<u8>().map_err(|_| bad("rtcp-fb", v))?),
                };
                let mut it = rest.split_whitespace();
                let kind = it.next().ok_or_else(|| bad("rtcp-fb", v))?;
                let param = it.next().unwrap_or("");
                if fb.len() < 256 {
                    fb.push((pt, RtcpFeedback::new(kind, param)));
                }
            }
            "extmap" => {
                let mut it = v.split_whitespace();
                let id = it.next().ok_or_else(|| bad("extmap", v))?;
                let id = id.split('/').next().unwrap_or("");
                let id = id.parse::<u8>().map_err(|_| bad("extmap", v))?;
                let uri = it.next().ok_or_else(|| bad("extmap", v))?;
                if s.extmaps.len() < 32 {
                    s.extmaps.push(ExtMap {
                        id,
                        uri: uri.to_owned(),
                    });
                }
            }
            "ssrc" => {
                let (ssrc, attr) = v.split_once(' ').unwrap_or((v, ""));
                let ssrc = ssrc.parse::<u32>().map_err(|_| bad("ssrc", v))?;
                if !s.ssrcs.contains(&ssrc) && s.ssrcs.len() < 32 {
                    s.ssrcs.push(ssrc);
                }
                if let Some(c) = attr.strip_prefix("cname:") {
                    if s.cname.is_none() && !c.is_empty() && c.len() <= 256 {
                        s.cname = Some(c.to_owned());
                    }
                }
            }
            "ssrc-group" => {
                let mut it = v.split_whitespace();
                let semantics = it.next().unwrap_or("");
                let ssrcs: Vec<u32> = it
                    .take(8)
                    .map(str::parse::<u32>)
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("ssrc-group", v))?;
                match (semantics, ssrcs.as_slice()) {
                    ("FID", [m, r]) if s.fid.len() < 8 => s.fid.push((*m, *r)),
                    ("SIM", list) if s.sim.is_empty() => s.sim = list.to_vec(),
                    _ => {}
                }
            }
            "rid" => {
                let mut it = v.split_whitespace();
                let (Some(id), Some(dir)) = (it.next(), it.next()) else {
                    return Err(bad("rid", v));
                };
                if dir == "send" && rid_ok(id) && s.send_rids.len() < 8 {
                    s.send_rids.push(id.to_owned());
                }
            }
            "simulcast" => {
                // `send a;b;c` (`~` paused, `,` alternatives: the first one is taken).
                let mut it = v.split_whitespace();
                while let (Some(dir), Some(list)) = (it.next(), it.next()) {
                    if dir == "send" {
                        simulcast_send = Some(
                            list.split(';')
                                .filter_map(|alt| alt.split(',').next())
                                .map(|r| r.trim_start_matches('~').to_owned())
                                .take(8)
                                .collect(),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(list) = simulcast_send {
        s.send_rids.retain(|r| list.contains(r));
        s.send_rids
            .sort_by_key(|r| list.iter().position(|x| x == r).unwrap_or(usize::MAX));
    }
    let kind_prefix = match s.kind() {
        Some(k) => k.as_str(),
        None => return Ok(s),
    };
    for f in &s.formats {
        let Ok(pt) = f.parse::<u8>() else {
            return Err(SdpError::section(index, format!("payload type {f:?}")));
        };
        let Some((name, clock, channels)) = rtpmap.get(&pt) else {
            // A static payload type without rtpmap (PCMU, …): nothing ferrosfu routes.
            continue;
        };
        let parameters = fmtp.get(&pt).cloned().unwrap_or_default();
        let rtcp_feedback = fb
            .iter()
            .filter(|(p, _)| p.is_none_or(|p| p == pt))
            .map(|(_, f)| f.clone())
            .collect();
        s.codecs.push(RtpCodecParameters {
            mime_type: format!("{kind_prefix}/{name}"),
            payload_type: pt,
            clock_rate: *clock,
            channels: if kind_prefix == "audio" {
                channels.or(Some(1))
            } else {
                None
            },
            parameters,
            rtcp_feedback,
        });
    }
    Ok(s)
}

/// `"96 rest"` → `(96, "rest")`.
fn pt_and_rest(v: &str) -> Option<(u8, &str)> {
    let (pt, rest) = v.split_once(' ')?;
    Some((pt.parse().ok()?, rest.trim()))
}

/// A RID as RFC 8851 allows it: 1 to 16 alphanumerics, `-` or `_`.
fn rid_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 16
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `a=fmtp` parameters as mediasoup-client reads them: `key=value` pairs split on `;`, values
/// that are plain unsigned integers as numbers, others (and `profile-level-id`, a hex string)
/// as strings.
fn fmtp_parameters(text: &str) -> Parameters {
    let mut out = Parameters::new();
    for pair in text.split(';').take(32) {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || k.len() > 64 || v.len() > 1024 {
            continue;
        }
        // No leading zero: "0010" stays a string, as it was written.
        let canonical = v == "0" || !v.starts_with('0');
        let value = match v.parse::<u64>() {
            Ok(n) if k != "profile-level-id" && canonical => ParameterValue::Number(n.into()),
            _ => ParameterValue::String(v.to_owned()),
        };
        out.insert(k.to_owned(), value);
    }
    out
}

/// Writes `a=fmtp` parameters back (`key=value;…`), None when there are none.
pub fn fmtp_line(parameters: &Parameters) -> Option<String> {
    if parameters.is_empty() {
        return None;
    }
    Some(
        parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";"),
    )
}
