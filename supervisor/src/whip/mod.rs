//! WHIP ingest (RFC 9725) and WHEP playback over HTTP: an SDP offer in, an SDP answer out.
//!
//! A WHIP publisher becomes a broadcaster peer of the room (other peers hear `newPeer` and
//! consume its producers as any other's); a WHEP player becomes a receive-only broadcaster peer
//! that consumes one peer's audio and video. The SDP layer is the `sdp` crate (webrtc-rs):
//! [`sdp`] reads an offer into ORTC terms, [`negotiate`] maps it onto the router's capabilities,
//! [`answer`] writes the answer; all three are pure (fuzz target `sdp_offer`). [`api`] holds the
//! HTTP handlers and the sessions (resources) they create.

pub mod answer;
mod api;
pub mod negotiate;
pub mod sdp;

pub(crate) use api::routes;

/// Runs one offer through everything pure that a WHIP or WHEP request does with it (parse, map
/// to producers against `router`, derive a player's capabilities, write an answer): the fuzz
/// target's entry point. Never panics; errors are what the HTTP API answers 400 with.
pub fn offer_round_trip(
    text: &str,
    router: &crate::ortc::RtpCapabilities,
) -> Result<String, sdp::SdpError> {
    let offer = sdp::parse_offer(text)?;
    let produced: Vec<_> = (offer.sections.iter().enumerate())
        .map(|(i, s)| negotiate::producer_parameters(i, s, router).ok())
        .collect();
    let local = answer::Local {
        ice_ufrag: "ufrag".into(),
        ice_pwd: "password".into(),
        candidates: Vec::new(),
        fingerprints: vec![("sha-256".into(), "00:11".into())],
    };
    if let Ok((_, tr)) = negotiate::receive_capabilities(&offer, router) {
        // A WHEP answer: the same parameters as consumers' would be, in the player's numbering.
        let send: Vec<answer::Media> = (produced.iter())
            .map(|x| match x {
                Some((kind, p)) => {
                    let mut params = p.clone();
                    tr.apply(*kind, &mut params);
                    answer::Media::Send {
                        params,
                        stream: "stream".into(),
                        track: "track".into(),
                    }
                }
                None => answer::Media::Rejected,
            })
            .collect();
        let _ = answer::answer(&offer, &local, &send);
    }
    let media: Vec<answer::Media> = (produced.into_iter())
        .map(|x| x.map_or(answer::Media::Rejected, |(_, p)| answer::Media::Recv(p)))
        .collect();
    let text = answer::answer(&offer, &local, &media);
    // What ferrosfu writes, it can read back.
    sdp::parse_offer(&text)
        .map(|_| text.clone())
        .or_else(|e| match e {
            // An answer rejecting every section has no ICE credentials to read back.
            sdp::SdpError::Missing(_) => Ok(text),
            e => Err(e),
        })
}

#[cfg(test)]
mod tests;
