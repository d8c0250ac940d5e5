//! A producer consumed onto a loopback PlainTransport: how recorders and transcribers
//! (`crate::captions`) receive a room's media. The consumer is created paused; the caller
//! resumes it once its child listens.

use ferrosfu_fbs::{
    ConsumeOptions, ConsumerId, ListenInfo, PlainTransportOptions, TransportId, TransportProtocol,
};

use crate::media::{Consumer, Transport};
use crate::ortc::{self, ConsumerRtpOptions, RtpCapabilities, RtpParameters};
use crate::rooms::RecordSource;
use crate::worker::new_id;

/// What a child receives of `consumable`: the router's codecs (`caps`), without RTX or header
/// extensions.
pub(crate) fn consumer_params(
    caps: &RtpCapabilities,
    consumable: &RtpParameters,
) -> Result<RtpParameters, String> {
    let mut caps = caps.clone();
    caps.header_extensions.clear();
    let mut ssrc = ortc::random_ssrc;
    ortc::get_consumer_rtp_parameters(
        consumable,
        &caps,
        ConsumerRtpOptions {
            pipe: false,
            enable_rtx: false,
        },
        &mut ssrc,
    )
    .map_err(|e| e.to_string())
}

/// A PlainTransport on 127.0.0.1 (on the producer's own router: a room may span workers)
/// sending RTP to `rtp_port` and RTCP to `rtcp_port` (None: muxed on the RTP port), and on it a
/// paused consumer of `source` with `params`. On error nothing is left open.
pub(crate) async fn consume(
    source: &RecordSource,
    params: &RtpParameters,
    rtp_port: u16,
    rtcp_port: Option<u16>,
) -> Result<(Transport, Consumer), String> {
    let t = Transport::create_plain(
        source.producer.transport().router(),
        PlainTransportOptions {
            transport_id: TransportId::new(new_id()),
            listen_info: ListenInfo {
                protocol: TransportProtocol::Udp,
                ip: "127.0.0.1".into(),
                announced_address: None,
                port: 0,
            },
            rtcp_listen_info: None,
            rtcp_mux: rtcp_port.is_none(),
            comedia: false,
            srtp_crypto_suite: None,
        },
    )
    .await
    .map_err(|e| format!("plain transport: {e}"))?;
    let consumed = async {
        t.connect_plain(Some("127.0.0.1".into()), Some(rtp_port), rtcp_port, None)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        t.consume(ConsumeOptions {
            consumer_id: ConsumerId::new(new_id()),
            producer_id: source.producer.id().clone(),
            kind: source.kind.into(),
            rtp_parameters: params.into(),
            consumable_rtp_encodings: source.consumable.encodings.iter().map(Into::into).collect(),
            paused: true,
            ignore_dtx: false,
            // Simulcast: the best encoding (the default preference).
            consumer_type: ortc::consumer_type(&source.consumable),
            preferred_layers: None,
        })
        .await
        .map_err(|e| format!("consume: {e}"))
    }
    .await;
    match consumed {
        Ok(c) => Ok((t, c)),
        Err(e) => {
            let _ = t.close().await;
            Err(e)
        }
    }
}
