//! WebRtcTransports, PlainTransports and DirectTransports: created on a router, connected,
//! restarted (ICE), closed with it. Producing and consuming on a transport are in
//! `producer.rs` / `consumer.rs`, data in `data_producer.rs` / `data_consumer.rs`.

use std::sync::{Arc, Mutex};

use ferrosfu_fbs::{
    AnyTransportDump, ConnectParams, DirectTransportDump, DirectTransportOptions, DtlsParameters,
    IceParameters, MediaEvent, Method, PlainTransportDump, PlainTransportOptions, SrtpParameters,
    TraceEventType, TransportId, TransportStats, WebRtcTransportDump, WebRtcTransportOptions,
    requests,
};

use super::sctp_ids::SctpStreamIds;
use super::{CloseReason, Life, router_gone};
use crate::channel::{Notifications, RequestError};
use crate::worker::Router;

/// What kind of transport, with what its creation (or the latest connect/dump) returned.
pub type TransportKind = AnyTransportDump;

/// A WebRtcTransport, PlainTransport or DirectTransport. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Transport {
    inner: Arc<TransportInner>,
}

#[derive(Debug)]
struct TransportInner {
    id: TransportId,
    router: Router,
    life: Arc<Life>,
    kind: Mutex<TransportKind>,
    /// SCTP stream ids in use (a WebRtcTransport with SCTP; None otherwise).
    sctp_ids: Option<Mutex<SctpStreamIds>>,
}

fn transport_closing(e: &MediaEvent) -> Option<CloseReason> {
    let _ = e;
    None
}

impl Transport {
    /// `router.create_webrtc_transport`.
    pub async fn create_webrtc(
        router: &Router,
        options: WebRtcTransportOptions,
    ) -> Result<Self, RequestError> {
        let id = options.transport_id.clone();
        let registered = Life::new(
            (&id).into(),
            router.worker().clone(),
            requests::RouterCreateWebRtcTransport::METHOD,
        )?;
        let dump = router
            .worker()
            .request(
                router.id().into(),
                requests::RouterCreateWebRtcTransport(options),
            )
            .await?;
        Ok(Self::new(
            router,
            id,
            registered,
            TransportKind::WebRtc(Box::new(dump)),
        ))
    }

    /// `router.create_plain_transport`.
    pub async fn create_plain(
        router: &Router,
        options: PlainTransportOptions,
    ) -> Result<Self, RequestError> {
        let id = options.transport_id.clone();
        let registered = Life::new(
            (&id).into(),
            router.worker().clone(),
            requests::RouterCreatePlainTransport::METHOD,
        )?;
        let dump = router
            .worker()
            .request(
                router.id().into(),
                requests::RouterCreatePlainTransport(options),
            )
            .await?;
        Ok(Self::new(
            router,
            id,
            registered,
            TransportKind::Plain(Box::new(dump)),
        ))
    }

    /// `router.create_direct_transport`: no network, for `direct` data producers and
    /// consumers (messages to and from the supervisor).
    pub async fn create_direct(
        router: &Router,
        max_message_size: u32,
    ) -> Result<Self, RequestError> {
        let id = TransportId::new(crate::worker::new_id());
        let registered = Life::new(
            (&id).into(),
            router.worker().clone(),
            requests::RouterCreateDirectTransport::METHOD,
        )?;
        router
            .worker()
            .request(
                router.id().into(),
                requests::RouterCreateDirectTransport(DirectTransportOptions {
                    transport_id: id.clone(),
                    max_message_size,
                }),
            )
            .await?;
        let dump = DirectTransportDump {
            id: id.clone(),
            max_message_size,
            data_producer_ids: Vec::new(),
            data_consumer_ids: Vec::new(),
        };
        Ok(Self::new(
            router,
            id,
            registered,
            TransportKind::Direct(Box::new(dump)),
        ))
    }

    fn new(
        router: &Router,
        id: TransportId,
        (life, notes): (Arc<Life>, Notifications),
        kind: TransportKind,
    ) -> Self {
        life.watch(notes, router_gone(router.clone()), transport_closing);
        let sctp_ids = match &kind {
            TransportKind::WebRtc(d) => d
                .sctp_parameters
                .map(|p| Mutex::new(SctpStreamIds::new(p.os))),
            TransportKind::Plain(_) | TransportKind::Direct(_) => None,
        };
        Self {
            inner: Arc::new(TransportInner {
                id,
                router: router.clone(),
                life,
                kind: Mutex::new(kind),
                sctp_ids,
            }),
        }
    }

    pub fn id(&self) -> &TransportId {
        &self.inner.id
    }

    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// What creation (or the latest connect/dump) returned.
    pub fn kind(&self) -> TransportKind {
        self.inner
            .kind
            .lock()
            .expect("never held across a panic")
            .clone()
    }

    /// For a WebRtcTransport: ICE parameters, candidates and DTLS parameters to signal.
    pub fn webrtc(&self) -> Option<WebRtcTransportDump> {
        match self.kind() {
            TransportKind::WebRtc(d) => Some(*d),
            TransportKind::Plain(_) | TransportKind::Direct(_) => None,
        }
    }

    pub fn plain(&self) -> Option<PlainTransportDump> {
        match self.kind() {
            TransportKind::Plain(d) => Some(*d),
            TransportKind::WebRtc(_) | TransportKind::Direct(_) => None,
        }
    }

    life_accessors!("ICE state, selected tuple, DTLS state, comedia tuple notifications.");

    fn store(&self, dump: TransportKind) {
        *self.inner.kind.lock().expect("never held across a panic") = dump;
    }

    /// WebRtcTransport: the remote DTLS parameters.
    pub async fn connect_webrtc(
        &self,
        dtls_parameters: DtlsParameters,
    ) -> Result<(), RequestError> {
        let dump = self
            .inner
            .life
            .request(requests::TransportConnect(ConnectParams::WebRtc {
                dtls_parameters,
            }))
            .await?;
        self.store(dump);
        Ok(())
    }

    /// PlainTransport: the remote address (unless comedia) and SRTP keys (when enabled).
    pub async fn connect_plain(
        &self,
        ip: Option<String>,
        port: Option<u16>,
        rtcp_port: Option<u16>,
        srtp_parameters: Option<SrtpParameters>,
    ) -> Result<PlainTransportDump, RequestError> {
        let dump = self
            .inner
            .life
            .request(requests::TransportConnect(ConnectParams::Plain {
                ip,
                port,
                rtcp_port,
                srtp_parameters,
            }))
            .await?;
        self.store(dump.clone());
        match dump {
            TransportKind::Plain(d) => Ok(*d),
            // The worker refuses Plain parameters for a WebRtcTransport.
            TransportKind::WebRtc(_) | TransportKind::Direct(_) => {
                Err(RequestError::UnexpectedBody {
                    method: Method::TransportConnect,
                    body: "WebRtcTransportDump",
                })
            }
        }
    }

    pub async fn restart_ice(&self) -> Result<IceParameters, RequestError> {
        let p = self
            .inner
            .life
            .request(requests::TransportRestartIce)
            .await?;
        if let TransportKind::WebRtc(d) =
            &mut *self.inner.kind.lock().expect("never held across a panic")
        {
            d.ice_parameters = p.clone();
        }
        Ok(p)
    }

    pub async fn set_max_incoming_bitrate(&self, bitrate: u32) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::TransportSetMaxIncomingBitrate(bitrate))
            .await
    }

    /// A ceiling on the send-side estimate toward the remote (bit/s, 0 = none; else at least
    /// 30000 and not under the minimum).
    pub async fn set_max_outgoing_bitrate(&self, bitrate: u32) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::TransportSetMaxOutgoingBitrate(bitrate))
            .await
    }

    /// A floor under the send-side estimate (bit/s, 0 = the default 30000; not over the
    /// maximum).
    pub async fn set_min_outgoing_bitrate(&self, bitrate: u32) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::TransportSetMinOutgoingBitrate(bitrate))
            .await
    }

    /// The trace events to emit (mediasoup's `enableTraceEvent`): `bwe` traces come as
    /// [`MediaEvent::TransportBweTrace`] notifications.
    pub async fn enable_trace_event(
        &self,
        events: Vec<TraceEventType>,
    ) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::TransportEnableTraceEvent(events))
            .await
    }

    pub async fn get_stats(&self) -> Result<TransportStats, RequestError> {
        self.inner.life.request(requests::TransportGetStats).await
    }

    pub async fn dump(&self) -> Result<TransportKind, RequestError> {
        let dump = self.inner.life.request(requests::TransportDump).await?;
        self.store(dump.clone());
        Ok(dump)
    }

    /// Closes the transport, its producers and consumers. Closing twice is a no-op.
    pub async fn close(&self) -> Result<(), RequestError> {
        self.inner
            .life
            .close_by_user(requests::TransportClose)
            .await
    }

    /// The next free SCTP stream id for a data consumer (None: no SCTP, or all taken).
    pub(super) fn allocate_sctp_stream_id(&self) -> Option<u16> {
        let ids = self.inner.sctp_ids.as_ref()?;
        ids.lock().expect("never held across a panic").allocate()
    }

    pub(super) fn reserve_sctp_stream_id(&self, id: u16) {
        if let Some(ids) = &self.inner.sctp_ids {
            ids.lock().expect("never held across a panic").reserve(id);
        }
    }

    pub(super) fn release_sctp_stream_id(&self, id: u16) {
        if let Some(ids) = &self.inner.sctp_ids {
            ids.lock().expect("never held across a panic").release(id);
        }
    }

    /// Whether this is a WebRtcTransport created with SCTP (data channels).
    pub fn has_sctp(&self) -> bool {
        self.inner.sctp_ids.is_some()
    }

    /// The transport's close state and worker requests, for its producers and consumers.
    pub(super) fn life(&self) -> &Arc<Life> {
        &self.inner.life
    }
}

impl Router {
    /// A DirectTransport on this router (mediasoup's `router.createDirectTransport`).
    pub async fn create_direct_transport(
        &self,
        max_message_size: u32,
    ) -> Result<Transport, RequestError> {
        Transport::create_direct(self, max_message_size).await
    }
}
