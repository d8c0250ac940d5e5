//! WHIP/WHEP SDP offers as the HTTP API meets them: the body (any bytes; as the API reads it,
//! UTF-8 or refused) goes through the offer parser, the WHIP mapping onto the router's
//! capabilities (producer parameters, checked as `produce` checks them), a WHEP player's
//! capabilities and translation, and the answer writer (`ferrosfu::whip::offer_round_trip`).
//! Checks: nothing panics; an accepted offer gives an answer that parses back; an answer never
//! exceeds the offer's section count.

use ferrosfu::ortc;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let router = ortc::router_rtp_capabilities(&ortc::default_media_codecs())
        .expect("the default router capabilities are valid");
    if let Ok(answer) = ferrosfu::whip::offer_round_trip(text, &router) {
        let offered = ferrosfu::whip::sdp::parse_offer(text)
            .expect("an offer that round-tripped parses")
            .sections
            .len();
        let answered = answer.matches("\nm=").count();
        assert_eq!(offered, answered, "one answer m-section per offered one");
    }
}
