//! WebRtcServers: sockets shared by many WebRtcTransports of the worker (one UDP and/or TCP
//! port for all), created by `worker.createWebRtcServer`, dumped and closed by id.

use std::time::Instant;

use ferrosfu_fbs::{
    IceCandidate, ListenInfo, RequestBody, RequestFailure, ResponseBody, WebRtcServerDump,
    WebRtcServerId, WebRtcServerOptions,
};

use super::{invalid, misrouted};
use crate::WorkerCore;
use crate::demux::Owner;
use crate::proto::ice::Protocol;
use crate::tables::Server;
use crate::transport::{self, BoundSocket};
use crate::worker_core::Output;

impl WorkerCore {
    pub(super) fn create_server(
        &mut self,
        o: WebRtcServerOptions,
        sockets: Vec<BoundSocket>,
    ) -> Result<ResponseBody, RequestFailure> {
        let id = o.web_rtc_server_id;
        if id.as_str().is_empty() || self.tables.servers.contains_key(&id) {
            return Err(invalid(format!("bad or duplicate webrtc server id {id:?}")));
        }
        if sockets.is_empty() {
            return Err(invalid("a webrtc server needs at least one listen info"));
        }
        for s in &sockets {
            self.demux.add_socket(s, Owner::Server(id.clone()));
        }
        let server = Server {
            sockets,
            transports: Vec::new(),
        };
        let dump = self.server_dump(&id, &server);
        self.tables.servers.insert(id, server);
        Ok(ResponseBody::WebRtcServerDump(dump))
    }

    pub(super) fn server_request(
        &mut self,
        id: WebRtcServerId,
        body: RequestBody,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        let Some(s) = self.tables.servers.get(&id) else {
            return Err(invalid(format!("no webrtc server {id}")));
        };
        match body {
            RequestBody::WebRtcServerDump => {
                Ok(ResponseBody::WebRtcServerDump(self.server_dump(&id, s)))
            }
            RequestBody::WebRtcServerClose => {
                self.close_server(&id, now);
                Ok(ResponseBody::None)
            }
            other => Err(misrouted(&other)),
        }
    }

    fn server_dump(&self, id: &WebRtcServerId, s: &Server) -> WebRtcServerDump {
        WebRtcServerDump {
            id: id.clone(),
            listen_infos: s
                .sockets
                .iter()
                .map(|b| ListenInfo {
                    protocol: transport::fbs_protocol(b.protocol),
                    ip: b.local.ip().to_string(),
                    announced_address: b.announced.clone(),
                    port: b.local.port(),
                })
                .collect(),
            transport_ids: s
                .transports
                .iter()
                .filter_map(|&k| self.tables.transports.get(k).map(|t| t.id.clone()))
                .collect(),
        }
    }

    /// Closes the server and every transport on it; its sockets go back to the shell.
    pub(super) fn close_server(&mut self, id: &WebRtcServerId, now: Instant) {
        let Some(server) = self.tables.servers.remove(id) else {
            return;
        };
        for k in server.transports {
            self.close_transport(k, now, false);
        }
        for s in &server.sockets {
            self.demux.remove_socket(s);
        }
        self.outputs
            .push_back(Output::ReleaseSockets(server.sockets));
    }
}

/// ICE host candidates for the sockets a WebRtcTransport listens on.
pub(super) fn candidates(
    sockets: &[BoundSocket],
    prefer_udp: bool,
    prefer_tcp: bool,
) -> Vec<IceCandidate> {
    sockets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            // RFC 8445 §5.1.2.1 host priority; the preferred protocol gets the higher local
            // preference, then listen order.
            let proto_pref: u32 = match s.protocol {
                Protocol::Udp if prefer_udp || !prefer_tcp => 1,
                Protocol::Tcp if prefer_tcp => 1,
                _ => 0,
            };
            let local_pref = (proto_pref * 32768 + 65535 - i as u32 * 2).min(65535);
            let priority = (126u32 << 24) | (local_pref << 8) | 255;
            IceCandidate {
                foundation: match s.protocol {
                    Protocol::Udp => "udpcandidate".into(),
                    Protocol::Tcp => "tcpcandidate".into(),
                },
                priority,
                address: s.announced_ip(),
                protocol: transport::fbs_protocol(s.protocol),
                port: s.local.port(),
                kind: "host".into(),
                tcp_type: (s.protocol == Protocol::Tcp).then(|| "passive".into()),
            }
        })
        .collect()
}
