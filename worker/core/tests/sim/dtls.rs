//! The DTLS side of a simulated peer: client or server, honest or not about its certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ferrosfu_fbs::{DtlsFingerprint, DtlsParameters, DtlsRole};
use ferrosfu_worker_core::{SrtpProfile, fingerprint};
use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::Endpoint;

use super::{crypto, dtls_profile};

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
    /// The peer's endpoint (already connecting when it is the client) and the DTLS parameters
    /// it signals in `transport.connect`.
    pub(super) fn endpoint(
        self,
        profile: SrtpProfile,
        addr: SocketAddr,
        server: SocketAddr,
        sfu_fingerprints: Vec<DtlsFingerprint>,
        now: Instant,
    ) -> (Endpoint, DtlsParameters) {
        let c = crypto();
        let cert = Certificate::generate_self_signed(vec!["peer".to_owned()], c.crypto()).unwrap();
        let other =
            Certificate::generate_self_signed(vec!["other".to_owned()], c.crypto()).unwrap();
        let signaled = if self.wrong_fingerprint {
            &other
        } else {
            &cert
        };
        let fp = fingerprint("sha-256", &signaled.certificate[0]).unwrap();
        let certificates = if self.no_certificate {
            vec![]
        } else {
            vec![cert]
        };
        let config = ConfigBuilder::default()
            .with_crypto_provider(c.clone())
            .with_certificates(certificates)
            .with_srtp_protection_profiles(vec![dtls_profile(profile)])
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .with_insecure_skip_verify(true)
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            .with_verify_peer_certificate(Some(Arc::new(move |certs, _| {
                let got = fingerprint("sha-256", &certs[0]).unwrap();
                if sfu_fingerprints.iter().any(|f| f.value == got) {
                    Ok(())
                } else {
                    Err(rtc_shared::error::Error::Other(
                        "bad SFU fingerprint".into(),
                    ))
                }
            })))
            .build(!self.peer_is_server, None)
            .unwrap();
        let config = Arc::new(config);
        let role = if self.peer_is_server {
            DtlsRole::Server
        } else {
            DtlsRole::Client
        };
        let dtls = if self.peer_is_server {
            Endpoint::new(addr, rtc_shared::TransportProtocol::UDP, Some(config))
        } else {
            let mut ep = Endpoint::new(addr, rtc_shared::TransportProtocol::UDP, None);
            ep.connect(now, server, config, None).unwrap();
            ep
        };
        let params = DtlsParameters {
            role,
            fingerprints: match self.signal {
                Some(f) => f(fp),
                None => vec![DtlsFingerprint {
                    algorithm: "sha-256".into(),
                    value: fp,
                }],
            },
        };
        (dtls, params)
    }
}
