//! Wire protocols, each a parser/builder or a sans-IO state machine with no knowledge of
//! transports, producers or consumers: ICE-lite (STUN), DTLS, SRTP, RTP, RTCP, transport-wide
//! congestion control feedback, first-byte demultiplexing (RFC 7983) and RFC 3550 sequence
//! validation.

pub(crate) mod dtls;
pub(crate) mod ice;
pub(crate) mod packet;
pub(crate) mod rtcp;
pub(crate) mod rtp;
pub(crate) mod seq;
pub(crate) mod srtp;
pub(crate) mod twcc;
pub(crate) mod vp8;
pub(crate) mod vp9;
