//! The DTLS side of a simulated client peer: client or server, honest or not about its
//! certificate, and the SRTP session its handshake keys.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ferrosfu_fbs::{DtlsFingerprint, DtlsParameters, DtlsRole};
pub use ferrosfu_worker_core::dtls_profile;
use ferrosfu_worker_core::{SrtpProfile, SrtpSession, fingerprint};

use crate::client::ClientDtls;
use rtc_dtls::config::{
    ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig,
    VerifyPeerCertificateFn,
};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::crypto_provider::RTCCryptoProvider;
use rtc_dtls::endpoint::Endpoint;

pub fn crypto() -> Arc<dyn RTCCryptoProvider> {
    rtc_dtls::crypto_provider::default_provider().expect("crypto provider")
}

/// A self-signed certificate for `name` (milliseconds: make it once where inputs repeat).
pub fn certificate(name: &str) -> Certificate {
    Certificate::generate_self_signed(vec![name.to_owned()], crypto().crypto())
        .expect("certificate")
}

/// A WebRTC endpoint's DTLS configuration: `certificates` (none: a client that presents
/// nothing), `profile` only, extended master secret required, a client certificate required (as
/// server), and the remote authenticated by `verify` (the fingerprint from signaling) instead of
/// a CA chain.
pub fn config(
    is_client: bool,
    certificates: Vec<Certificate>,
    profile: SrtpProfile,
    verify: Option<VerifyPeerCertificateFn>,
) -> Arc<HandshakeConfig> {
    let config = ConfigBuilder::default()
        .with_crypto_provider(crypto())
        .with_certificates(certificates)
        .with_srtp_protection_profiles(vec![dtls_profile(profile)])
        .with_extended_master_secret(ExtendedMasterSecretType::Require)
        .with_insecure_skip_verify(true)
        .with_client_auth(ClientAuthType::RequireAnyClientCert)
        .with_verify_peer_certificate(verify)
        // Without a server name rtc-dtls logs a warning per client config.
        .with_server_name("sfu".into())
        .build(is_client, None)
        .expect("DTLS config");
    Arc::new(config)
}

/// Accepts the remote when `authentic` holds for the first certificate it presents.
pub fn verify_first(
    authentic: impl Fn(&[u8]) -> bool + Send + Sync + 'static,
) -> VerifyPeerCertificateFn {
    Arc::new(move |certs, _| {
        if certs.first().is_some_and(|der| authentic(der)) {
            Ok(())
        } else {
            Err(rtc_shared::error::Error::Other(
                "bad SFU fingerprint".into(),
            ))
        }
    })
}

/// An endpoint at `addr` with `config`: as server it waits for the remote's ClientHello; as
/// client it is already connecting to `remote`.
pub fn endpoint(
    is_server: bool,
    addr: SocketAddr,
    remote: SocketAddr,
    config: Arc<HandshakeConfig>,
    now: Instant,
) -> Endpoint {
    if is_server {
        Endpoint::new(addr, rtc_shared::TransportProtocol::UDP, Some(config))
    } else {
        let mut ep = Endpoint::new(addr, rtc_shared::TransportProtocol::UDP, None);
        ep.connect(now, remote, config, None)
            .expect("the peer starts its handshake");
        ep
    }
}

/// The SRTP session the finished handshake of `ep` with `remote` keys ("EXTRACTOR-dtls_srtp").
pub fn srtp_session(ep: &Endpoint, remote: SocketAddr, profile: SrtpProfile) -> SrtpSession {
    try_srtp_session(ep, remote, profile).expect("SRTP session")
}

/// [`srtp_session`], failing when there is no association with `remote`, the remote chose
/// another profile than `profile` (the only one offered), or the exporter fails.
pub fn try_srtp_session(
    ep: &Endpoint,
    remote: SocketAddr,
    profile: SrtpProfile,
) -> Result<SrtpSession, String> {
    let state = ep
        .get_connection_state(remote)
        .ok_or("no DTLS association with the remote")?;
    let want = dtls_profile(profile);
    if state.srtp_protection_profile() != want {
        return Err(format!(
            "negotiated {:?}, offered only {want:?}",
            state.srtp_protection_profile()
        ));
    }
    let material = state
        .export_keying_material("EXTRACTOR-dtls_srtp", &[], profile.keying_material_len())
        .map_err(|e| format!("exporter: {e}"))?;
    SrtpSession::from_keying_material(
        profile,
        &material.into_bytes(),
        state.is_client(),
        &crypto(),
    )
    .map_err(|e| e.to_string())
}

/// How a simulated peer does DTLS. The default is an honest DTLS client (the SFU is server).
#[derive(Clone, Copy, Debug, Default)]
pub struct DtlsSetup {
    /// The peer is DTLS server (signals role `server`): the SFU connects as client.
    pub peer_is_server: bool,
    /// The peer signals the fingerprint of another certificate than the one it presents.
    pub wrong_fingerprint: bool,
    /// The peer presents no certificate at all (as a client; a server must have one).
    pub no_certificate: bool,
    /// What the peer signals, from the SHA-256 fingerprint it would signal otherwise.
    pub signal: Option<fn(String) -> Vec<DtlsFingerprint>>,
}

impl DtlsSetup {
    /// The peer's DTLS side for a [`crate::client::ClientTransport`] (which connects once ICE
    /// works) and the DTLS parameters it signals in `transport.connect`.
    pub fn client_dtls(
        self,
        profile: SrtpProfile,
        addr: SocketAddr,
        sfu_fingerprints: Vec<DtlsFingerprint>,
    ) -> (ClientDtls, DtlsParameters) {
        let (config, fp) = self.config(profile, sfu_fingerprints);
        let dtls = if self.peer_is_server {
            ClientDtls {
                endpoint: Endpoint::new(addr, rtc_shared::TransportProtocol::UDP, Some(config)),
                connect: None,
            }
        } else {
            ClientDtls {
                endpoint: Endpoint::new(addr, rtc_shared::TransportProtocol::UDP, None),
                connect: Some(config),
            }
        };
        (dtls, self.parameters(fp))
    }

    /// The handshake configuration and the SHA-256 fingerprint the peer would signal honestly.
    fn config(
        self,
        profile: SrtpProfile,
        sfu_fingerprints: Vec<DtlsFingerprint>,
    ) -> (Arc<HandshakeConfig>, String) {
        let cert = certificate("peer");
        // A certificate costs milliseconds: the other one only for a dishonest peer.
        let signaled = if self.wrong_fingerprint {
            certificate("other")
        } else {
            cert.clone()
        };
        let fp = fingerprint("sha-256", &signaled.certificate[0]).unwrap();
        let certificates = if self.no_certificate {
            vec![]
        } else {
            vec![cert]
        };
        let verify = verify_first(move |der| {
            let got = fingerprint("sha-256", der).unwrap();
            sfu_fingerprints.iter().any(|f| f.value == got)
        });
        (
            config(!self.peer_is_server, certificates, profile, Some(verify)),
            fp,
        )
    }

    fn parameters(self, fp: String) -> DtlsParameters {
        let role = if self.peer_is_server {
            DtlsRole::Server
        } else {
            DtlsRole::Client
        };
        DtlsParameters {
            role,
            fingerprints: match self.signal {
                Some(f) => f(fp),
                None => vec![DtlsFingerprint {
                    algorithm: "sha-256".into(),
                    value: fp,
                }],
            },
        }
    }
}
