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
            // RFC 8445 §5.1.2.1 host priority: the preferred protocol gets the upper half of the
            // local preference, then listen order decides (so an IPv4 and an IPv6 address, or
            // several addresses, get distinct priorities).
            let preferred = match s.protocol {
                Protocol::Udp => prefer_udp || !prefer_tcp,
                Protocol::Tcp => prefer_tcp,
            };
            let top: u32 = if preferred { 65535 } else { 32767 };
            let local_pref = top.saturating_sub(i as u32).max(1);
            let priority = (126u32 << 24) | (local_pref << 8) | 255;
            // One foundation per protocol and base address (RFC 8445 §5.1.1.3); the first of
            // each protocol keeps mediasoup's name.
            let earlier = sockets[..i]
                .iter()
                .filter(|o| o.protocol == s.protocol)
                .count();
            let name = match s.protocol {
                Protocol::Udp => "udpcandidate",
                Protocol::Tcp => "tcpcandidate",
            };
            IceCandidate {
                foundation: if earlier == 0 {
                    name.into()
                } else {
                    format!("{name}{earlier}")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(protocol: Protocol, addr: &str) -> BoundSocket {
        BoundSocket {
            protocol,
            local: addr.parse().unwrap(),
            announced: None,
        }
    }

    #[test]
    fn dual_stack_candidates_have_distinct_priorities_and_foundations() {
        let sockets = [
            socket(Protocol::Udp, "127.0.0.1:40000"),
            socket(Protocol::Udp, "[::1]:40000"),
            socket(Protocol::Tcp, "127.0.0.1:40000"),
            socket(Protocol::Tcp, "[::1]:40000"),
        ];
        let c = candidates(&sockets, true, false);
        let got: Vec<_> = c
            .iter()
            .map(|c| (c.foundation.as_str(), c.address.as_str(), c.priority))
            .collect();
        let p = |local: u32| (126u32 << 24) | (local << 8) | 255;
        assert_eq!(
            got,
            [
                ("udpcandidate", "127.0.0.1", p(65535)),
                ("udpcandidate1", "::1", p(65534)),
                ("tcpcandidate", "127.0.0.1", p(32765)),
                ("tcpcandidate1", "::1", p(32764)),
            ]
        );
        // prefer TCP: the TCP candidates rank first.
        let c = candidates(&sockets, false, true);
        assert!(c[2].priority > c[0].priority && c[3].priority > c[1].priority);
    }
}
