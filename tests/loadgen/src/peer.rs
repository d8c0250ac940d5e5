//! The load generator's client transports: the project's one sans-IO WebRTC client
//! ([`ferrosfu_sim::client::ClientTransport`]: ICE, DTLS, SRTP; its module docs give the drive
//! contract), made with this process's DTLS identity (one certificate for every peer, as a
//! browser has one per PeerConnection), fresh ICE credentials, host-candidate priority and
//! consent checks spread over 4–6 s. The media engine drives them over real sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ferrosfu_sim::client::{ClientConfig, ClientDtls, Consent};
use rtc_dtls::endpoint::Endpoint;
use rtc_shared::TransportProtocol;

pub(crate) use ferrosfu_sim::client::{ClientTransport as Peer, Event, IceRole};

use crate::types::{DtlsRole, LocalTransport, Profile, RemoteTransport};

mod identity;

pub(crate) use self::identity::{Identity, SrtpKey, local_transport, random_bytes};

/// Consent checks once connected (RFC 7675: 4–6 s). ferrosfu expires consent after 30 s.
const CONSENT_INTERVAL: Duration = Duration::from_secs(5);
/// PRIORITY of a host candidate: (126 << 24) | (65535 << 8) | (256 - 1).
const HOST_PRIORITY: u32 = 2_130_706_431;

/// A transport to `remote` from `local` (see [`local_transport`]); checks start at `now`.
pub(crate) fn connect(
    local: LocalTransport,
    remote: RemoteTransport,
    profile: Profile,
    role: IceRole,
    now: Instant,
) -> Result<Peer> {
    if remote.addr.port() == 0 {
        bail!("remote candidate has port 0");
    }
    let is_client = remote.our_dtls_role == DtlsRole::Client;
    let config = Identity::get()?.config(&remote.fingerprint_sha256, is_client, profile);
    let endpoint = Endpoint::new(
        local.addr,
        TransportProtocol::UDP,
        (!is_client).then(|| config.clone()),
    );
    let tie = random_bytes(8);
    Ok(Peer::new(
        ClientConfig {
            local_ufrag: local.ice_ufrag,
            local_pwd: local.ice_pwd,
            remote: remote.addr,
            remote_ufrag: remote.ice_ufrag,
            remote_pwd: remote.ice_pwd,
            role,
            priority: HOST_PRIORITY,
            tie_breaker: u64::from_be_bytes(tie.try_into().expect("8 random bytes")),
            consent: Consent::Spread(CONSENT_INTERVAL),
            profile: profile.srtp(),
            dtls: ClientDtls {
                endpoint,
                connect: is_client.then_some(config),
            },
        },
        now,
    ))
}

/// A transport keyed in advance (no ICE, no DTLS): the raw forwarder's peers.
pub(crate) fn pre_keyed(
    remote: SocketAddr,
    profile: Profile,
    outbound: &SrtpKey,
    inbound: &SrtpKey,
) -> Result<Peer> {
    Ok(Peer::pre_keyed(remote, outbound.session(inbound, profile)?))
}

#[cfg(test)]
mod tests;
