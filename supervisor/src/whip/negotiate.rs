//! Offer → ORTC: a WHIP publisher's m-sections become producer [`RtpParameters`] the router
//! accepts; a WHEP player's m-sections become the [`RtpCapabilities`] it can receive. Pure.

use super::sdp::{ExtMap, Offer, SdpError, Section};
use crate::ortc::{
    self, Direction, MediaKind, RtcpParameters, RtpCapabilities, RtpCodecCapability,
    RtpEncodingParameters, RtpHeaderExtension, RtpHeaderExtensionParameters, RtpParameters,
    RtxParameters,
};

/// The producer a WHIP client's m-section `index` becomes: its first codec (in the offerer's
/// order) the router supports, that codec's RTX, the feedback and header extensions both sides
/// have, one encoding per SSRC (RTX from `a=ssrc-group:FID`), per `a=ssrc-group:SIM` SSRC, or
/// per simulcast RID.
pub fn producer_parameters(
    index: usize,
    section: &Section,
    router: &RtpCapabilities,
) -> Result<(MediaKind, RtpParameters), SdpError> {
    let kind = section.kind().ok_or_else(|| {
        SdpError::section(index, format!("{} cannot be published", section.media))
    })?;
    let mid = section
        .mid
        .clone()
        .ok_or_else(|| SdpError::section(index, "no a=mid"))?;
    let (codec, cap) = section
        .codecs
        .iter()
        .find_map(|c| ortc::matching_codec(router, c).map(|cap| (c, cap)))
        .ok_or_else(|| {
            let offered: Vec<&str> = section
                .codecs
                .iter()
                .map(|c| c.mime_type.as_str())
                .collect();
            SdpError::section(
                index,
                format!("no codec ferrosfu routes among {}", offered.join(", ")),
            )
        })?;
    let mut chosen = codec.clone();
    chosen
        .rtcp_feedback
        .retain(|f| cap.rtcp_feedback.contains(f));
    let mut codecs = vec![chosen];
    let router_has_rtx = router
        .codecs
        .iter()
        .any(|c| c.is_rtx() && c.apt() == cap.preferred_payload_type);
    if let Some(rtx) = section
        .codecs
        .iter()
        .find(|c| c.is_rtx() && c.apt() == Some(codec.payload_type))
        .filter(|_| router_has_rtx)
    {
        let mut rtx = rtx.clone();
        rtx.rtcp_feedback.clear();
        codecs.push(rtx);
    }
    let has_rtx = codecs.len() > 1;
    let header_extensions = section
        .extmaps
        .iter()
        .filter(|e| router_receives(router, kind, &e.uri))
        .map(|e| RtpHeaderExtensionParameters {
            uri: e.uri.clone(),
            id: e.id,
            encrypt: false,
            parameters: Default::default(),
        })
        .collect::<Vec<_>>();
    let rtx_of = |ssrc: u32| {
        section
            .fid
            .iter()
            .find(|(m, _)| *m == ssrc)
            .filter(|_| has_rtx)
            .map(|(_, r)| RtxParameters { ssrc: *r })
    };
    let encodings: Vec<RtpEncodingParameters> = if !section.send_rids.is_empty() {
        if !header_extensions
            .iter()
            .any(|e| e.uri == ortc::URI_RTP_STREAM_ID)
        {
            return Err(SdpError::section(
                index,
                "simulcast RIDs without the rtp-stream-id header extension",
            ));
        }
        section
            .send_rids
            .iter()
            .map(|rid| RtpEncodingParameters {
                rid: Some(rid.clone()),
                ..Default::default()
            })
            .collect()
    } else {
        let media_ssrcs: Vec<u32> = if section.sim.len() > 1 {
            section.sim.clone()
        } else {
            // The first SSRC that is not some FID pair's RTX.
            section
                .ssrcs
                .iter()
                .copied()
                .find(|s| !section.fid.iter().any(|(_, r)| r == s))
                .into_iter()
                .collect()
        };
        if media_ssrcs.is_empty() {
            return Err(SdpError::section(
                index,
                "no a=ssrc and no a=rid: the stream cannot be identified",
            ));
        }
        media_ssrcs
            .into_iter()
            .map(|ssrc| RtpEncodingParameters {
                ssrc: Some(ssrc),
                rtx: rtx_of(ssrc),
                ..Default::default()
            })
            .collect()
    };
    let mut params = RtpParameters {
        mid: Some(mid),
        codecs,
        header_extensions,
        encodings,
        rtcp: RtcpParameters {
            cname: section.cname.clone(),
            reduced_size: section.rtcp_rsize,
        },
    };
    // What `produce` will check, checked now; H264's profile-level-id becomes the answer's.
    ortc::get_producer_rtp_parameters_mapping(&mut params, router, &mut || 1)
        .map_err(|e| SdpError::section(index, e.to_string()))?;
    Ok((kind, params))
}

/// The router takes this header extension from producers of `kind`.
fn router_receives(router: &RtpCapabilities, kind: MediaKind, uri: &str) -> bool {
    router.header_extensions.iter().any(|h| {
        h.kind == kind
            && h.uri == uri
            && matches!(h.direction, Direction::Sendrecv | Direction::Recvonly)
    })
}

/// How a consumer's parameters, computed in the router's numbering, become the player's: its
/// payload types and header extension ids as its offer numbered them (the worker rewrites each
/// packet's payload type and extension ids to the consumer's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Translation {
    /// Router payload type → the offer's.
    pts: Vec<(u8, u8)>,
    /// `(kind, uri)` → the offer's extension id.
    exts: Vec<(MediaKind, String, u8)>,
}

impl Translation {
    /// `params` (a consumer's, of `kind`) in the offer's numbering; codecs or extensions the
    /// offer does not have are dropped.
    pub fn apply(&self, kind: MediaKind, params: &mut RtpParameters) {
        let pt = |p: u8| self.pts.iter().find(|(r, _)| *r == p).map(|(_, o)| *o);
        params.codecs.retain(|c| pt(c.payload_type).is_some());
        for c in &mut params.codecs {
            c.payload_type = pt(c.payload_type).unwrap_or(c.payload_type);
            if let Some(apt) = c.apt().and_then(pt) {
                c.parameters.insert("apt".into(), apt.into());
            }
        }
        for e in &mut params.encodings {
            e.codec_payload_type = e.codec_payload_type.and_then(pt);
        }
        params.header_extensions.retain_mut(|h| {
            match self.exts.iter().find(|(k, u, _)| *k == kind && *u == h.uri) {
                Some((_, _, id)) => {
                    h.id = *id;
                    true
                }
                None => false,
            }
        });
    }
}

/// What a WHEP player can receive, in the router's numbering (so consumers are computed as for
/// any peer), and the [`Translation`] back to the offer's numbering. Its receiving audio and
/// video sections' codecs the router routes (in offer order; RTX when offered for them) and
/// header extensions the router sends.
pub fn receive_capabilities(
    offer: &Offer,
    router: &RtpCapabilities,
) -> Result<(RtpCapabilities, Translation), SdpError> {
    let mut caps = RtpCapabilities::default();
    let mut tr = Translation::default();
    for s in offer
        .sections
        .iter()
        .filter(|s| !s.rejected && s.dir.receives())
    {
        let Some(kind) = s.kind() else { continue };
        for c in s.codecs.iter().filter(|c| !c.is_rtx()) {
            let Some(cap) = ortc::matching_codec(router, c) else {
                continue;
            };
            let Some(router_pt) = cap.preferred_payload_type else {
                continue;
            };
            if tr
                .pts
                .iter()
                .any(|(r, o)| *r == router_pt || *o == c.payload_type)
            {
                continue;
            }
            tr.pts.push((router_pt, c.payload_type));
            caps.codecs.push(RtpCodecCapability {
                kind,
                mime_type: cap.mime_type.clone(),
                preferred_payload_type: Some(router_pt),
                clock_rate: cap.clock_rate,
                channels: cap.channels,
                parameters: c.parameters.clone(),
                rtcp_feedback: c.rtcp_feedback.clone(),
            });
            let offered_rtx = s
                .codecs
                .iter()
                .find(|x| x.is_rtx() && x.apt() == Some(c.payload_type));
            let router_rtx = router
                .codecs
                .iter()
                .find(|x| x.is_rtx() && x.apt() == Some(router_pt));
            if let (Some(o), Some(r)) = (offered_rtx, router_rtx) {
                if let Some(rpt) = r.preferred_payload_type {
                    tr.pts.push((rpt, o.payload_type));
                    caps.codecs.push(r.clone());
                }
            }
        }
        for ExtMap { id, uri } in &s.extmaps {
            let Some(h) = router
                .header_extensions
                .iter()
                .find(|h| h.kind == kind && &h.uri == uri)
            else {
                continue;
            };
            if tr.exts.iter().any(|(k, u, _)| *k == kind && u == uri) {
                continue;
            }
            tr.exts.push((kind, uri.clone(), *id));
            caps.header_extensions.push(RtpHeaderExtension {
                kind,
                uri: uri.clone(),
                preferred_id: h.preferred_id,
                preferred_encrypt: false,
                direction: Direction::Sendrecv,
            });
        }
    }
    if caps.codecs.is_empty() {
        return Err(SdpError::Unusable(
            "the offer receives no codec ferrosfu routes".into(),
        ));
    }
    ortc::validate_rtp_capabilities(&caps).map_err(|e| SdpError::Unusable(e.to_string()))?;
    Ok((caps, tr))
}
