//! Transports of peers: WebRTC (on the worker's WebRtcServer when there is one, else on ports
//! of their own) and plain RTP (broadcasters), connecting them, ICE restarts, and the watch that
//! closes a peer whose transport failed.

use std::sync::Arc;
use std::time::Duration;

use ferrosfu_fbs::{
    IceParameters, IceState, MediaEvent, NumSctpStreams, PlainTransportDump, PlainTransportOptions,
    SctpOptions, TraceEventType, TransportId, TransportProtocol, WebRtcTransportDump,
    WebRtcTransportListen, WebRtcTransportOptions,
};

use super::api::{Connect, Notification, WebRtcTransportRequest};
use super::state::PeerTransport;
use super::{Room, RoomError, RoomRouter};
use crate::auth::Role;
use crate::media::Transport;
use crate::worker::new_id;

/// A transport whose ICE stays `disconnected` this long closes its peer.
const ICE_DISCONNECTED_GRACE: Duration = Duration::from_secs(20);

/// What a WebRtcTransport listens on: the server's ports, or UDP and/or TCP ports of its own.
pub(super) fn webrtc_options(
    listen: WebRtcTransportListen,
    force_tcp: bool,
) -> WebRtcTransportOptions {
    WebRtcTransportOptions {
        transport_id: TransportId::new(new_id()),
        listen,
        enable_udp: !force_tcp,
        enable_tcp: true,
        prefer_udp: !force_tcp,
        prefer_tcp: force_tcp,
        ice_consent_timeout: 30,
        initial_available_outgoing_bitrate: 1_000_000,
        sctp: None,
    }
}

impl Room {
    /// A new WebRtcTransport on router `rr` of this room.
    pub(super) async fn new_webrtc_transport(
        &self,
        force_tcp: bool,
        sctp: Option<NumSctpStreams>,
        rr: &RoomRouter,
    ) -> Result<Transport, RoomError> {
        let listen = match &rr.server {
            Some(s) => WebRtcTransportListen::Server(s.id().clone()),
            None if force_tcp => {
                WebRtcTransportListen::Individual(self.cx.media.listen(TransportProtocol::Tcp))
            }
            // UDP of every address before TCP of any: UDP candidates get the higher priority.
            None => WebRtcTransportListen::Individual(
                [
                    self.cx.media.listen(TransportProtocol::Udp),
                    self.cx.media.listen(TransportProtocol::Tcp),
                ]
                .concat(),
            ),
        };
        let mut options = webrtc_options(listen, force_tcp);
        options.sctp = sctp.and_then(|n| sctp_options(&self.cx.media.data_channels, n));
        Ok(Transport::create_webrtc(&rr.router, options).await?)
    }

    /// A new plain RTP transport (UDP) on router `rr` of this room and the address to send to.
    pub(super) async fn new_plain_transport(
        &self,
        comedia: bool,
        rtcp_mux: bool,
        rr: &RoomRouter,
    ) -> Result<(Transport, PlainTransportDump, String), RoomError> {
        let addr = self
            .cx
            .media
            .plain()
            .ok_or_else(|| RoomError::Failed("no media listen address".into()))?;
        let t = Transport::create_plain(
            &rr.router,
            PlainTransportOptions {
                transport_id: TransportId::new(new_id()),
                listen_info: addr.listen_info(TransportProtocol::Udp, 0),
                rtcp_listen_info: None,
                rtcp_mux,
                comedia,
                srtp_crypto_suite: None,
            },
        )
        .await?;
        let dump = t
            .plain()
            .ok_or_else(|| RoomError::Failed("no plain transport dump".into()))?;
        Ok((t, dump, addr.public()))
    }

    /// `createWebRtcTransport` of a connected peer.
    pub(crate) async fn create_webrtc_transport(
        self: &Arc<Self>,
        peer_id: &str,
        req: WebRtcTransportRequest,
    ) -> Result<WebRtcTransportDump, RoomError> {
        let role = {
            let st = self.state.lock().await;
            st.may_add_transport(peer_id, &self.cx.media.quotas)?;
            st.peer(peer_id)?.role
        };
        if req.producing && role == Role::Subscribe {
            return Err(RoomError::forbidden("this token may not publish"));
        }
        let rr = self.peer_router(peer_id).await?;
        let t = self
            .new_webrtc_transport(req.force_tcp, req.sctp, &rr)
            .await?;
        let dump = webrtc_dump(&t)?;
        self.add_transport(peer_id, t, req.consuming).await?;
        Ok(dump)
    }

    /// Stores a new transport on the peer and watches it (DTLS failure or ICE disconnected for
    /// too long closes the peer).
    pub(super) async fn add_transport(
        self: &Arc<Self>,
        peer_id: &str,
        t: Transport,
        consuming: bool,
    ) -> Result<(), RoomError> {
        let mut st = self.state.lock().await;
        let Some(peer) = st.peers.get_mut(peer_id) else {
            drop(st);
            let _ = t.close().await;
            return Err(RoomError::peer_gone());
        };
        peer.transports.insert(
            t.id().as_str().to_owned(),
            PeerTransport {
                t: t.clone(),
                consuming,
                next_mid: 0,
                cname_for_producers: None,
            },
        );
        drop(st);
        if t.webrtc().is_some() {
            // A receiving transport reports its downlink estimate to the peer (`downlinkBwe`).
            if consuming {
                t.enable_trace_event(vec![TraceEventType::Bwe]).await?;
            }
            self.watch_transport(peer_id.to_owned(), t);
        }
        Ok(())
    }

    fn watch_transport(self: &Arc<Self>, peer_id: String, t: Transport) {
        let room = Arc::downgrade(self);
        let mut events = t.events();
        tokio::spawn(async move {
            let mut disconnected_since: Option<tokio::time::Instant> = None;
            loop {
                let deadline = disconnected_since.map(|s| s + ICE_DISCONNECTED_GRACE);
                tokio::select! {
                    e = events.recv() => match e {
                        Ok(MediaEvent::TransportDtlsStateChange {
                            state: ferrosfu_fbs::DtlsState::Failed,
                            ..
                        }) =>
                        {
                            if let Some(r) = room.upgrade() {
                                r.close_peer(&peer_id, "DTLS failed").await;
                            }
                            return;
                        }
                        Ok(MediaEvent::TransportBweTrace(b)) => {
                            if let Some(r) = room.upgrade()
                                && let Some(p) = r.state.lock().await.peers.get(&peer_id)
                            {
                                p.notify(&Notification::DownlinkBwe {
                                    desired_bitrate: b.desired_bitrate,
                                    effective_desired_bitrate: b.effective_desired_bitrate,
                                    available_bitrate: b.available_bitrate,
                                });
                            }
                        }
                        Ok(MediaEvent::TransportIceStateChange(s)) => {
                            disconnected_since = (s == IceState::Disconnected)
                                .then(tokio::time::Instant::now);
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return,
                    },
                    _ = async {
                        match deadline {
                            Some(d) => tokio::time::sleep_until(d).await,
                            None => std::future::pending().await,
                        }
                    } => {
                        if let Some(r) = room.upgrade() {
                            r.close_peer(&peer_id, "ICE disconnected").await;
                        }
                        return;
                    }
                    _ = t.closed() => return,
                }
            }
        });
    }

    /// Connects a transport of `peer_id`: DTLS parameters for a WebRtcTransport, the remote
    /// address for a plain one.
    pub(crate) async fn connect_transport(
        &self,
        peer_id: &str,
        transport_id: &str,
        connect: Connect,
    ) -> Result<(), RoomError> {
        let t = self.state.lock().await.transport(peer_id, transport_id)?;
        match (connect, t.webrtc().is_some()) {
            (Connect::WebRtc(dtls), true) => t.connect_webrtc(dtls).await?,
            (
                Connect::Plain {
                    ip,
                    port,
                    rtcp_port,
                },
                false,
            ) => {
                t.connect_plain(ip, port, rtcp_port, None).await?;
            }
            (Connect::WebRtc(_), false) => {
                return Err(RoomError::bad_request("not a WebRTC transport"));
            }
            (Connect::Plain { .. }, true) => {
                return Err(RoomError::bad_request("missing 'dtlsParameters'"));
            }
        }
        Ok(())
    }

    /// New ICE credentials for a WebRtcTransport of `peer_id`.
    pub(crate) async fn restart_ice(
        &self,
        peer_id: &str,
        transport_id: &str,
    ) -> Result<IceParameters, RoomError> {
        let t = self.state.lock().await.transport(peer_id, transport_id)?;
        if t.webrtc().is_none() {
            return Err(RoomError::bad_request("not a WebRTC transport"));
        }
        Ok(t.restart_ice().await?)
    }
}

/// SCTP for a transport whose client asked `requested` streams: each count clamped to 1 and the
/// configured `num_streams`, with the configured sizes. None when data channels are off.
pub(super) fn sctp_options(
    cfg: &crate::config::DataChannels,
    requested: NumSctpStreams,
) -> Option<SctpOptions> {
    let clamp = |n: u16| n.clamp(1, cfg.num_streams);
    cfg.enabled.then(|| SctpOptions {
        num_streams: NumSctpStreams {
            os: clamp(requested.os),
            mis: clamp(requested.mis),
        },
        max_message_size: cfg.max_message_size,
        send_buffer_size: cfg.send_buffer_size,
    })
}

/// What the worker answered when `t` (a WebRtcTransport) was created.
pub(super) fn webrtc_dump(t: &Transport) -> Result<WebRtcTransportDump, RoomError> {
    t.webrtc()
        .ok_or_else(|| RoomError::Failed("no WebRTC transport dump".into()))
}

#[cfg(test)]
mod sctp_tests {
    use super::*;

    #[test]
    fn client_stream_counts_are_clamped_to_the_config() {
        let mut cfg = crate::config::Config::default().data_channels;
        cfg.num_streams = 256;
        let o = sctp_options(&cfg, NumSctpStreams { os: 1024, mis: 0 }).unwrap();
        assert_eq!((o.num_streams.os, o.num_streams.mis), (256, 1));
        assert_eq!(o.max_message_size, cfg.max_message_size);
        cfg.enabled = false;
        assert!(sctp_options(&cfg, NumSctpStreams::default()).is_none());
    }
}
