//! PlainTransport: plain RTP/RTCP (or SDES-keyed SRTP) to a remote given by `connect`, or
//! learned from the first packet received (comedia), on one socket or an RTP and an RTCP one.

use std::net::SocketAddr;
use std::time::Instant;

use base64::Engine as _;
use ferrosfu_fbs::{HandlerId, MediaEvent, RequestFailure, SrtpParameters};

use super::{BoundSocket, Kind, fbs_tuple};
use crate::WorkerCore;
use crate::control::{failure, invalid, suite_profile};
use crate::demux::bound_to;
use crate::proto::ice::Tuple;
use crate::proto::packet::PacketKind;
use crate::proto::srtp::SrtpSession;
use crate::tables::TransportKey;

#[derive(Debug)]
pub(crate) struct Plain {
    pub socket: BoundSocket,
    pub rtcp_socket: Option<BoundSocket>,
    pub rtcp_mux: bool,
    pub comedia: bool,
    pub remote: Option<SocketAddr>,
    pub rtcp_remote: Option<SocketAddr>,
    /// The address comedia learned `remote` (`rtcp_remote`) at: the source of what is sent there
    /// (for a wildcard socket, a specific IP; `None`: the socket's own address).
    pub local: Option<SocketAddr>,
    pub rtcp_local: Option<SocketAddr>,
    pub srtp: Option<SrtpSession>,
    /// Our keys when SRTP is enabled (given to the remote).
    pub local_srtp: Option<(SrtpParameters, Vec<u8>)>,
}

/// What a plain transport makes of a datagram's source.
enum Admit {
    /// From the known (or just learned) remote: media, RTCP when `rtcp`.
    Media {
        rtcp: bool,
    },
    /// Comedia learned the remote from it (`rtcp`: on the RTCP socket): media, then tell the
    /// supervisor.
    Learned {
        rtcp: bool,
        rtcp_socket: bool,
    },
    Drop,
}

impl Plain {
    pub(crate) fn new(
        socket: BoundSocket,
        rtcp_socket: Option<BoundSocket>,
        rtcp_mux: bool,
        comedia: bool,
        local_srtp: Option<(SrtpParameters, Vec<u8>)>,
    ) -> Self {
        Self {
            socket,
            rtcp_socket,
            rtcp_mux,
            comedia,
            remote: None,
            rtcp_remote: None,
            local: None,
            rtcp_local: None,
            srtp: None,
            local_srtp,
        }
    }

    /// `transport.connect`: the remote's SRTP key (when SRTP is enabled) and, without comedia,
    /// its address.
    pub(crate) fn connect(
        &mut self,
        ip: Option<String>,
        port: Option<u16>,
        rtcp_port: Option<u16>,
        srtp_parameters: Option<SrtpParameters>,
    ) -> Result<(), RequestFailure> {
        if let Some(sp) = srtp_parameters {
            let (_, local_key) = self
                .local_srtp
                .as_ref()
                .ok_or_else(|| invalid("SRTP parameters given but SRTP is not enabled"))?;
            let profile = suite_profile(sp.crypto_suite);
            let remote_key = base64::engine::general_purpose::STANDARD
                .decode(sp.key_base64.as_bytes())
                .map_err(|e| invalid(format!("bad keyBase64: {e}")))?;
            let kl = profile.key_len();
            if remote_key.len() != kl + profile.salt_len() {
                return Err(invalid("keyBase64 has the wrong length for its suite"));
            }
            if local_key.len() != kl + profile.salt_len() {
                return Err(invalid("crypto suite differs from the local one"));
            }
            let identity = rtc_dtls::crypto_provider::default_provider().map_err(failure)?;
            self.srtp = Some(
                SrtpSession::new(
                    profile,
                    (&local_key[..kl], &local_key[kl..]),
                    (&remote_key[..kl], &remote_key[kl..]),
                    &identity,
                )
                .map_err(failure)?,
            );
        } else if self.local_srtp.is_some() {
            return Err(invalid("SRTP is enabled: srtp_parameters are required"));
        }
        if !self.comedia {
            let ip = ip.ok_or_else(|| invalid("ip is required without comedia"))?;
            let ip: std::net::IpAddr = ip.parse().map_err(|_| invalid(format!("bad ip {ip:?}")))?;
            let port = port.ok_or_else(|| invalid("port is required without comedia"))?;
            self.remote = Some(SocketAddr::new(ip, port));
            if !self.rtcp_mux {
                let rp =
                    rtcp_port.ok_or_else(|| invalid("rtcp_port is required without rtcp_mux"))?;
                self.rtcp_remote = Some(SocketAddr::new(ip, rp));
            }
        }
        Ok(())
    }

    /// Checks a datagram's source against the remote, or learns the remote from it (comedia).
    fn admit(&mut self, tuple: &Tuple, kind: PacketKind) -> Admit {
        let rtcp_socket = self
            .rtcp_socket
            .as_ref()
            .is_some_and(|s| s.protocol == tuple.protocol && bound_to(s.local, tuple.local));
        let rtcp = rtcp_socket || kind == PacketKind::Rtcp;
        if !matches!(kind, PacketKind::Rtp | PacketKind::Rtcp) {
            return Admit::Drop;
        }
        let expected = if rtcp_socket {
            self.rtcp_remote
        } else {
            self.remote
        };
        match expected {
            Some(r) if r != tuple.remote => Admit::Drop,
            Some(_) => Admit::Media { rtcp },
            None if self.comedia => {
                if rtcp_socket {
                    self.rtcp_remote = Some(tuple.remote);
                    self.rtcp_local = Some(tuple.local);
                } else {
                    self.remote = Some(tuple.remote);
                    self.local = Some(tuple.local);
                    if self.rtcp_mux {
                        self.rtcp_remote = Some(tuple.remote);
                        self.rtcp_local = Some(tuple.local);
                    }
                }
                Admit::Learned { rtcp, rtcp_socket }
            }
            None => Admit::Drop,
        }
    }
}

impl WorkerCore {
    pub(crate) fn plain_datagram(
        &mut self,
        k: TransportKey,
        tuple: Tuple,
        kind: PacketKind,
        data: &[u8],
        arrival: Instant,
        now: Instant,
    ) {
        let t = &mut self.tables.transports[k];
        let Kind::Plain(p) = &mut t.kind else {
            return;
        };
        match p.admit(&tuple, kind) {
            Admit::Drop => t.counters.dropped += 1,
            Admit::Media { rtcp } => self.media_in(k, data, rtcp, arrival, now),
            Admit::Learned { rtcp, rtcp_socket } => {
                let h = HandlerId::from(&t.id);
                self.notify(
                    h,
                    MediaEvent::PlainTransportTuple {
                        tuple: fbs_tuple(&tuple),
                        rtcp: rtcp_socket,
                    },
                );
                self.media_in(k, data, rtcp, arrival, now);
            }
        }
    }
}
