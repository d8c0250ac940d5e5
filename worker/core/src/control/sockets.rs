//! The sockets a request needs bound by the shell before the core can handle it.

use ferrosfu_fbs::{ListenInfo, Request, RequestBody, TransportProtocol, WebRtcTransportListen};

use crate::proto::ice::Protocol;

/// A socket the shell must bind before handing the request over with
/// [`Input::CommandWithSockets`](crate::Input::CommandWithSockets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketRequest {
    pub protocol: Protocol,
    pub ip: String,
    /// 0 = any port from the worker's RTC port range.
    pub port: u16,
    pub announced: Option<String>,
}

fn socket_request(l: &ListenInfo) -> SocketRequest {
    SocketRequest {
        protocol: match l.protocol {
            TransportProtocol::Udp => Protocol::Udp,
            TransportProtocol::Tcp => Protocol::Tcp,
        },
        ip: l.ip.clone(),
        port: l.port,
        announced: l.announced_address.clone(),
    }
}

/// The sockets a request needs bound by the shell (empty for most requests).
pub fn sockets_needed(req: &Request) -> Vec<SocketRequest> {
    match &req.body {
        RequestBody::WorkerCreateWebRtcServer(o) => {
            o.listen_infos.iter().map(socket_request).collect()
        }
        RequestBody::RouterCreateWebRtcTransport(o) => match &o.listen {
            WebRtcTransportListen::Server(_) => Vec::new(),
            WebRtcTransportListen::Individual(infos) => infos
                .iter()
                .filter(|l| match l.protocol {
                    TransportProtocol::Udp => o.enable_udp,
                    TransportProtocol::Tcp => o.enable_tcp,
                })
                .map(socket_request)
                .collect(),
        },
        RequestBody::RouterCreatePlainTransport(o) => {
            let mut v = vec![socket_request(&o.listen_info)];
            if !o.rtcp_mux {
                let mut r = o
                    .rtcp_listen_info
                    .as_ref()
                    .map_or_else(|| socket_request(&o.listen_info), socket_request);
                if o.rtcp_listen_info.is_none() {
                    r.port = 0;
                }
                v.push(r);
            }
            v
        }
        _ => Vec::new(),
    }
}
