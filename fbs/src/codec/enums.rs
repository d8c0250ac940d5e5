//! Typed enums <-> generated enums.

use super::*;

/// Typed enum <-> generated enum, both ways; an unknown generated value is a decode error.
macro_rules! enum_map {
    ($to:ident, $from:ident, $what:literal, $rust:ident, $m:ident::$fb:ident {
        $($r:ident <=> $f:ident),* $(,)?
    }) => {
        pub(super) fn $to(v: $rust) -> $m::$fb {
            match v {
                $($rust::$r => $m::$fb::$f,)*
            }
        }
        pub(super) fn $from(v: $m::$fb) -> Dr<$rust> {
            match v {
                $($m::$fb::$f => Ok($rust::$r),)*
                other => Err(format!(concat!("unknown ", $what, " {}"), other.0)),
            }
        }
    };
}

enum_map!(media_kind_to, media_kind_from, "media kind", MediaKind, fb_rtp::MediaKind {
    Audio <=> AUDIO,
    Video <=> VIDEO,
});
enum_map!(consumer_type_to, consumer_type_from, "consumer type", ConsumerType, fb_rtp::Type {
    Simple <=> SIMPLE,
    Simulcast <=> SIMULCAST,
    Svc <=> SVC,
    Pipe <=> PIPE,
});
enum_map!(protocol_to, protocol_from, "transport protocol", TransportProtocol, fb_tr::Protocol {
    Udp <=> UDP,
    Tcp <=> TCP,
});
enum_map!(ice_state_to, ice_state_from, "ICE state", IceState, fb_tr::IceState {
    New <=> NEW,
    Connected <=> CONNECTED,
    Completed <=> COMPLETED,
    Disconnected <=> DISCONNECTED,
    Closed <=> CLOSED,
});
enum_map!(dtls_state_to, dtls_state_from, "DTLS state", DtlsState, fb_tr::DtlsState {
    New <=> NEW,
    Connecting <=> CONNECTING,
    Connected <=> CONNECTED,
    Failed <=> FAILED,
    Closed <=> CLOSED,
});
enum_map!(dtls_role_to, dtls_role_from, "DTLS role", DtlsRole, fb_wrt::DtlsRole {
    Auto <=> AUTO,
    Client <=> CLIENT,
    Server <=> SERVER,
});
enum_map!(suite_to, suite_from, "SRTP crypto suite", SrtpCryptoSuite, fb_srtp::SrtpCryptoSuite {
    AeadAes256Gcm <=> AEAD_AES_256_GCM,
    AeadAes128Gcm <=> AEAD_AES_128_GCM,
    AesCm128HmacSha1_80 <=> AES_CM_128_HMAC_SHA1_80,
    AesCm128HmacSha1_32 <=> AES_CM_128_HMAC_SHA1_32,
});
enum_map!(trace_event_type_to, trace_event_type_from, "trace event type", TraceEventType,
    fb_tr::TraceEventType {
    Bwe <=> BWE,
});
enum_map!(bwe_type_to, bwe_type_from, "bwe type", BweType, fb_tr::BweType {
    TransportCc <=> TRANSPORT_CC,
    Remb <=> REMB,
});
