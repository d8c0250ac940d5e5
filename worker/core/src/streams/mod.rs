//! Per-SSRC stream state, next to the behaviour that uses it: what a producer receives
//! ([`recv`]: sequence validation, loss, NACK, jitter, sender-report mapping), what a consumer
//! sends ([`send`]: output numbering and timeline, receiver-report feedback, score), the
//! retransmission store and the keyframe request throttle.

pub(crate) mod keyframe;
pub(crate) mod layer_rates;
pub(crate) mod layered;
pub(crate) mod layers;
pub(crate) mod recv;
pub(crate) mod retransmit;
pub(crate) mod send;
pub(crate) mod sender_clock;
pub(crate) mod seq_map;
pub(crate) mod svc;
pub(crate) mod svc_layers;
pub(crate) mod vp8;
