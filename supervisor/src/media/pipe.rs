//! PipeTransports and `pipe_to_router`: a producer of one router made a producer (same id) of
//! another router on another worker — of this node, or of another node — so that the far
//! router's consumers get it as if it were published there (mediasoup's `pipeToRouter`).
//!
//! A PipeTransport is a PlainTransport with RTCP multiplexed, no comedia, connected to the
//! other side's address, and SRTP keyed by the supervisors when asked (`enable_srtp`). The
//! source side consumes the producer with a consumer of type `pipe` (every encoding on its own
//! SSRC, timestamps unchanged, RTX when `enable_rtx`), the target side produces with the pipe
//! consumer's parameters. No bandwidth estimation between routers: the pipe parameters carry
//! no transport-wide-cc / abs-send-time extension and no transport-cc / goog-remb feedback.
//!
//! Idempotent per router pair (one PipeTransport pair reused for every producer piped between
//! them, in either direction) and per (producer, target router). Closing cascades both ways:
//! the source producer closing closes the pipe consumer and the far producer; the far
//! producer closing closes the pipe consumer; either PipeTransport closing closes the other.
//! Pause/resume of the source producer reach the far producer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferrosfu_fbs::{
    ConsumeOptions, ConsumerId, ConsumerType, ListenInfo, MediaEvent, PlainTransportOptions,
    ProduceOptions, ProducerId, RouterId, SrtpCryptoSuite, TransportId, TransportProtocol,
};
use tokio::sync::{Mutex, MutexGuard};

use super::{Consumer, Producer, Transport};
use crate::channel::RequestError;
use crate::ortc::{self, OrtcError, RtpCapabilities, RtpParameters};
use crate::worker::{Router, new_id};

/// Where PipeTransports listen and what they do.
#[derive(Clone, Debug)]
pub struct PipeSettings {
    /// The address the PipeTransports bind (127.0.0.1 between workers of one node; the node's
    /// pipe address between nodes).
    pub listen_ip: IpAddr,
    /// The address the other side sends to, when not `listen_ip` (NAT, 0.0.0.0 binds).
    pub announced: Option<String>,
    /// SRTP on the pipe (AEAD_AES_256_GCM keys exchanged by the supervisors).
    pub enable_srtp: bool,
    /// Retransmissions across the pipe (NACK answered with RTX).
    pub enable_rtx: bool,
}

impl Default for PipeSettings {
    fn default() -> Self {
        Self {
            listen_ip: IpAddr::from([127, 0, 0, 1]),
            announced: None,
            enable_srtp: false,
            enable_rtx: true,
        }
    }
}

/// Why a producer could not be piped.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    #[error("both routers are on the same worker: a router's producers are consumed in place")]
    SameWorker,
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Ortc(#[from] OrtcError),
}

/// A producer piped to a router: the far producer (same id) and the parameters its router's
/// consumers are made from.
#[derive(Clone, Debug)]
pub struct PipedProducer {
    pub producer: Producer,
    pub consumable: RtpParameters,
    /// The pipe consumer on the source router.
    pub pipe_consumer: Consumer,
}

/// The PipeTransports of one router toward the others, and what it received through them.
#[derive(Debug, Default)]
pub struct RouterPipes {
    /// Other router → (this side's PipeTransport, the other side's).
    pairs: HashMap<RouterId, (Transport, Transport)>,
    /// Producers piped into this router, by id.
    piped_in: HashMap<ProducerId, PipedProducer>,
    /// Its DirectTransport for data relays (created on the first data pipe).
    pub(super) direct: Option<Transport>,
    /// Data producers relayed into this router, by id.
    pub(super) data_in: HashMap<ferrosfu_fbs::DataProducerId, super::pipe_data::PipedData>,
}

impl RouterPipes {
    /// How many PipeTransport pairs this router has (for metrics).
    pub fn pairs(&self) -> usize {
        self.pairs.len()
    }

    /// This router's side of each of its open PipeTransport pairs.
    pub fn transports(&self) -> Vec<Transport> {
        self.pairs
            .values()
            .map(|(local, _)| local.clone())
            .filter(|t| !t.is_closed())
            .collect()
    }
}

/// A pipe's own parameters for a producer of `consumable` parameters.
fn pipe_parameters(
    consumable: &RtpParameters,
    caps: &RtpCapabilities,
    enable_rtx: bool,
) -> Result<RtpParameters, OrtcError> {
    let mut p = ortc::get_consumer_rtp_parameters(
        consumable,
        caps,
        ortc::ConsumerRtpOptions {
            pipe: true,
            enable_rtx,
        },
        &mut ortc::random_ssrc,
    )?;
    let not_piped = [
        ortc::URI_MID,
        ortc::URI_RTP_STREAM_ID,
        ortc::URI_REPAIRED_RTP_STREAM_ID,
        ortc::URI_TRANSPORT_WIDE_CC,
        ortc::URI_ABS_SEND_TIME,
    ];
    p.header_extensions
        .retain(|e| !not_piped.contains(&e.uri.as_str()));
    for c in &mut p.codecs {
        c.rtcp_feedback
            .retain(|f| f.kind != "transport-cc" && f.kind != "goog-remb");
    }
    for e in &mut p.encodings {
        e.rid = None;
    }
    p.mid = None;
    Ok(p)
}

async fn pipe_transport(router: &Router, s: &PipeSettings) -> Result<Transport, RequestError> {
    Transport::create_plain(
        router,
        PlainTransportOptions {
            transport_id: TransportId::new(new_id()),
            listen_info: ListenInfo {
                protocol: TransportProtocol::Udp,
                ip: s.listen_ip.to_string(),
                announced_address: s.announced.clone(),
                port: 0,
            },
            rtcp_listen_info: None,
            rtcp_mux: true,
            comedia: false,
            srtp_crypto_suite: s.enable_srtp.then_some(SrtpCryptoSuite::AeadAes256Gcm),
        },
    )
    .await
}

/// The source half of a pipe: a consumer of type `pipe` of `producer` (consumable parameters
/// `consumable`) on the PipeTransport `t`, and the pipe's parameters (what the far half
/// produces with). For a pipe to another node, whose far half is [`pipe_produce`] there.
pub async fn pipe_consume(
    t: &Transport,
    producer: &Producer,
    consumable: &RtpParameters,
    caps: &RtpCapabilities,
    enable_rtx: bool,
) -> Result<(Consumer, RtpParameters), PipeError> {
    let params = pipe_parameters(consumable, caps, enable_rtx)?;
    let consumer = t
        .consume(ConsumeOptions {
            consumer_id: ConsumerId::new(new_id()),
            producer_id: producer.id().clone(),
            kind: producer.kind(),
            rtp_parameters: (&params).into(),
            consumable_rtp_encodings: consumable.encodings.iter().map(Into::into).collect(),
            paused: false,
            ignore_dtx: false,
            consumer_type: ConsumerType::Pipe,
            preferred_layers: None,
        })
        .await?;
    Ok((consumer, params))
}

/// The far half of a pipe: the producer `id` (of `kind`) on the PipeTransport `t`, with the
/// pipe's parameters `params` ([`pipe_consume`]'s), and the consumable parameters its router's
/// consumers are made from.
pub async fn pipe_produce(
    t: &Transport,
    id: &ProducerId,
    kind: ferrosfu_fbs::MediaKind,
    params: &RtpParameters,
    caps: &RtpCapabilities,
    paused: bool,
) -> Result<(Producer, RtpParameters), PipeError> {
    let mut produced = params.clone();
    let mapping =
        ortc::get_producer_rtp_parameters_mapping(&mut produced, caps, &mut ortc::random_ssrc)?;
    let ortc_kind = match kind {
        ferrosfu_fbs::MediaKind::Audio => ortc::MediaKind::Audio,
        ferrosfu_fbs::MediaKind::Video => ortc::MediaKind::Video,
    };
    let consumable = ortc::get_consumable_rtp_parameters(ortc_kind, &produced, caps, &mapping)?;
    let far = t
        .produce(ProduceOptions {
            producer_id: id.clone(),
            kind,
            rtp_parameters: (&produced).into(),
            rtp_mapping: (&mapping).into(),
            key_frame_request_delay: 0,
            paused,
        })
        .await?;
    Ok((far, consumable))
}

/// A PipeTransport on `router` (not connected yet: [`connect_pipe`]).
pub async fn create_pipe_transport(
    router: &Router,
    settings: &PipeSettings,
) -> Result<Transport, RequestError> {
    pipe_transport(router, settings).await
}

/// Connects PipeTransport `t` to the other side's address and SRTP key.
pub async fn connect_pipe(
    t: &Transport,
    ip: String,
    port: u16,
    srtp: Option<ferrosfu_fbs::SrtpParameters>,
) -> Result<(), RequestError> {
    t.connect_plain(Some(ip), Some(port), None, srtp).await?;
    Ok(())
}

/// Both routers' pipe tables, `(a's, b's)`, locked in the order of the routers' ids (pipes
/// between the same two routers in opposite directions cannot deadlock).
pub(super) async fn lock_both<'a>(
    a: &'a Router,
    b: &'a Router,
) -> (MutexGuard<'a, RouterPipes>, MutexGuard<'a, RouterPipes>) {
    if a.id().as_str() < b.id().as_str() {
        let ga = a.pipes().lock().await;
        (ga, b.pipes().lock().await)
    } else {
        let gb = b.pipes().lock().await;
        (a.pipes().lock().await, gb)
    }
}

/// Connects `t` to `other`'s local address (and SRTP key).
async fn connect_to(t: &Transport, other: &Transport) -> Result<(), RequestError> {
    let d = other.plain().expect("pipe transports are plain transports");
    connect_pipe(
        t,
        d.tuple.local_address.clone(),
        d.tuple.local_port,
        d.srtp_parameters.clone(),
    )
    .await
}

impl Router {
    /// The PipeTransports of this router and the producers piped into it.
    pub fn pipes(&self) -> &Arc<Mutex<RouterPipes>> {
        &self.inner.pipes
    }

    /// Pipes `producer` of this router (whose consumable parameters are `consumable`) to
    /// `target`: the producer of the same id there, created once (a second call returns the
    /// first one's), through the one PipeTransport pair of the two routers.
    pub async fn pipe_to_router(
        &self,
        producer: &Producer,
        consumable: &RtpParameters,
        caps: &RtpCapabilities,
        target: &Router,
        settings: &PipeSettings,
    ) -> Result<PipedProducer, PipeError> {
        if self.worker().pid() == target.worker().pid() {
            return Err(PipeError::SameWorker);
        }
        let (mut src, mut dst) = lock_both(self, target).await;
        if let Some(p) = dst.piped_in.get(producer.id())
            && !p.producer.is_closed()
        {
            return Ok(p.clone());
        }
        let (local, remote) = match src.pairs.get(target.id()) {
            Some((l, r)) if !l.is_closed() && !r.is_closed() => (l.clone(), r.clone()),
            _ => {
                let (l, r) = self.new_pair(target, settings).await?;
                src.pairs
                    .insert(target.id().clone(), (l.clone(), r.clone()));
                dst.pairs.insert(self.id().clone(), (r.clone(), l.clone()));
                (l, r)
            }
        };
        let (consumer, params) =
            pipe_consume(&local, producer, consumable, caps, settings.enable_rtx).await?;
        let (far, far_consumable) = match pipe_produce(
            &remote,
            producer.id(),
            producer.kind(),
            &params,
            caps,
            consumer.producer_paused(),
        )
        .await
        {
            Ok(v) => v,
            Err(e) => {
                let _ = consumer.close().await;
                return Err(e);
            }
        };
        let piped = PipedProducer {
            producer: far.clone(),
            consumable: far_consumable,
            pipe_consumer: consumer.clone(),
        };
        dst.piped_in.insert(producer.id().clone(), piped.clone());
        tokio::spawn(cascade(consumer, far, target.pipes().clone()));
        tracing::info!(
            producer = %producer.id(),
            from = %self.id().as_str(),
            to = %target.id().as_str(),
            "producer piped"
        );
        Ok(piped)
    }

    /// A new PipeTransport pair between this router and `target`, connected both ways; either
    /// closing closes the other.
    async fn new_pair(
        &self,
        target: &Router,
        settings: &PipeSettings,
    ) -> Result<(Transport, Transport), RequestError> {
        let local = pipe_transport(self, settings).await?;
        let remote = match pipe_transport(target, settings).await {
            Ok(r) => r,
            Err(e) => {
                let _ = local.close().await;
                return Err(e);
            }
        };
        let connected = async {
            connect_to(&local, &remote).await?;
            connect_to(&remote, &local).await
        }
        .await;
        if let Err(e) = connected {
            let _ = local.close().await;
            let _ = remote.close().await;
            return Err(e);
        }
        let (l, r) = (local.clone(), remote.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = l.closed() => { let _ = r.close().await; }
                _ = r.closed() => { let _ = l.close().await; }
            }
        });
        Ok((local, remote))
    }
}

/// Keeps a pipe consumer and its far producer together: the far producer follows the source
/// producer's pause/resume and closes with the consumer; the consumer closes with the far
/// producer.
async fn cascade(consumer: Consumer, far: Producer, far_pipes: Arc<Mutex<RouterPipes>>) {
    let mut events = consumer.events();
    loop {
        tokio::select! {
            _ = consumer.closed() => {
                let _ = far.close().await;
                break;
            }
            _ = far.closed() => {
                let _ = consumer.close().await;
                break;
            }
            e = events.recv() => match e {
                Ok(MediaEvent::ConsumerProducerPause) => { let _ = far.pause().await; }
                Ok(MediaEvent::ConsumerProducerResume) => { let _ = far.resume().await; }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
            },
        }
    }
    let mut pipes = far_pipes.lock().await;
    if pipes
        .piped_in
        .get(far.id())
        .is_some_and(|p| p.producer.is_closed())
    {
        pipes.piped_in.remove(far.id());
    }
}
